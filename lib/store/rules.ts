/**
 * The queue's rules about dependencies (`enqueue --after`) and outcomes,
 * stated once for every backend: the state a new job starts in, when a
 * finished job started over must wait, how a kill overrides a run's
 * outcome, and what a job's end (or deletion) does to the jobs that run
 * after it. The moves themselves are {@linkcode TRANSITIONS} in
 * lib/states.ts.
 *
 * A backend reads the facts these rules take (the states of a job's
 * dependencies, the kill asked for a run) and writes what they decide. The
 * cascade to dependents must happen in the transaction that ends the job,
 * so it runs inside the database: the SQLite backend builds those
 * statements from {@linkcode RELEASE}, {@linkcode ABANDON} and
 * {@linkcode DEPENDENCY_MET}, and asks {@linkcode cascadeOnEnd} and
 * {@linkcode cascadeOnDelete} whether to run them (lib/store/sqlite_outcomes.ts).
 *
 * @module
 */

import { QueueError } from "../errors.ts";
import {
  FINAL_STATES,
  type JobState,
  type Transition,
  TRANSITIONS,
  UNFINISHED_STATES,
} from "../states.ts";
import type { AttemptOutcome, KillMode } from "./store.ts";

/** The state every job a job runs after must reach before it may run. */
export const DEPENDENCY_MET = TRANSITIONS.complete.to;

/** A blocked job whose dependencies have all completed moves on (to pending). */
export const RELEASE = TRANSITIONS.unblock;

/** A blocked job that runs after a job that died (or was deleted unfinished) goes to the DLQ. */
export const ABANDON = TRANSITIONS.abandon;

/** A job that a job runs after, with its state; null when no such job exists (any more). */
export interface DependencyState {
  id: string;
  state: JobState | null;
}

/** Why a job went to the DLQ without running: `dependency`, which it ran after, is dead or was deleted. */
export function abandonedBecause(dependency: string, why: "dead" | "deleted"): string {
  return `runs after '${dependency}', ${why === "dead" ? "which is dead" : "which was deleted"}`;
}

/** The state a new job starts in, and why when it starts dead. */
export interface InitialState {
  state: "pending" | "blocked" | "dead";
  lastError: string | null;
}

/**
 * The state of a new job from the jobs it runs after (`after`, looked up
 * one at a time in order with `stateOf`, null for a job that does not
 * exist): `pending` when all have completed, `blocked` while any has not,
 * and `dead` (into the DLQ, never run) as soon as one is dead.
 *
 * @throws {QueueError} when a job it runs after does not exist (before one found dead)
 */
export function initialState(
  jobId: string,
  after: readonly string[],
  stateOf: (id: string) => JobState | null,
): InitialState {
  let state: InitialState["state"] = "pending";
  for (const dependency of after) {
    const dependencyState = stateOf(dependency);
    if (dependencyState === null) {
      throw new QueueError(`job '${jobId}' runs after '${dependency}', which does not exist`);
    }
    if (dependencyState === "dead") {
      return { state: "dead", lastError: abandonedBecause(dependency, "dead") };
    }
    if (dependencyState !== DEPENDENCY_MET) state = "blocked";
  }
  return { state, lastError: null };
}

/**
 * Whether a finished job started over (`retry`, `dlq retry`) must wait
 * (`block`) for a job it runs after, given the ones that still exist.
 *
 * @throws {QueueError} when one of them is dead: the job could never run
 */
export function mustWaitOnStartOver(
  jobId: string,
  dependencies: readonly DependencyState[],
): boolean {
  let wait = false;
  for (const dependency of dependencies) {
    if (dependency.state === "dead") {
      throw new QueueError(
        `job '${jobId}' runs after '${dependency.id}', which is dead; retry '${dependency.id}' too`,
      );
    }
    if (dependency.state !== DEPENDENCY_MET) wait = true;
  }
  return wait;
}

