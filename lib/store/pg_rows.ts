/**
 * What the PostgreSQL backend's files share: rows turned into queuectl's
 * records (the same records as SQLite's, from the same column names), and
 * the state lists of lib/states.ts as query parameters, so that every
 * statement guards its updates with the states that module allows.
 *
 * @module
 */

import type { AttemptOutput, AttemptRecord, ClaimedJob, Job } from "../job.ts";
import {
  CLAIMABLE_STATES,
  JOB_STATES,
  type JobState,
  type Transition,
  UNFINISHED_STATES,
} from "../states.ts";
import type { PgRow } from "./pg_connection.ts";
import type { StateCounts, WorkerRecord } from "./store.ts";

/** The states a transition may leave, for `state = ANY(${leaving(t)})`. */
export function leaving(transition: Transition): string[] {
  return [...transition.from];
}

/** The states a worker may claim from (they match the partial indexes' WHERE). */
export const CLAIMABLE: string[] = [...CLAIMABLE_STATES];

/** The states of jobs that still need a worker. */
export const UNFINISHED: string[] = [...UNFINISHED_STATES];

/** Bytes as the client returns `bytea` (a Node Buffer) as a plain Uint8Array. */
export function bytes(value: unknown): Uint8Array {
  const b = value as Uint8Array;
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** A row of `jobs` as a job. */
export function rowToJob(row: PgRow): Job {
  return {
    id: row.id as string,
    queue: row.queue as string,
    command: row.command as string,
    state: row.state as JobState,
    attempts: row.attempts as number,
    maxRetries: row.max_retries as number,
    priority: row.priority as number,
    runAt: row.run_at as number,
    createdAt: row.created_at as number,
    updatedAt: row.updated_at as number,
    startedAt: row.started_at as number | null,
    finishedAt: row.finished_at as number | null,
    exitCode: row.exit_code as number | null,
    lastError: row.last_error as string | null,
    timeoutMs: row.timeout_ms as number | null,
    cwd: row.cwd as string,
    workerId: row.worker_id as string | null,
  };
}

/** A row of `jobs` of a running job as the job with its claim. */
export function rowToClaimed(row: PgRow): ClaimedJob {
  return { ...rowToJob(row), claimToken: row.claim_token as string };
}

/** A row of `job_attempts` (without its output) as a run's record. */
export function rowToAttempt(row: PgRow): AttemptRecord {
  return {
    jobId: row.job_id as string,
    attempt: row.attempt as number,
    startedAt: row.started_at as number | null,
    finishedAt: row.finished_at as number,
    exitCode: row.exit_code as number | null,
    error: row.error as string | null,
  };
}

/** A row of `job_attempts` as a run's output. */
export function rowToOutput(row: PgRow): AttemptOutput {
  return {
    attempt: row.attempt as number,
    stdout: bytes(row.stdout),
    stderr: bytes(row.stderr),
    stdoutDropped: row.stdout_dropped as number,
    stderrDropped: row.stderr_dropped as number,
  };
}

/** A row of `workers` as a worker process's record. */
export function rowToWorker(row: PgRow): WorkerRecord {
  return {
    id: row.id as string,
    pid: row.pid as number,
    host: row.host as string,
    threads: row.threads as number,
    startedAt: row.started_at as number,
    heartbeatAt: row.heartbeat_at as number,
    stopRequested: row.stop_requested as boolean,
    procStart: (row.proc_start as string | null) ?? null,
  };
}

/** Counts with every state at 0. */
export function emptyCounts(): StateCounts {
  return Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as StateCounts;
}
