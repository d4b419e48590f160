/**
 * Metrics over the record of finished runs (`job_attempts`), for `stats`,
 * `top` and `wait`: counts and durations since a moment, the latest
 * failures, the last run, and how many jobs finished since a mark.
 *
 * @module
 */

import type { AttemptRecord } from "../job.ts";
import { FINAL_STATES } from "../states.ts";
import type { Row, SqliteConnection } from "./sqlite_connection.ts";
import { sqlList, UNFINISHED } from "./sqlite_rows.ts";
import { rowToAttempt, tallyToRunTotals } from "./rows.ts";
import type { FinishedCounts, HistoryMark, MinuteRuns, QueueRunTotals, RunStats } from "./store.ts";

/** The newest failed runs of any job, newest first. */
export function recentFailures(conn: SqliteConnection, limit: number): Promise<AttemptRecord[]> {
  return conn.read(() =>
    (conn.sql(
      `SELECT job_id, attempt, started_at, finished_at, exit_code, error
       FROM job_attempts INDEXED BY job_attempts_failed
       WHERE error IS NOT NULL ORDER BY seq DESC LIMIT ?`,
    ).all(limit) as Row[]).map(rowToAttempt)
  );
}

/** The finished run that ended last, of any job. */
export function lastRun(conn: SqliteConnection): Promise<AttemptRecord | undefined> {
  return conn.read(() => {
    const row = conn.sql(
      `SELECT job_id, attempt, started_at, finished_at, exit_code, error
       FROM job_attempts INDEXED BY job_attempts_by_finish ORDER BY finished_at DESC LIMIT 1`,
    ).get() as Row | undefined;
    return row && rowToAttempt(row);
  });
}

/** Counts and durations of the runs that ended at or after `since` (epoch ms). */
export function runStats(conn: SqliteConnection, since: number): Promise<RunStats> {
  return conn.read(() => {
    const totals = conn.sql(
      `SELECT count(*) AS runs, coalesce(sum(error IS NULL), 0) AS succeeded,
         coalesce(sum(attempt > 1), 0) AS retries,
         count(started_at) AS timed, avg(finished_at - started_at) AS mean,
         max(finished_at - started_at) AS max
       FROM job_attempts INDEXED BY job_attempts_by_finish WHERE finished_at >= ?`,
    ).get(since) as Row;
    const runs = totals.runs as number;
    const succeeded = totals.succeeded as number;
    const timed = totals.timed as number;
    // Retention may delete runs between the two reads: a missing row falls back to the max.
    const percentile = (p: number): number => {
      const row = conn.sql(
        `SELECT finished_at - started_at AS d FROM job_attempts INDEXED BY job_attempts_by_finish
         WHERE finished_at >= ? AND started_at IS NOT NULL ORDER BY d LIMIT 1 OFFSET ?`,
      ).get(since, Math.min(timed - 1, Math.ceil(p * timed) - 1)) as Row | undefined;
      return (row?.d ?? totals.max) as number;
    };
    return {
      runs,
      succeeded,
      failed: runs - succeeded,
      retries: totals.retries as number,
      durationMs: timed === 0 ? null : {
        mean: totals.mean as number,
        p50: percentile(0.5),
        p95: percentile(0.95),
        max: totals.max as number,
      },
    };
  });
}

/** The runs that ended at or after `since`, by the minute they ended in, oldest first. */
export function runsByMinute(conn: SqliteConnection, since: number): Promise<MinuteRuns[]> {
  return conn.read(() =>
    (conn.sql(
      `SELECT (finished_at / 60000) * 60000 AS minute, count(*) AS runs,
         coalesce(sum(error IS NULL), 0) AS succeeded
       FROM job_attempts INDEXED BY job_attempts_by_finish WHERE finished_at >= ?
       GROUP BY minute ORDER BY minute`,
    ).all(since) as Row[]).map((row) => ({
      minute: row.minute as number,
      succeeded: row.succeeded as number,
      failed: (row.runs as number) - (row.succeeded as number),
    }))
  );
}

/** Marks the present moment, with the jobs unfinished at it, in one read. */
export function markHistory(conn: SqliteConnection, now: number): Promise<HistoryMark> {
  return conn.readSnapshot(() => {
    const runs = conn.sql("SELECT coalesce(max(seq), 0) AS seq FROM job_attempts").get() as Row;
    const unfinished = conn.sql(
      `SELECT coalesce(sum(n), 0) AS n FROM queue_counts WHERE state IN (${UNFINISHED})`,
    ).get() as Row;
    return { at: now, unfinished: unfinished.n as number, runCursor: runs.seq as number };
  });
}

/** How many jobs have finished since `mark` and are still finished. */
export function countFinishedSince(
  conn: SqliteConnection,
  mark: HistoryMark,
): Promise<FinishedCounts> {
  // A run is recorded in the transaction that ends it, so runs with a
  // higher seq than the mark's ended after it, to the commit. Only jobs
  // whose latest run that is count: a job retried since has run again or
  // waits to. A job sent to the DLQ without running (after a job it ran
  // after) has no run of its own: its finish time tells. CROSS JOIN keeps
  // the runs since the mark (a rowid range) first: the planner would
  // rather walk every completed job.
  const byLatestRun = conn.sql(
    `SELECT j.state, count(*) AS n FROM job_attempts a
     CROSS JOIN jobs j ON j.id = a.job_id
     WHERE a.seq > :cursor AND j.state IN (${sqlList(FINAL_STATES)})
       AND a.seq = (SELECT max(seq) FROM job_attempts INDEXED BY job_attempts_by_job
                    WHERE job_id = a.job_id)
     GROUP BY j.state`,
  );
  const deadWithoutRun = conn.sql(
    `SELECT count(*) AS n FROM jobs INDEXED BY jobs_by_state
     WHERE state = 'dead' AND finished_at >= :at AND NOT EXISTS (
       SELECT 1 FROM job_attempts a INDEXED BY job_attempts_by_job
       WHERE a.job_id = jobs.id AND a.seq > :cursor
     )`,
  );
  return conn.readSnapshot(() => {
    const counts: FinishedCounts = { completed: 0, dead: 0 };
    for (const row of byLatestRun.all({ cursor: mark.runCursor }) as Row[]) {
      counts[row.state as keyof FinishedCounts] = row.n as number;
    }
    counts.dead += (deadWithoutRun.get({ at: mark.at, cursor: mark.runCursor }) as Row)
      .n as number;
    return counts;
  });
}

/** The tally of every finished run ever recorded, by queue (see `Store.runTotals`). */
export function runTotals(conn: SqliteConnection): Promise<QueueRunTotals[]> {
  return conn.read(() =>
    tallyToRunTotals(
      conn.sql("SELECT queue, succeeded, retry, bucket, n, duration_ms FROM run_tally")
        .all() as Row[],
    )
  );
}
