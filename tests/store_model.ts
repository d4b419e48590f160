/**
 * An in-memory model of a queue, as the `Store` contract (lib/store/store.ts)
 * states it: which job a claim takes, what every outcome, release, re-run,
 * revival and deletion does to a job and to the jobs that run after it.
 * The conformance suite replays a random history on a store and on this
 * model, and compares what the store answers through its interface with
 * what the model says it must.
 *
 * The rules are written out here again on purpose, from the contract rather
 * than from any backend's code, so that a backend that drifts from them is
 * caught.
 *
 * @module
 */

import type { NewJob } from "../lib/job.ts";
import { JOB_STATES, type JobState } from "../lib/states.ts";
import type { KillMode, QueueSummary, StateCounts } from "../lib/store/store.ts";

/** A job as the model holds it. */
export interface ModelJob {
  id: string;
  queue: string;
  priority: number;
  runAt: number;
  /** Its place in enqueue order, across batches. */
  order: number;
  state: JobState;
  attempts: number;
  /** The jobs it runs after that still exist (a deleted or purged one no longer holds it back). */
  after: string[];
  /** When it last finished (ran to its end, or went to the DLQ without running), epoch ms. */
  finishedAt: number | null;
  /** The worker process that holds it while it is processing. */
  workerId: string | null;
  /** What a kill asked for its current run. */
  kill: KillMode | null;
}

const CLAIMABLE: readonly JobState[] = ["pending", "failed"];
const FINISHED: readonly JobState[] = ["completed", "dead"];
const UNFINISHED: readonly JobState[] = ["blocked", "pending", "failed", "processing"];

/** Why the model refuses an operation, as the store must refuse it too. */
export class ModelRefusal extends Error {}

/** A queue's jobs and paused queues, changed only by the contract's rules. */
export class QueueModel {
  #jobs = new Map<string, ModelJob>();
  /** Paused queues, with when they were paused. */
  #paused = new Map<string, number>();
  #order = 0;
  /** How often each rule took effect, so that a test can tell that its history exercised it. */
  readonly seen = new Map<string, number>();

  /** Counts one more `event` in {@linkcode seen}. */
  note(event: string): void {
    this.seen.set(event, (this.seen.get(event) ?? 0) + 1);
  }

