/**
 * The rescuer: tells live worker processes from dead ones, and gives the
 * jobs that dead ones left `processing` back to the queue. The attempt
 * counts (it was started), so a job whose runs keep killing their worker
 * still ends in the DLQ.
 *
 * The liveness rule, decided in one place ({@linkcode judgeWorker}):
 *
 * 1. On this host (Linux), the process is the evidence. A worker whose pid
 *    runs with the start time it registered is alive, whatever its
 *    heartbeat says: a lock held by another connection, a bulk enqueue, a
 *    slow disk or a stopped process delay heartbeats, but only the end of
 *    the process ends a worker. One whose pid is gone (or a zombie), or now
 *    belongs to a later process, is dead at once.
 * 2. Anywhere else (another host, or no process evidence), the heartbeat is,
 *    judged on the judge's {@linkcode LeaseClock}: silence counts only while
 *    the judge's own heartbeats commit regularly, so a stall of the database
 *    never counts as missed heartbeats. Only a worker process, which has such
 *    a clock, removes a worker for its silence; a command (`status`, `worker
 *    stop`) only shows it as gone.
 * 3. No judge judges itself: a process that could not write its heartbeat
 *    is not thereby dead.
 *
 * A worker judged dead is removed only if its heartbeat is still the one the
 * judgement saw, so one that beat in between keeps its jobs.
 *
 * Heartbeat stamps and the lease clock use each process's own clock; moving
 * them to the database's clock (inside the store) changes where the times
 * come from, not this rule.
 *
 * @module
 */

import { DEFAULT_CONFIG } from "../config.ts";
import type { ClaimedJob } from "../job.ts";
import type { AttemptOutcome, Store, WorkerRecord } from "../store/store.ts";
import { killLostRun } from "./containment.ts";
import { failureOutcome, NO_OUTPUT } from "./outcome.ts";
import { hostname, probeProcess } from "./process_info.ts";
import { readExitStatus, removeStatusFile, statusFilePath } from "./runs_folder.ts";
import { removeStrayWakeSockets } from "./wake.ts";

/** How often a worker process records that it is alive, in ms. */
export const HEARTBEAT_MS = 1_000;

/**
 * A gap longer than this (three beats) between two heartbeat commits of one
 * worker process means its writes were stalled: the database was locked (a
 * long transaction, a bulk enqueue), the disk hung, or the process itself
 * did not run. Shorter gaps are the ordinary jitter of a busy machine.
 */
export const STALL_GAP_MS = 3 * HEARTBEAT_MS;

/** The stalls a lease clock remembers; what came before older ones is forgotten with them. */
const MAX_STALLS = 64;

/**
 * The clock on which a worker process judges the leases of workers known
 * only by their heartbeat: time during which its own heartbeats committed
 * regularly, that is, time in which the database took writes and every live
 * worker could have written its own.
 *
 * - A gap over {@linkcode STALL_GAP_MS} between two of its own commits is a
 *   stall, and time within a stall does not count: after an 8 s lock, every
 *   worker still has its whole lease, from the lock's end, to beat again.
 * - While its own writes are stalled (no commit for {@linkcode STALL_GAP_MS}),
 *   it judges nobody: it cannot tell a silent worker from a blocked one.
 * - Silence is counted up to its own latest commit, not to now, and from its
 *   own first commit at the earliest: a new judge knows of no stall before
 *   it, so a worker that fell silent before it started gets a whole lease
 *   from that start.
 *
 * Heartbeats are stamped when their transaction holds the lock (see
 * `Store.heartbeatWorker`), so a beat that waited out a lock lands fresh.
 * Stamps come from each writer's clock: clocks of different hosts must
 * agree to within a small part of the lease.
 */
export class LeaseClock {
  #observedFrom: number | undefined;
  #lastBeatAt: number | undefined;
  readonly #stalls: { from: number; to: number }[] = [];
  readonly #now: () => number;

