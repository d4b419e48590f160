/**
 * What the SQLite backend's files share: rows turned into queuectl's
 * records, and SQL fragments generated from lib/states.ts, so that every
 * statement guards its updates with the states that module allows.
 *
 * @module
 */

import type { AttemptOutput, AttemptRecord, Job } from "../job.ts";
import {
  CLAIMABLE_STATES,
  JOB_STATES,
  type JobState,
  type Transition,
  UNFINISHED_STATES,
} from "../states.ts";
import type { Row } from "./sqlite_connection.ts";
import type { QueueSelection, StateCounts, WorkerRecord } from "./store.ts";

/** States as a SQL list: `'pending', 'failed'`. */
export function sqlList(states: readonly JobState[]): string {
  return states.map((s) => `'${s}'`).join(", ");
}

/** The `state IN (…)` guard for a transition: an update only applies to a job in a state it may leave. */
export function leaving(transition: Transition): string {
  return `state IN (${sqlList(transition.from)})`;
}

/** The states a worker may claim from, as a SQL list (they match the partial indexes' WHERE). */
export const CLAIMABLE = sqlList(CLAIMABLE_STATES);

/** The states of jobs that still need a worker, as a SQL list. */
export const UNFINISHED = sqlList(UNFINISHED_STATES);

/** The served, unpaused queues of a selection, as SQL over the queues table aliased `q`. */
export const SELECTED_QUEUES = `q.paused_at IS NULL
  AND (:queues IS NULL OR q.name IN (SELECT value FROM json_each(:queues)))`;

/** A queue selection as the JSON text that SQL reads with json_each, or null for every queue. */
export function queuesParam(selection: QueueSelection | undefined): string | null {
  return selection?.queues === undefined ? null : JSON.stringify(selection.queues);
}

/** A row of `jobs` as a job. */
export function rowToJob(row: Row): Job {
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

/** A row of `job_attempts` (without its output) as a run's record. */
export function rowToAttempt(row: Row): AttemptRecord {
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
export function rowToOutput(row: Row): AttemptOutput {
  return {
    attempt: row.attempt as number,
    stdout: row.stdout as Uint8Array,
    stderr: row.stderr as Uint8Array,
    stdoutDropped: row.stdout_dropped as number,
    stderrDropped: row.stderr_dropped as number,
  };
}

/** A row of `workers` as a worker process's record. */
export function rowToWorker(row: Row): WorkerRecord {
  return {
    id: row.id as string,
    pid: row.pid as number,
    host: row.host as string,
    threads: row.threads as number,
    startedAt: row.started_at as number,
    heartbeatAt: row.heartbeat_at as number,
    stopRequested: row.stop_requested === 1,
    procStart: (row.proc_start as string | null) ?? null,
  };
}

/** Counts with every state at 0. */
export function emptyCounts(): StateCounts {
  return Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as StateCounts;
}
