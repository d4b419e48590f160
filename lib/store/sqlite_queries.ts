/**
 * Reading jobs and queues: one job, lists by state and queue, a job's
 * dependencies and runs, the counts kept by state (never a count of rows),
 * scheduled jobs, and the named queues with pausing and resuming them.
 *
 * @module
 */

import type { AttemptRecord, Job } from "../job.ts";
import type { JobState } from "../states.ts";
import type { Row, SqliteConnection } from "./sqlite_connection.ts";
import { CLAIMABLE, queuesParam, SELECTED_QUEUES, UNFINISHED } from "./sqlite_rows.ts";
import { emptyCounts, isKept, rowToAttempt, rowToJob, rowToLimits } from "./rows.ts";
import type { Dependency, JobFilter, QueueSelection, QueueSummary, StateCounts } from "./store.ts";

/** One job by id, or undefined. */
export function getJob(conn: SqliteConnection, id: string): Promise<Job | undefined> {
  return conn.read(() => {
    const row = conn.sql("SELECT * FROM jobs WHERE id = ?").get(id) as Row | undefined;
    return row && rowToJob(row);
  });
}

/** The jobs a job runs after, by id, with their state: null once deleted or purged. */
export function getDependencies(conn: SqliteConnection, id: string): Promise<Dependency[]> {
  const dependencies = conn.sql(
    `SELECT d.depends_on AS id, j.state FROM job_dependencies d
     LEFT JOIN jobs j ON j.id = d.depends_on AND NOT d.gone
     WHERE d.job_id = ? ORDER BY d.depends_on`,
  );
  return conn.read(() =>
    (dependencies.all(id) as Row[]).map((row) => ({
      id: row.id as string,
      state: row.state as JobState | null,
    }))
  );
}

/**
 * The statement of `listJobs`: one per filter, each searching its own index
 * (a statement with optional filters, "? IS NULL OR …", would scan the whole
 * table). Several states are one search per state, merged in `seq` order by
 * SQLite (a compound ORDER BY), so the newest N never sort every match.
 * Parameters: each state (followed by the queue, when filtered by queue, and
 * the seq to list below, when `below`); the queue and seq alone when there
 * is no state; then the limit (-1 for none).
 */
export function listJobsSql(stateCount: number, byQueue: boolean, below = false): string {
  const seqBelow = below ? " AND seq < ?" : "";
  if (stateCount === 0) {
    return byQueue
      ? `SELECT * FROM jobs INDEXED BY jobs_by_queue WHERE queue = ?${seqBelow} ORDER BY seq DESC LIMIT ?`
      : `SELECT * FROM jobs${below ? " WHERE seq < ?" : ""} ORDER BY seq DESC LIMIT ?`;
  }
  const search = `SELECT * FROM jobs INDEXED BY jobs_by_state WHERE state = ?${
    byQueue ? " AND queue = ?" : ""
  }${seqBelow}`;
  return `${Array(stateCount).fill(search).join(" UNION ALL ")} ORDER BY seq DESC LIMIT ?`;
}

/** Jobs newest first, optionally only those in some states or of one queue. */
export function listJobs(conn: SqliteConnection, filter: JobFilter): Promise<Job[]> {
  return conn.read(() => {
    const states = [...new Set(filter.states ?? [])];
    const sql = listJobsSql(states.length, filter.queue !== undefined);
    const params = states.flatMap((state) =>
      filter.queue === undefined ? [state] : [state, filter.queue]
    );
    if (states.length === 0 && filter.queue !== undefined) params.push(filter.queue);
    const rows = conn.sql(sql).all(...params, filter.limit ?? -1);
    return (rows as Row[]).map(rowToJob);
  });
}

/** Every finished run of a job, oldest first. */
export function listAttempts(conn: SqliteConnection, id: string): Promise<AttemptRecord[]> {
  return conn.read(() =>
    (conn.sql(
      `SELECT job_id, attempt, started_at, finished_at, exit_code, error FROM job_attempts
       WHERE job_id = ? ORDER BY seq`,
    ).all(id) as Row[]).map(rowToAttempt)
  );
}

/** How many jobs are in each state, from the counts kept by queue and state. */
export function countByState(conn: SqliteConnection): Promise<StateCounts> {
  return conn.read(() => {
    const counts = emptyCounts();
    const rows = conn.sql("SELECT state, sum(n) AS n FROM queue_counts GROUP BY state")
      .all() as Row[];
    for (const row of rows) counts[row.state as JobState] = row.n as number;
    return counts;
  });
}