  /** `now` reads the time (the system clock, but for tests). */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Records that this process's own heartbeat (or registration) committed at `at`. */
  beat(at: number): void {
    if (this.#lastBeatAt === undefined) {
      this.#observedFrom = at;
    } else if (at - this.#lastBeatAt > STALL_GAP_MS) {
      this.#stalls.push({ from: this.#lastBeatAt, to: at });
      if (this.#stalls.length > MAX_STALLS) this.#observedFrom = this.#stalls.shift()!.to;
    }
    this.#lastBeatAt = Math.max(at, this.#lastBeatAt ?? at);
  }

  /**
   * How long a worker whose latest heartbeat is stamped `heartbeatAt` has
   * been silent, in this clock's time (ms); null while this process's own
   * writes are stalled, or before its first commit.
   */
  silenceSince(heartbeatAt: number): number | null {
    const last = this.#lastBeatAt;
    const observedFrom = this.#observedFrom;
    if (last === undefined || observedFrom === undefined) return null;
    if (this.#now() - last > STALL_GAP_MS) return null;
    const from = Math.max(heartbeatAt, observedFrom);
    let silence = last - from;
    for (const stall of this.#stalls) {
      silence -= Math.max(0, Math.min(stall.to, last) - Math.max(stall.from, from));
    }
    return Math.max(0, silence);
  }
}

/** What a judge concluded about a worker process. */
export type Verdict = "alive" | "dead" | "unknown";

/**
 * Judges a worker record by the liveness rule (see the module doc): by its
 * process on this host when there is evidence, else by its heartbeat's
 * silence as `silenceSince` measures it (null: cannot tell now).
 */
export function judgeWorker(
  worker: WorkerRecord,
  leaseTimeoutMs: number,
  silenceSince: (heartbeatAt: number) => number | null,
): Verdict {
  if (worker.host === hostname()) {
    const probe = probeProcess(worker.pid);
    if (probe.state === "gone") return "dead";
    if (probe.state === "running" && worker.procStart !== null) {
      return probe.start === worker.procStart ? "alive" : "dead";
    }
    // Registered without a start time, or /proc says nothing: the heartbeat must tell.
  }
  const silence = silenceSince(worker.heartbeatAt);
  if (silence === null) return "unknown";
  return silence > leaseTimeoutMs ? "dead" : "alive";
}

/**
 * Whether a worker process is to be shown as alive at `now` (for `status`,
 * `top`, `worker stop`): by its process on this host, else by the wall-clock
 * age of its heartbeat. Shows only: a command never removes a worker for
 * its silence ({@linkcode pruneDeadWorkers}).
 */
export function isWorkerAlive(
  worker: WorkerRecord,
  now: number,
  leaseTimeoutMs = DEFAULT_CONFIG.leaseTimeoutMs,
): boolean {
  return judgeWorker(worker, leaseTimeoutMs, (heartbeatAt) => now - heartbeatAt) !== "dead";
}

/** A worker process judging others: its own record and its {@linkcode LeaseClock}. */
export interface Judge {
  selfId: string;
  clock: LeaseClock;
}

/**
 * Drops registry rows of worker processes that are gone, and removes the
 * wake sockets in `runsDir` that no live worker process serves; returns the
 * workers that are shown as alive ({@linkcode isWorkerAlive}). Without a
 * `judge` (a command, not a worker process) only process evidence removes a
 * worker: silence may be a lock.
 */
export async function pruneDeadWorkers(
  store: Store,
  runsDir: string | null,
  judge?: Judge,
): Promise<WorkerRecord[]> {
  const [workers, { leaseTimeoutMs }] = await Promise.all([store.listWorkers(), store.getConfig()]);
  const silenceSince = judge === undefined
    ? () => null
    : (heartbeatAt: number) => judge.clock.silenceSince(heartbeatAt);
  const dead = workers.filter((w) =>
    w.id !== judge?.selfId && judgeWorker(w, leaseTimeoutMs, silenceSince) === "dead"
  );
  const removed = dead.length > 0 ? await store.pruneWorkers(dead) : [];
  const now = Date.now();
  const live = workers.filter((w) =>
    !removed.includes(w.id) && (w.id === judge?.selfId || isWorkerAlive(w, now, leaseTimeoutMs))
  );
  if (runsDir !== null) await removeStrayWakeSockets(runsDir, live);
  return live;
}

/**
 * Kills, on this host, every process of a run whose worker is gone, found
 * by what only that run has: its claim token, which names its cgroup and
 * is in its processes' environment (see containment.ts). A job's id and
 * attempt would not do: a job of another database may have the same. Runs
 * on other hosts are out of reach. Returns the pids killed.
 */
export function killOrphanedRun(job: Pick<ClaimedJob, "claimToken">): Promise<number[]> {
  return killLostRun(job.claimToken);
}

/**
 * Prunes dead worker processes (judged as `judge`, see
 * {@linkcode pruneDeadWorkers}), then settles the jobs they left
 * `processing`: from the exit status a finished run left in `runsDir`, or
 * else as failed ("worker lost"), following the retry rule. Each update is
 * fenced by the job's claim token, so a worker that was only slow cannot be
 * overruled twice, and its own late outcome is discarded. Returns the
 * rescued jobs.
 */
export async function rescueOrphanedJobs(
  store: Store,
  runsDir: string | null,
  judge?: Judge,
): Promise<ClaimedJob[]> {
  await pruneDeadWorkers(store, runsDir, judge);
  const now = Date.now();
  const orphans = await store.listOrphanedJobs();
  if (orphans.length === 0) return [];
  const config = await store.getConfig();
  const rescued: ClaimedJob[] = [];
  for (const job of orphans) {
    // The lost worker's run may still be going: end it before the retry can start.
    await killOrphanedRun(job);
    // A run that finished before anyone noticed its worker was gone left its
    // status behind: settle the job from it rather than run it again.
    const path = runsDir === null ? null : statusFilePath(runsDir, job.claimToken);
    const status = path === null ? undefined : readExitStatus(path);
    const outcome: AttemptOutcome = status === 0
      ? { state: "completed", exitCode: 0, error: null, finishedAt: now, output: NO_OUTPUT }
      : failureOutcome(
        job,
        {
          exitCode: status ?? null,
          error: status === undefined
            ? "worker lost: its process exited while the job ran"
            : `exited with code ${status} (recorded after its worker was lost)`,
          output: NO_OUTPUT,
        },
        config,
        now,
      );
    if (await store.finishAttempt(job, outcome)) rescued.push(job);
    // Removed only now that the job is settled (here or by a faster rescuer,
    // who read the same file): removed earlier, a rescuer that then failed
    // to commit would lose the status, and the finished run would run again.
    if (path !== null) removeStatusFile(path);
  }
  return rescued;
}
