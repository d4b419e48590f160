/**
 * Rows to records, for every backend: both keep the same tables with the
 * same column names (lib/store/sqlite_migrations.ts, pg_migrations.ts), so
 * a row reads into a job, a run or a worker the same way. What differs is
 * how a backend hands over bytes and flags: SQLite gives a Uint8Array and
 * 0/1, PostgreSQL's client a Node Buffer and a boolean; both are read here.
 *
 * @module
 */

import type { AttemptOutput, AttemptRecord, ClaimedJob, Job } from "../job.ts";
import { JOB_STATES, type JobState } from "../states.ts";
import type { LiveOutput, NewestOutput, StateCounts, WorkerRecord } from "./store.ts";

/** A row as a backend's client returns it: column name to value. */
export type RecordRow = Record<string, unknown>;

/** A binary column as a plain Uint8Array (a Node Buffer is one, on a larger buffer maybe). */
export function bytes(value: unknown): Uint8Array {
  const b = value as Uint8Array;
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** A row of `jobs` as a job. */
export function rowToJob(row: RecordRow): Job {
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
export function rowToClaimed(row: RecordRow): ClaimedJob {
  return { ...rowToJob(row), claimToken: row.claim_token as string };
}

/** A row of `job_attempts` (without its output) as a run's record. */
export function rowToAttempt(row: RecordRow): AttemptRecord {
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
export function rowToOutput(row: RecordRow): AttemptOutput {
  return {
    attempt: row.attempt as number,
    stdout: bytes(row.stdout),
    stderr: bytes(row.stderr),
    stdoutDropped: row.stdout_dropped as number,
    stderrDropped: row.stderr_dropped as number,
  };
}

/** A row of `live_output` as a running job's newest output. */
export function rowToLiveOutput(row: RecordRow): LiveOutput {
  return {
    claimToken: row.claim_token as string,
    attempt: row.attempt as number,
    stdout: bytes(row.stdout),
    stderr: bytes(row.stderr),
    stdoutTotal: row.stdout_total as number,
    stderrTotal: row.stderr_total as number,
    updatedAt: row.updated_at as number,
  };
}

/**
 * A job's newest output from a row that joins the job (`id`, `state`,
 * `current_attempt`), its live output if it runs (`live_*`, `stdout_total`,
 * `stderr_total`) and its latest finished run otherwise (`job_attempts`'
 * columns); undefined for a job that has not run.
 */
export function rowToNewestOutput(row: RecordRow): NewestOutput | undefined {
  if (row.state === "processing") {
    const stdout = row.live_stdout === null ? new Uint8Array() : bytes(row.live_stdout);
    const stderr = row.live_stderr === null ? new Uint8Array() : bytes(row.live_stderr);
    return {
      // A run that has printed nothing yet has no live row.
      attempt: (row.live_attempt ?? row.current_attempt) as number,
      stdout,
      stderr,
      stdoutDropped: ((row.stdout_total as number | null) ?? 0) - stdout.length,
      stderrDropped: ((row.stderr_total as number | null) ?? 0) - stderr.length,
      finished: false,
    };
  }
  return row.attempt === null ? undefined : { ...rowToOutput(row), finished: true };
}

/** A row of `workers` as a worker process's record. */
export function rowToWorker(row: RecordRow): WorkerRecord {
  return {
    id: row.id as string,
    pid: row.pid as number,
    host: row.host as string,
    threads: row.threads as number,
    startedAt: row.started_at as number,
    heartbeatAt: row.heartbeat_at as number,
    stopRequested: row.stop_requested === true || row.stop_requested === 1,
    procStart: (row.proc_start as string | null) ?? null,
  };
}

/** Counts with every state at 0. */
export function emptyCounts(): StateCounts {
  return Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as StateCounts;
}