  /** Every job, in enqueue order. */
  jobs(): ModelJob[] {
    return [...this.#jobs.values()].sort((a, b) => a.order - b.order);
  }

  /** One job, or undefined. */
  get(id: string): ModelJob | undefined {
    return this.#jobs.get(id);
  }

  /**
   * Adds jobs, all or none: each must have a new id and run only after jobs
   * that exist (earlier in the batch counts). A job starts dead after a dead
   * job, blocked after one not completed, else pending.
   */
  enqueue(jobs: NewJob[], now: number): void {
    const ids = new Set(this.#jobs.keys());
    for (const job of jobs) {
      if (ids.has(job.id)) throw new ModelRefusal(`duplicate ${job.id}`);
      const missing = job.after.find((id) => !ids.has(id));
      if (missing) throw new ModelRefusal(`${job.id} runs after missing ${missing}`);
      ids.add(job.id);
    }
    for (const job of jobs) {
      const after = [...new Set(job.after)];
      const states = after.map((id) => this.#jobs.get(id)!.state);
      const state: JobState = states.includes("dead")
        ? "dead"
        : states.every((s) => s === "completed")
        ? "pending"
        : "blocked";
      this.note(`enqueued ${state}`);
      this.#jobs.set(job.id, {
        id: job.id,
        queue: job.queue,
        priority: job.priority,
        runAt: job.runAt,
        order: this.#order++,
        state,
        attempts: 0,
        after,
        finishedAt: state === "dead" ? now : null,
        workerId: null,
        kill: null,
      });
    }
  }

  pause(queue: string, now: number): boolean {
    if (this.#paused.has(queue)) return false;
    this.#paused.set(queue, now);
    this.note("paused");
    return true;
  }

  resume(queue: string): boolean {
    return this.#paused.delete(queue);
  }

  /** Jobs waiting to run in the served, unpaused queues (every queue, paused or not, if `all`). */
  #waiting(queues: readonly string[] | undefined, all = false): ModelJob[] {
    return this.jobs().filter((job) =>
      CLAIMABLE.includes(job.state) &&
      (all || !this.#paused.has(job.queue)) &&
      (queues === undefined || queues.includes(job.queue))
    );
  }

  /** The job a claim at `now` must take: due, served, unpaused; priority high first, run_at, enqueue order. */
  next(now: number, queues?: readonly string[]): string | undefined {
    return this.#waiting(queues)
      .filter((job) => job.runAt <= now)
      .sort((a, b) => b.priority - a.priority || a.runAt - b.runAt || a.order - b.order)[0]?.id;
  }

  /** The earliest run_at of a job waiting in the served, unpaused queues. */
  nextRunAt(queues?: readonly string[]): number | undefined {
    return min(this.#waiting(queues).map((job) => job.runAt));
  }

  /** The earliest run_at of a job waiting in any queue, paused or not. */
  oldestWaitingRunAt(): number | undefined {
    return min(this.#waiting(undefined, true).map((job) => job.runAt));
  }

  /** Jobs waiting for a later run_at, in any queue, soonest first. */
  scheduled(now: number): ModelJob[] {
    return this.#waiting(undefined, true).filter((job) => job.runAt > now)
      .sort((a, b) => a.runAt - b.runAt);
  }

  /** Unfinished jobs; with a selection, only in its queues and not in paused ones. */
  countUnfinished(selection?: { queues?: readonly string[] }): number {
    return this.jobs().filter((job) =>
      UNFINISHED.includes(job.state) &&
      (selection === undefined ||
        (!this.#paused.has(job.queue) &&
          (selection.queues === undefined || selection.queues.includes(job.queue))))
    ).length;
  }

  counts(jobs = this.jobs()): StateCounts {
    const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as StateCounts;
    for (const job of jobs) counts[job.state]++;
    return counts;
  }

  /** Every queue that holds jobs or is paused, by name. */
  queues(): QueueSummary[] {
    const names = new Set([...this.#paused.keys(), ...this.jobs().map((job) => job.queue)]);
    return [...names].sort().map((name) => ({
      name,
      pausedAt: this.#paused.get(name) ?? null,
      counts: this.counts(this.jobs().filter((job) => job.queue === name)),
      limits: { concurrency: null, rate: null },
      recentStarts: 0,
    }));
  }

  /** Kills asked for jobs that `workerId` runs, by job id. */
  killRequests(workerId: string): { id: string; mode: KillMode }[] {
    return this.jobs().filter((job) =>
      job.state === "processing" && job.workerId === workerId && job.kill !== null
    ).map((job) => ({ id: job.id, mode: job.kill! }));
  }

  claim(id: string, workerId: string): ModelJob {
    const job = this.#must(id);
    job.state = "processing";
    job.attempts++;
    job.workerId = workerId;
    job.kill = null;
    return job;
  }

  requestKill(id: string, mode: KillMode): void {
    const job = this.#must(id);
    if (job.state !== "processing") throw new ModelRefusal(`${id} is ${job.state}`);
    job.kill = mode;
    this.note("kill requested");
  }

  /** A run ends: a failed run of a job killed with mode dead goes to the DLQ whatever retries remain. */
  finish(id: string, state: "completed" | "failed" | "dead", at: number, retryAt?: number): void {
    const job = this.#must(id);
    job.state = state === "failed" && job.kill === "dead" ? "dead" : state;
    this.note(state === job.state ? `run ${state}` : "failed run of a job killed dead buried");
    if (job.state === "failed" && retryAt !== undefined) job.runAt = retryAt;
    job.finishedAt = at;
    job.workerId = null;
    job.kill = null;
    if (job.state === "completed") this.#release(id);
    if (job.state === "dead") this.#abandon(id, at);
  }

  /** A claimed job goes back to pending, its attempt not counted. */
  release(id: string): void {
    const job = this.#must(id);
    this.note("released");
    job.state = "pending";
    job.attempts--;
    job.workerId = null;
    job.kill = null;
  }

  /** Deletes jobs that are not running, all or none; jobs blocked on a deleted unfinished one die. */
  delete(ids: string[], now: number): number {
    const unique = [...new Set(ids)];
    for (const id of unique) {
      if (this.#must(id).state === "processing") throw new ModelRefusal(`${id} is running`);
    }
    for (const id of unique) {
      if (this.#jobs.get(id)!.state !== "completed") this.#abandon(id, now);
      this.#jobs.delete(id);
      for (const other of this.#jobs.values()) other.after = other.after.filter((a) => a !== id);
    }
    return unique.length;
  }

  /** Deletes the jobs in finished `states` that finished before `finishedBefore`; returns how many. */
  purge(states: readonly JobState[], finishedBefore: number): number {
    const ids = this.jobs().filter((job) =>
      FINISHED.includes(job.state) && states.includes(job.state) &&
      job.finishedAt! < finishedBefore
    ).map((job) => job.id);
    return this.delete(ids, finishedBefore);
  }

  /**
   * `retry` (from completed or dead) and `dlq retry` (from dead): the jobs
   * start over, oldest first, attempts 0, due at `now`; one whose
   * dependencies have not all completed waits blocked, one after a dead job
   * is refused. All or none. Returns the ids in enqueue order.
   */
  startOver(ids: string[] | "all", from: readonly JobState[], now: number): string[] {
    const targets = ids === "all"
      ? this.jobs().filter((job) => from.includes(job.state))
      : [...new Set(ids)].map((id) => this.#must(id)).sort((a, b) => a.order - b.order);
    const before = this.#snapshot();
    try {
      for (const job of targets) {
        if (!from.includes(job.state)) throw new ModelRefusal(`${job.id} is ${job.state}`);
        Object.assign(job, { state: "pending", attempts: 0, runAt: now });
        const states = job.after.map((id) => this.#jobs.get(id)!.state);
        if (states.includes("dead")) throw new ModelRefusal(`${job.id} runs after a dead job`);
        if (states.some((s) => s !== "completed")) job.state = "blocked";
        this.note(`started over ${job.state}`);
      }
    } catch (error) {
      this.#jobs = before;
      throw error;
    }
    return targets.map((job) => job.id);
  }

  #must(id: string): ModelJob {
    const job = this.#jobs.get(id);
    if (!job) throw new ModelRefusal(`no job ${id}`);
    return job;
  }

  #snapshot(): Map<string, ModelJob> {
    return new Map([...this.#jobs].map(([id, job]) => [id, { ...job, after: [...job.after] }]));
  }

  #dependents(id: string): ModelJob[] {
    return this.jobs().filter((job) => job.state === "blocked" && job.after.includes(id));
  }

  /** Blocked jobs after `id`, which completed, wait no more once all they run after has completed. */
  #release(id: string): void {
    for (const job of this.#dependents(id)) {
      if (job.after.every((a) => this.#jobs.get(a)!.state === "completed")) {
        job.state = "pending";
        this.note("unblocked");
      }
    }
  }

  /** Blocked jobs after `id` go to the DLQ, and the jobs blocked on them, and so on. */
  #abandon(id: string, now: number): void {
    for (const job of this.#dependents(id)) {
      job.state = "dead";
      job.finishedAt = now;
      this.note("abandoned");
      this.#abandon(job.id, now);
    }
  }
}

function min(values: number[]): number | undefined {
  return values.length === 0 ? undefined : Math.min(...values);
}