/** How many jobs are in these states, only those last changed before `changedBefore` if given. */
export function countJobs(
  conn: SqliteConnection,
  states: readonly JobState[],
  changedBefore?: number,
): Promise<number> {
  return conn.read(() => {
    let total = 0;
    for (const state of new Set(states)) {
      const row = changedBefore === undefined
        ? conn.sql("SELECT coalesce(sum(n), 0) AS n FROM queue_counts WHERE state = ?").get(state)
        : conn.sql(
          `SELECT count(*) AS n FROM jobs INDEXED BY jobs_by_state
           WHERE state = ? AND updated_at < ?`,
        ).get(state, changedBefore);
      total += (row as Row).n as number;
    }
    return total;
  });
}

/** How many jobs still need a worker; with a selection, only in those unpaused queues. */
export function countUnfinished(
  conn: SqliteConnection,
  selection?: QueueSelection,
): Promise<number> {
  return conn.read(() => {
    const unfinished = `state IN (${UNFINISHED})`;
    const row = selection === undefined
      ? conn.sql(`SELECT coalesce(sum(n), 0) AS n FROM queue_counts WHERE ${unfinished}`).get()
      : conn.sql(
        `SELECT coalesce(sum(n), 0) AS n FROM queue_counts
         WHERE ${unfinished} AND queue IN (SELECT q.name FROM queues q WHERE ${SELECTED_QUEUES})`,
      ).get({ queues: queuesParam(selection) });
    return (row as Row).n as number;
  });
}

/** Jobs waiting for a later `run_at` (a delay or a backoff), soonest first. */
export function listScheduled(conn: SqliteConnection, now: number, limit: number): Promise<Job[]> {
  return conn.read(() => {
    // Per queue through the index, then merged: a few queues, each read only at its front.
    const rows: Row[] = [];
    for (const queue of conn.sql("SELECT name FROM queues").all() as Row[]) {
      rows.push(
        ...conn.sql(
          `SELECT * FROM jobs INDEXED BY jobs_waiting_by_time
           WHERE queue = ? AND state IN (${CLAIMABLE}) AND run_at > ?
           ORDER BY run_at LIMIT ?`,
        ).all(queue.name, now, limit) as Row[],
      );
    }
    return rows.map(rowToJob).sort((a, b) => a.runAt - b.runAt).slice(0, limit);
  });
}

/** Every queue that holds jobs, is paused or has limits, by name, with its counts. */
export function listQueues(conn: SqliteConnection, now: number): Promise<QueueSummary[]> {
  return conn.read(() => {
    const queues = new Map<string, QueueSummary>();
    const rows = conn.sql(
      `SELECT q.*, CASE WHEN q.rate_limit IS NULL THEN 0 ELSE
         (SELECT count(*) FROM queue_starts
          WHERE queue = q.name AND started_at > :now - q.rate_period_ms) END AS recent_starts
       FROM queues q ORDER BY name`,
    ).all({ now }) as Row[];
    for (const row of rows) {
      queues.set(row.name as string, {
        name: row.name as string,
        pausedAt: row.paused_at as number | null,
        counts: emptyCounts(),
        limits: rowToLimits(row),
        recentStarts: row.recent_starts as number,
      });
    }
    for (const row of conn.sql("SELECT queue, state, n FROM queue_counts").all() as Row[]) {
      const queue = queues.get(row.queue as string);
      if (queue) queue.counts[row.state as JobState] = row.n as number;
    }
    return [...queues.values()].filter(isKept);
  });
}

/** Stops workers claiming from a queue; false if it was paused already. */
export function pauseQueue(conn: SqliteConnection, name: string, now: number): Promise<boolean> {
  const pause = conn.sql(
    `INSERT INTO queues (name, paused_at) VALUES (?, ?)
     ON CONFLICT (name) DO UPDATE SET paused_at = excluded.paused_at WHERE paused_at IS NULL`,
  );
  return conn.write(() => pause.run(name, now).changes > 0);
}

/** Lets workers claim from a queue again; false if it was not paused. */
export function resumeQueue(conn: SqliteConnection, name: string): Promise<boolean> {
  const resume = conn.sql(
    "UPDATE queues SET paused_at = NULL WHERE name = ? AND paused_at IS NOT NULL",
  );
  return conn.write(() => resume.run(name).changes > 0);
}
