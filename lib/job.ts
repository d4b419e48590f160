/**
 * The job record as the store hands it out, and its JSON form.
 *
 * @module
 */

import type { JobState } from "./states.ts";

/** A job to be added to the queue, fully resolved (defaults applied). */
export interface NewJob {
  id: string;
  /** The named queue it waits in; workers may serve only some queues. */
  queue: string;
  command: string;
  maxRetries: number;
  priority: number;
  /** When the job may first run, epoch ms. */
  runAt: number;
  timeoutMs: number | null;
  cwd: string;
  /** Ids of jobs that must complete before this one may run (`enqueue --after`). */
  after: string[];
  /** Variables set for every run on top of the worker's environment (`enqueue --env`); none if absent. */
  env?: Record<string, string>;
  /**
   * While a job of the same queue with this key is waiting or running, or
   * finished less than `uniqueForMs` ago, this one is not added
   * (`enqueue --unique-key`, lib/store/rules.ts); null or absent: no key.
   */
  uniqueKey?: string | null;
  /** How long a finished job goes on holding its key against this enqueue, ms; 0 if absent. */
  uniqueForMs?: number;
}

/** A stored job. Times are epoch milliseconds. */
export interface Job extends Omit<NewJob, "after" | "env" | "uniqueKey" | "uniqueForMs"> {
  env: Record<string, string>;
  uniqueKey: string | null;
  state: JobState;
  /** Runs started so far. */
  attempts: number;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  exitCode: number | null;
  lastError: string | null;
  /** The `worker start` process running it, while it is `processing`. */
  workerId: string | null;
}

/** A job a worker has claimed, with the token that proves it still owns it. */
export interface ClaimedJob extends Job {
  claimToken: string;
}

/** The captured output of one run of a job. */
export interface AttemptOutput {
  attempt: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Bytes dropped from the start of each stream to keep only its tail. */
  stdoutDropped: number;
  stderrDropped: number;
}

/** The JSON shape of a job: snake_case fields, times in ISO 8601 UTC. */
export interface JobJson {
  id: string;
  queue: string;
  command: string;
  state: JobState;
  attempts: number;
  max_retries: number;
  priority: number;
  run_at: string;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  exit_code: number | null;
  last_error: string | null;
  timeout_ms: number | null;
  cwd: string;
  worker_id: string | null;
  env: Record<string, string>;
  unique_key: string | null;
}

/** Formats epoch milliseconds as ISO 8601 UTC; null stays null. */
export function isoTime(ms: number): string;
export function isoTime(ms: number | null): string | null;
export function isoTime(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** The JSON form of a job, as `list --json` and `show --json` print it. */
export function jobToJson(job: Job): JobJson {
  return {
    id: job.id,
    queue: job.queue,
    command: job.command,
    state: job.state,
    attempts: job.attempts,
    max_retries: job.maxRetries,
    priority: job.priority,
    run_at: isoTime(job.runAt),
    created_at: isoTime(job.createdAt),
    updated_at: isoTime(job.updatedAt),
    started_at: isoTime(job.startedAt),
    finished_at: isoTime(job.finishedAt),
    exit_code: job.exitCode,
    last_error: job.lastError,
    timeout_ms: job.timeoutMs,
    cwd: job.cwd,
    worker_id: job.workerId,
    env: job.env,
    unique_key: job.uniqueKey,
  };
}

/** One finished run of a job, as `show` lists its history. Times are epoch ms. */
export interface AttemptRecord {
  jobId: string;
  /** The run's number within its job, from 1 (a `retry` starts again at 1). */
  attempt: number;
  startedAt: number | null;
  finishedAt: number;
  exitCode: number | null;
  /** Why the run failed; null when it succeeded. */
  error: string | null;
}

/** The JSON shape of an attempt: snake_case, times in ISO 8601 UTC. */
export function attemptToJson(attempt: AttemptRecord): Record<string, unknown> {
  return {
    job_id: attempt.jobId,
    attempt: attempt.attempt,
    started_at: isoTime(attempt.startedAt),
    finished_at: isoTime(attempt.finishedAt),
    exit_code: attempt.exitCode,
    error: attempt.error,
  };
}
