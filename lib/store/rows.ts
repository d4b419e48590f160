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
import type { CatchUpPolicy, NewSchedule, OverlapPolicy, Schedule, Timing } from "../schedules.ts";
import type { QueueLimits } from "../queue_limits.ts";
import type {
  LiveOutput,
  NewestOutput,
  QueueRunTotals,
  QueueSummary,
  StateCounts,
  WorkerRecord,
} from "./store.ts";

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
    env: row.env == null ? {} : JSON.parse(row.env as string),
    uniqueKey: (row.unique_key as string | null | undefined) ?? null,
  };
}

/**
 * A job's environment as both backends store it in `jobs.env`: JSON text,
 * NULL when it sets nothing ({@linkcode rowToJob} reads it back).
 */
export function envColumn(env: Record<string, string> | undefined): string | null {
  return env === undefined || Object.keys(env).length === 0 ? null : JSON.stringify(env);
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

/** A queue's limits from its row (`concurrency`, `rate_limit`, `rate_period_ms`). */
export function rowToLimits(row: Record<string, unknown>): QueueLimits {
  const starts = row.rate_limit as number | null;
  return {
    concurrency: row.concurrency === null ? null : Number(row.concurrency),
    rate: starts === null ? null : { starts: Number(starts), periodMs: Number(row.rate_period_ms) },
  };
}

/**
 * Whether `listQueues` shows a queue: one that holds jobs, is paused or has
 * limits. Upkeep forgets the others (see forgetEmptyQueues in both backends).
 */
export function isKept(queue: QueueSummary): boolean {
  return queue.pausedAt !== null || queue.limits.concurrency !== null ||
    queue.limits.rate !== null || Object.values(queue.counts).some((n) => n > 0);
}

/**
 * The upper bounds, ms, of the buckets by which the stores tally run
 * durations (see `Store.runTotals`): frozen in the schema
 * (migration 6 of lib/store/sqlite_migrations.ts and pg_migrations.ts; the
 * tests hold them equal), from quick shell commands to hour-long jobs.
 */
export const RUN_DURATION_BOUNDS_MS: readonly number[] = [
  50,
  100,
  250,
  500,
  1_000,
  2_500,
  5_000,
  10_000,
  30_000,
  60_000,
  300_000,
  900_000,
  3_600_000,
];

/**
 * The rows of `run_tally` (any number per queue, success, retry and bucket:
 * PostgreSQL's are deltas) as each queue's totals, sorted by queue name.
 * Bucket k counts the runs that lasted at most bound k of
 * {@linkcode RUN_DURATION_BOUNDS_MS}, the last bucket longer ones, -1 runs
 * that never started; the totals' buckets are cumulative.
 */
export function tallyToRunTotals(rows: readonly RecordRow[]): QueueRunTotals[] {
  const byQueue = new Map<string, QueueRunTotals>();
  for (const row of rows) {
    const queue = row.queue as string;
    let totals = byQueue.get(queue);
    if (totals === undefined) {
      totals = {
        queue,
        succeeded: 0,
        failed: 0,
        retries: 0,
        timed: 0,
        durationSumMs: 0,
        atMostMs: RUN_DURATION_BOUNDS_MS.map(() => 0),
      };
      byQueue.set(queue, totals);
    }
    const n = Number(row.n);
    const bucket = Number(row.bucket);
    if (row.succeeded === true || row.succeeded === 1) totals.succeeded += n;
    else totals.failed += n;
    if (row.retry === true || row.retry === 1) totals.retries += n;
    if (bucket >= 0) {
      totals.timed += n;
      totals.durationSumMs += Number(row.duration_ms);
      for (let i = bucket; i < RUN_DURATION_BOUNDS_MS.length; i++) totals.atMostMs[i] += n;
    }
  }
  return [...byQueue.values()].sort((a, b) => a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0);
}

/** A row of `schedules` (with `last_job_state`, its last job's state) as a schedule. */
export function rowToSchedule(row: RecordRow): Schedule {
  const timing: Timing = row.cron === null
    ? { kind: "every", everyMs: Number(row.every_ms) }
    : { kind: "cron", expression: row.cron as string, timeZone: row.time_zone as string };
  return {
    name: row.name as string,
    timing,
    overlap: row.overlap as OverlapPolicy,
    catchUp: row.catch_up as CatchUpPolicy,
    job: JSON.parse(row.job as string),
    createdAt: Number(row.created_at),
    pausedAt: row.paused_at === null ? null : Number(row.paused_at),
    nextFireAt: row.next_fire_at === null ? null : Number(row.next_fire_at),
    lastFireAt: row.last_fire_at === null ? null : Number(row.last_fire_at),
    lastJobId: row.last_job_id as string | null,
    lastJobState: (row.last_job_state ?? null) as JobState | null,
    skipped: Number(row.skipped),
    lastSkipAt: row.last_skip_at === null ? null : Number(row.last_skip_at),
  };
}

/** A schedule's columns, in the order of {@linkcode SCHEDULE_COLUMNS}. */
export function scheduleValues(schedule: NewSchedule): (string | number | null)[] {
  const { timing } = schedule;
  return [
    schedule.name,
    timing.kind === "cron" ? timing.expression : null,
    timing.kind === "cron" ? timing.timeZone : null,
    timing.kind === "every" ? timing.everyMs : null,
    schedule.overlap,
    schedule.catchUp,
    JSON.stringify(schedule.job),
    schedule.createdAt,
    schedule.nextFireAt,
  ];
}

/** The columns a new schedule sets. */
export const SCHEDULE_COLUMNS =
  "name, cron, time_zone, every_ms, overlap, catch_up, job, created_at, next_fire_at";