/**
 * The move a run's end makes, given the kill asked for that run, if any: a
 * failed run killed with mode `dead` goes to the DLQ whatever retries
 * remain; otherwise the outcome stands.
 */
export function outcomeTransition(
  outcome: AttemptOutcome["state"],
  kill: KillMode | null,
): Transition {
  if (outcome === "completed") return TRANSITIONS.complete;
  if (outcome === "failed" && kill !== "dead") return TRANSITIONS.scheduleRetry;
  return TRANSITIONS.bury;
}

/** What a job's end does to the blocked jobs that run after it. */
export type Cascade =
  /** Those whose every dependency has now completed move on ({@linkcode RELEASE}). */
  | "release"
  /** All of them go to the DLQ ({@linkcode ABANDON}), and the jobs that run after those, on. */
  | "abandon"
  | "none";

/**
 * What a job reaching `state` does to the jobs that run after it: released
 * when it completed, abandoned when it died (a job abandoned is dead too, so
 * the jobs after it follow). A retry leaves them waiting.
 */
export function cascadeOnEnd(state: JobState): Cascade {
  if (state === DEPENDENCY_MET) return "release";
  if (state === TRANSITIONS.bury.to) return "abandon";
  return "none";
}

/**
 * What deleting a job in `state` does to the jobs that run after it: one
 * that had not completed never will, so they are abandoned; a completed one
 * has already released them.
 */
export function cascadeOnDelete(state: JobState): Cascade {
  return state === DEPENDENCY_MET ? "none" : "abandon";
}

/**
 * The states in which a job holds its unique key against every other job of
 * its queue, whatever the age: waiting (blocked, pending, failed awaiting its
 * retry) or running. The database enforces it with a unique partial index
 * over (queue, unique_key) of the jobs in these states.
 */
export const UNIQUE_HOLDING_STATES: readonly JobState[] = UNFINISHED_STATES;

/** A job with the same queue and unique key as one being added. */
export interface UniqueCandidate {
  id: string;
  state: JobState;
  finishedAt: number | null;
}

/**
 * The unique-jobs rule: a job with a unique key is not added while another
 * job of its queue with that key is waiting or running
 * ({@linkcode UNIQUE_HOLDING_STATES}), or finished (completed or dead) less
 * than `uniqueForMs` (the new job's `--unique-for`, 0 by default) before
 * `now`. A backend reads the candidates (those unfinished, and the latest
 * finished after {@linkcode uniqueWindowStart}) under a lock on the key, so
 * that enqueues of one key are serialized across processes and hosts, and
 * adds the job only when this finds no holder.
 */
export function holdsUniqueKey(
  candidate: UniqueCandidate,
  now: number,
  uniqueForMs: number,
): boolean {
  if (UNIQUE_HOLDING_STATES.includes(candidate.state)) return true;
  // Without a window no finished job holds it, even one stamped later than `now` (another host).
  return uniqueForMs > 0 && FINAL_STATES.includes(candidate.state) &&
    candidate.finishedAt !== null && now - candidate.finishedAt < uniqueForMs;
}

/** The earliest finish that may still hold a key against an enqueue at `now`: exclusive. */
export function uniqueWindowStart(now: number, uniqueForMs: number): number {
  return now - uniqueForMs;
}

/** The holder, if any, among the candidates for a key ({@linkcode holdsUniqueKey}). */
export function uniqueHolder(
  candidates: readonly UniqueCandidate[],
  now: number,
  uniqueForMs: number,
): UniqueCandidate | undefined {
  // A waiting or running holder is named before a finished one.
  return candidates.find((c) => UNIQUE_HOLDING_STATES.includes(c.state)) ??
    candidates.find((c) => holdsUniqueKey(c, now, uniqueForMs));
}

/**
 * Why `retry` or `dlq retry` refuses to start over a job: another job of its
 * queue holds its unique key while waiting or running. Starting over is an
 * explicit act on that one job, so a finished holder does not stop it; a
 * waiting or running one does (the unique index would refuse two).
 */
