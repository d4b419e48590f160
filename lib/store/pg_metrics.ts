/**
 * The PostgreSQL backend: metrics over the record of finished runs
 * (`job_attempts`), for `stats`, `top` and `wait`: counts and durations
 * since a moment, the latest failures, the last run, and how many jobs
 * finished since a mark.
 *
 * @module
 */

import type { AttemptRecord } from "../job.ts";
import { FINAL_STATES } from "../states.ts";
import { type PgConnection, sqlState, type Tx } from "./pg_connection.ts";
import { UNFINISHED } from "./pg_rows.ts";
import { rowToAttempt, tallyToRunTotals } from "./rows.ts";
import type { FinishedCounts, HistoryMark, MinuteRuns, QueueRunTotals, RunStats } from "./store.ts";

/** The newest failed runs of any job, newest first. */
export function recentFailures(conn: PgConnection, limit: number): Promise<AttemptRecord[]> {
  return conn.read(async (sql) => {
    const rows = await sql`
      SELECT job_id, attempt, started_at, finished_at, exit_code, error FROM job_attempts
      WHERE error IS NOT NULL ORDER BY seq DESC LIMIT ${limit}`;
    return rows.map(rowToAttempt);
  });
}

/** The finished run that ended last, of any job (of two that ended together, the later recorded). */
export function lastRun(conn: PgConnection): Promise<AttemptRecord | undefined> {
  return conn.read(async (sql) => {
    const [row] = await sql`
      SELECT job_id, attempt, started_at, finished_at, exit_code, error FROM job_attempts
      ORDER BY finished_at DESC, seq DESC LIMIT 1`;
    return row && rowToAttempt(row);
  });
}

/**
 * Counts and durations of the runs that ended at or after `since` (epoch
 * ms), in one statement. The percentiles are the durations SQLite's store
 * picks: the value at 0-based rank ceil(p × n) − 1 of the n sorted, which is
 * `percentile_disc`'s definition. The mean is taken in float8, as SQLite's
 * is a double.
 */
export function runStats(conn: PgConnection, since: number): Promise<RunStats> {
  return conn.read(async (sql) => {
    const [totals] = await sql`
      SELECT count(*) AS runs, count(*) FILTER (WHERE error IS NULL) AS succeeded,
        count(*) FILTER (WHERE attempt > 1) AS retries,
        count(started_at) AS timed, avg((finished_at - started_at)::float8) AS mean,
        max(finished_at - started_at) AS max,
        percentile_disc(0.5) WITHIN GROUP (ORDER BY finished_at - started_at) AS p50,
        percentile_disc(0.95) WITHIN GROUP (ORDER BY finished_at - started_at) AS p95
      FROM job_attempts WHERE finished_at >= ${since}`;
    const runs = totals.runs as number;
    const succeeded = totals.succeeded as number;
    return {
      runs,
      succeeded,
      failed: runs - succeeded,
      retries: totals.retries as number,
      durationMs: totals.timed === 0 ? null : {
        mean: totals.mean as number,
        p50: totals.p50 as number,
        p95: totals.p95 as number,
        max: totals.max as number,
      },
    };
  });
}

/** The runs that ended at or after `since`, by the minute they ended in, oldest first. */
export function runsByMinute(conn: PgConnection, since: number): Promise<MinuteRuns[]> {
  return conn.read(async (sql) => {
    const rows = await sql`
      SELECT (finished_at / 60000) * 60000 AS minute, count(*) AS runs,
        count(*) FILTER (WHERE error IS NULL) AS succeeded
      FROM job_attempts WHERE finished_at >= ${since}
      GROUP BY 1 ORDER BY 1`;
    return rows.map((row) => ({
      minute: Number(row.minute),
      succeeded: Number(row.succeeded),
      failed: Number(row.runs) - Number(row.succeeded),
    }));
  });
}

/** How long the mark waits for the runs being recorded, each try, before it lets them go on. */
const MARK_LOCK_TIMEOUT = "200ms";
/** How many times the mark tries to take its moment before it reads without it. */
const MARK_TRIES = 10;
/** `lock_not_available`: a lock not granted within `lock_timeout`. */
const LOCK_NOT_AVAILABLE = "55P03";

