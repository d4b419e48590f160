/**
 * The storage contract. The CLI and the workers reach the database only
 * through {@linkcode Store}, so that another backend (PostgreSQL) can be added
 * without touching them. Every method is async for that reason, even where
 * SQLite answers synchronously.
 *
 * @module
 */

import type { QueueConfig } from "../config.ts";
import type { AttemptOutput, ClaimedJob, Job, NewJob } from "../job.ts";
import type { JobState } from "../states.ts";

/** Counts of jobs in every state; every state is present. */
export type StateCounts = Record<JobState, number>;

/** How a claimed job's run ended, as the executor decided it. */
export interface AttemptOutcome {
  /** The state the job moves to. */
  state: "completed" | "failed" | "dead";
  /** For `failed`: when the retry may run, epoch ms. */
  retryAt?: number;
  /** The command's exit code; null when it never ran or died without one. */
  exitCode: number | null;
  /** Why the run failed; null on success. */
  error: string | null;
  /** When the run ended, epoch ms. */
  finishedAt: number;
  /** The captured output of the run. */
  output: Omit<AttemptOutput, "attempt">;
}

/** A `worker start` process as registered in the database. */
export interface WorkerRecord {
  id: string;
  pid: number;
  host: string;
  /** Web Workers running jobs in the process. */
  threads: number;
  startedAt: number;
  heartbeatAt: number;
  /** Set by `worker stop`: the process should finish its jobs and exit. */
  stopRequested: boolean;
  /** The process's start time as its OS reports it (Linux: clock ticks since boot), if known. */
  procStart: string | null;
}

/** Which jobs `listJobs` returns. */
export interface JobFilter {
  state?: JobState;
  /** At most this many, newest first; undefined for all. */
  limit?: number;
}

/** A queue's storage backend. */
export interface Store {
  /** Where the data lives, for messages. */
  readonly location: string;

  /** Adds jobs in one transaction: all of them or, on any error, none. */
  enqueue(jobs: NewJob[], now: number): Promise<void>;
  /** One job by id, or undefined. */
  getJob(id: string): Promise<Job | undefined>;
  /** Jobs newest first, optionally of one state. */
  listJobs(filter: JobFilter): Promise<Job[]>;
  /** How many jobs are in each state. */
  countByState(): Promise<StateCounts>;
  /** How many jobs are waiting to run (now or later) or running. */
  countUnfinished(): Promise<number>;
  /** The earliest `run_at` of any job waiting to run, or undefined when none waits. */
  nextRunAt(): Promise<number | undefined>;
  /** Whether another connection has committed a change since the last call. */
  hasChanged(): Promise<boolean>;

  /**
   * Atomically takes the next due job (priority high first, then `run_at`,
   * then enqueue order) for `workerId`, counting the attempt. Two callers
   * never receive the same job.
   */
  claim(workerId: string, now: number): Promise<ClaimedJob | undefined>;
  /**
   * Records the end of a run. Takes effect only while the job is still
   * `processing` under `job.claimToken`; returns whether it did.
   */
  finishAttempt(job: ClaimedJob, outcome: AttemptOutcome): Promise<boolean>;
  /** Returns a claimed job to `pending` without counting its attempt; returns whether it did. */
  releaseJob(job: ClaimedJob, now: number): Promise<boolean>;
  /**
   * Moves dead jobs back to `pending` with attempts 0. With ids, every one of
   * them must be dead or nothing changes. Returns the ids revived.
   */
  reviveDead(ids: string[] | "all", now: number): Promise<string[]>;
  /**
   * Deletes jobs in the given finished states whose run ended before
   * `finishedBefore` (epoch ms), with their output. Returns how many.
   */
  purgeJobs(states: readonly JobState[], finishedBefore: number): Promise<number>;
  /** Keeps the storage compact (for SQLite: folds a large WAL back into the database). */
  checkpoint(): Promise<void>;
  /** The output captured from the latest finished run of a job. */
  latestOutput(id: string): Promise<AttemptOutput | undefined>;

  /** The queue-wide settings, defaults filled in. */
  getConfig(): Promise<QueueConfig>;
  /** Stores one setting, already validated, under its `config` key. */
  setConfig(key: string, value: number | null): Promise<void>;

  /** Registers a `worker start` process. */
  registerWorker(worker: WorkerRecord): Promise<void>;
  /**
   * Records that a worker process is alive; re-registers it if its row went
   * missing. Returns whether a stop was requested for it.
   */
  heartbeatWorker(worker: WorkerRecord, now: number): Promise<boolean>;
  /** Removes worker processes from the registry. */
  removeWorkers(ids: string[]): Promise<void>;
  /**
   * Jobs left `processing` by a worker process that is no longer registered
   * (it exited uncleanly, or was pruned as dead), with their claim tokens.
   */
  listOrphanedJobs(): Promise<ClaimedJob[]>;
  /** Every registered worker process, live or not. */
  listWorkers(): Promise<WorkerRecord[]>;
  /** Asks worker processes to finish their current jobs and exit. */
  requestWorkerStop(ids: string[]): Promise<void>;

  /** Releases the connection. */
  close(): Promise<void>;
}