export function uniqueKeyHeldOnStartOver(
  jobId: string,
  queue: string,
  key: string,
  holder: { id: string; state: JobState; startedOverToo?: boolean },
): QueueError {
  if (holder.startedOverToo) {
    return new QueueError(
      `job '${jobId}' cannot start over together with job '${holder.id}': both have unique key ` +
        `${JSON.stringify(key)} in queue '${queue}', which one job at a time may hold; ` +
        `start one of them over`,
    );
  }
  return new QueueError(
    `job '${jobId}' cannot start over: job '${holder.id}' (${holder.state}) holds its unique key ` +
      `${JSON.stringify(key)} in queue '${queue}'`,
  );
}

/** How often a worker process records that it is alive (its heartbeat), in ms. */
export const HEARTBEAT_MS = 1_000;

/**
 * A gap longer than this (three beats) between two heartbeat commits means
 * writes were stalled: the database was locked (a long transaction, a bulk
 * enqueue), the disk hung, or no worker process ran. Time in such a gap is
 * left out of every lease, so a stall never counts as missed heartbeats; and
 * a judge whose own heartbeat is older than this judges no lease.
 */
export const STALL_GAP_MS = 3 * HEARTBEAT_MS;

/**
 * Whether a lease has expired: its holder's latest beat (`liveAt`) is more
 * than `leaseTimeoutMs` behind the latest beat of anyone (`liveNow`), both
 * on the lease clock, which leaves stalls out.
 */
export function leaseExpired(liveNow: number, liveAt: number, leaseTimeoutMs: number): boolean {
  return liveNow - liveAt > leaseTimeoutMs;
}

/** The lease clock as stored: the latest beat's stamp and the stalls left out before it. */
export interface LeaseClock {
  /** The latest heartbeat commit of anyone, on the store's clock. */
  beatAt: number;
  /** The time left out of every lease so far: the gaps longer than {@linkcode STALL_GAP_MS}. */
  stalledMs: number;
}

/**
 * The lease clock after a heartbeat (or registration) that commits at
 * `now`, and that beat on it (`live`): the gap since the previous beat is
 * left out when it is a stall. The first beat ever (`beatAt` 0) starts the
 * clock at 0: time before it counts for nobody. A registration may carry an
 * older stamp than the latest beat: it keeps its age.
 */
export function advanceLeaseClock(
  clock: LeaseClock,
  now: number,
): { clock: LeaseClock; live: number } {
  const gap = now - clock.beatAt;
  const stalledMs = gap > STALL_GAP_MS ? clock.stalledMs + gap : clock.stalledMs;
  return {
    clock: { beatAt: Math.max(clock.beatAt, now), stalledMs },
    live: now - stalledMs,
  };
}

/** The latest beat of anyone on the lease clock: the present moment as leases are judged. */
export function leaseClockNow(clock: LeaseClock): number {
  return clock.beatAt - clock.stalledMs;
}

/**
 * Text search (`JobFilter.text`): text of this many characters or more is
 * looked up in an index of trigrams (SQLite: FTS5's trigram tokenizer;
 * PostgreSQL: pg_trgm), fast however rare the match; shorter text has no
 * trigram to look up, and is found by reading jobs newest first, which is
 * fast when it is common (a page fills early) and reads every job when it
 * matches none.
 */
export const INDEXED_TEXT_LENGTH = 3;

/** Whether a job matches a text search: its id or its command holds `text`, case as written. */
export function holdsText(job: { id: string; command: string }, text: string): boolean {
  return text === "" || job.id.includes(text) || job.command.includes(text);
}

/**
 * States in which a schedule's previous job makes a firing overlap it (waiting,
 * now or later, or running): under `--overlap skip` such a firing is skipped.
 */
export const OVERLAPPING_STATES: readonly JobState[] = UNFINISHED_STATES;

/** Whether a firing overlaps a previous job in `state` (null: none, or deleted). */
export function overlapsPrevious(state: JobState | null): boolean {
  return state !== null && OVERLAPPING_STATES.includes(state);
}