/**
 * Marks the present moment, with the jobs unfinished at it, in one read.
 *
 * The run cursor is `job_attempts.seq`, but unlike SQLite's single writer,
 * PostgreSQL hands out `seq` when a row is inserted, not when it commits: a
 * run recorded by a transaction still open at the mark may commit later with
 * a lower `seq` than runs already visible, and would be lost to
 * {@linkcode countFinishedSince}. So the mark briefly takes the table in
 * SHARE mode, which waits for the transactions recording runs to commit and
 * holds new ones back for the one read. The wait is bounded (a purge under
 * way holds the table longer): after {@linkcode MARK_TRIES} tries the mark
 * is read without it, exact unless a run commits at that very moment.
 */
export function markHistory(conn: PgConnection, now: number): Promise<HistoryMark> {
  return conn.write(async (tx) => {
    await tx.unsafe(`SET LOCAL lock_timeout = '${MARK_LOCK_TIMEOUT}'`);
    for (let tries = 1; tries <= MARK_TRIES && !await settleRuns(tx); tries++);
    const [row] = await tx`
      SELECT (SELECT coalesce(max(seq), 0) FROM job_attempts) AS seq,
        (SELECT coalesce(sum(n), 0)::bigint FROM job_count_deltas
         WHERE state = ANY(${UNFINISHED})) AS unfinished`;
    return { at: now, unfinished: row.unfinished as number, runCursor: row.seq as number };
  });
}

/** Takes `job_attempts` in SHARE mode within a savepoint; false when the lock timed out. */
async function settleRuns(tx: Tx): Promise<boolean> {
  try {
    await tx.savepoint((sp) => sp`LOCK TABLE job_attempts IN SHARE MODE`);
    return true;
  } catch (error) {
    if (sqlState(error) === LOCK_NOT_AVAILABLE) return false;
    throw error;
  }
}

/**
 * How many jobs have finished since `mark` and are still finished, in one
 * statement (one snapshot). Runs with a higher `seq` than the mark's were
 * recorded after it (see {@linkcode markHistory}); only jobs whose latest
 * run that is count: a job retried since has run again or waits to. A job
 * sent to the DLQ without running (after a job it ran after) has no run of
 * its own: its finish time tells.
 */
export function countFinishedSince(
  conn: PgConnection,
  mark: HistoryMark,
): Promise<FinishedCounts> {
  return conn.read(async (sql) => {
    const rows = await sql`
      SELECT j.state, count(*) AS n FROM job_attempts a
      JOIN jobs j ON j.id = a.job_id
      WHERE a.seq > ${mark.runCursor} AND j.state = ANY(${[...FINAL_STATES]})
        AND a.seq = (SELECT max(seq) FROM job_attempts b WHERE b.job_id = a.job_id)
      GROUP BY j.state
      UNION ALL
      SELECT 'dead', count(*) FROM jobs j
      WHERE j.state = 'dead' AND j.finished_at >= ${mark.at} AND NOT EXISTS (
        SELECT 1 FROM job_attempts a WHERE a.job_id = j.id AND a.seq > ${mark.runCursor}
      )`;
    const counts: FinishedCounts = { completed: 0, dead: 0 };
    for (const row of rows) counts[row.state as keyof FinishedCounts] += row.n as number;
    return counts;
  });
}

/**
 * The tally of every finished run ever recorded, by queue (see
 * `Store.runTotals`): its rows of deltas, summed by group in one statement.
 */
export function runTotals(conn: PgConnection): Promise<QueueRunTotals[]> {
  return conn.read(async (sql) =>
    tallyToRunTotals(
      await sql`
        SELECT queue, succeeded, retry, bucket, sum(n)::bigint AS n,
          sum(duration_ms)::bigint AS duration_ms
        FROM run_tally GROUP BY queue, succeeded, retry, bucket`,
    )
  );
}
