/**
 * The PostgreSQL backend: reading jobs and queues (one job, lists by state
 * and queue, a job's dependencies and runs, the counts kept by queue and
 * state, scheduled jobs) and the named queues with pausing and resuming
 * them. Counts come from `job_count_deltas`, never from counting jobs.
 *
 * @module
 */

import type { AttemptRecord, Job } from "../job.ts";
import { CLAIMABLE_STATES, type JobState } from "../states.ts";
import type { PgConnection, PgRow, Sql } from "./pg_connection.ts";
import { UNFINISHED } from "./pg_rows.ts";
import { emptyCounts, isKept, rowToAttempt, rowToJob, rowToLimits } from "./rows.ts";
import type { Dependency, JobFilter, QueueSelection, QueueSummary, StateCounts } from "./store.ts";

/**
 * States as literal SQL (`'pending', 'failed'`), for the statements whose
 * plan must use a partial index: the planner proves a partial index's WHERE
 * from constants only, never from a parameter of a generic plan. The names
 * are lib/states.ts's own, never user input.
 */
function stateLiterals(sql: Sql, states: readonly JobState[]) {
  return sql.unsafe(states.map((s) => `'${s}'`).join(", "));
}

/** One job by id, or undefined. */
export function getJob(conn: PgConnection, id: string): Promise<Job | undefined> {
  return conn.read(async (sql) => {
    const [row] = await sql`SELECT * FROM jobs WHERE id = ${id}`;
    return row && rowToJob(row);
  });
}

/**
 * Jobs newest first, optionally only those in some states or of one queue.
 * Several states are one search per state, each newest first and limited
 * (through `jobs_by_state`, or the primary key when a state is common), and
 * merged in `seq` order by the planner (a Merge Append): the newest N never
 * sort every match.
 */
export function listJobs(conn: PgConnection, filter: JobFilter): Promise<Job[]> {
  return conn.read(async (sql) => {
    const states = [...new Set(filter.states ?? [])];
    const limit = filter.limit ?? null;
    const byQueue = filter.queue === undefined ? sql`` : sql`AND queue = ${filter.queue}`;
    let rows: PgRow[];
    if (states.length === 0) {
      rows = await sql`SELECT * FROM jobs WHERE true ${byQueue} ORDER BY seq DESC LIMIT ${limit}`;
    } else {
      const searches = states.map((state) =>
        sql`(SELECT * FROM jobs WHERE state = ${state} ${byQueue} ORDER BY seq DESC LIMIT ${limit})`
      ).reduce((all, search) => sql`${all} UNION ALL ${search}`);
      rows = await sql`SELECT * FROM (${searches}) found ORDER BY seq DESC LIMIT ${limit}`;
    }
    return rows.map(rowToJob);
  });
}

/** The jobs a job runs after, by id, with their state: null once deleted or purged. */
export function getDependencies(conn: PgConnection, id: string): Promise<Dependency[]> {
  return conn.read(async (sql) => {
    const rows = await sql`
      SELECT d.depends_on AS id, j.state FROM job_dependencies d
      LEFT JOIN jobs j ON j.id = d.depends_on AND NOT d.gone
      WHERE d.job_id = ${id} ORDER BY d.depends_on COLLATE "C"`;
    return rows.map((row) => ({ id: row.id as string, state: row.state as JobState | null }));
  });
}

/** Every finished run of a job, oldest first. */
export function listAttempts(conn: PgConnection, id: string): Promise<AttemptRecord[]> {
  return conn.read(async (sql) => {
    const rows = await sql`
      SELECT job_id, attempt, started_at, finished_at, exit_code, error FROM job_attempts
      WHERE job_id = ${id} ORDER BY seq`;
    return rows.map(rowToAttempt);
  });
}

/** How many jobs are in each state, from the counts kept by queue and state. */
export function countByState(conn: PgConnection): Promise<StateCounts> {
  return conn.read(async (sql) => {
    const counts = emptyCounts();
    const rows = await sql`
      SELECT state, sum(n)::bigint AS n FROM job_count_deltas GROUP BY state`;
    for (const row of rows) counts[row.state as JobState] = row.n as number;
    return counts;
  });
}

/**
 * How many jobs are in these states, only those last changed before
 * `changedBefore` if given (then the jobs themselves are counted, through
 * `jobs_by_state`, as SQLite does).
 */
export function countJobs(
  conn: PgConnection,
  states: readonly JobState[],
  changedBefore?: number,
): Promise<number> {
  const distinct = [...new Set(states)];
  if (distinct.length === 0) return Promise.resolve(0);
  return conn.read(async (sql) => {
    const [row] = changedBefore === undefined
      ? await sql`
        SELECT coalesce(sum(n), 0)::bigint AS n FROM job_count_deltas
        WHERE state = ANY(${distinct})`
      : await sql`
        SELECT count(*) AS n FROM jobs
        WHERE state = ANY(${distinct}) AND updated_at < ${changedBefore}`;
    return row.n as number;
  });
}

/** How many jobs still need a worker; with a selection, only in those unpaused queues. */
export function countUnfinished(conn: PgConnection, selection?: QueueSelection): Promise<number> {
  return conn.read(async (sql) => {
    const served = selection === undefined ? sql`` : sql`
      AND queue IN (
        SELECT q.name FROM queues q WHERE q.paused_at IS NULL
        ${selection.queues === undefined ? sql`` : sql`AND q.name = ANY(${[...selection.queues]})`}
      )`;
    const [row] = await sql`
      SELECT coalesce(sum(n), 0)::bigint AS n FROM job_count_deltas
      WHERE state = ANY(${UNFINISHED}) ${served}`;
    return row.n as number;
  });
}

/**
 * Jobs waiting for a later `run_at` (a delay or a backoff), soonest first:
 * per queue through `jobs_waiting_by_time`, each read only at its front.
 */
export function listScheduled(conn: PgConnection, now: number, limit: number): Promise<Job[]> {
  return conn.read(async (sql) => {
    const rows = await sql`
      SELECT j.* FROM queues q CROSS JOIN LATERAL (
        SELECT * FROM jobs
        WHERE queue = q.name AND state IN (${stateLiterals(sql, CLAIMABLE_STATES)})
          AND run_at > ${now}
        ORDER BY run_at LIMIT ${limit}
      ) j
      ORDER BY j.run_at, j.seq LIMIT ${limit}`;
    return rows.map(rowToJob);
  });
}

/** Every queue that holds jobs, is paused or has limits, by name, with its counts. */
export function listQueues(conn: PgConnection, now: number): Promise<QueueSummary[]> {
  return conn.read(async (sql) => {
    // One statement, so that the queues and their counts are one snapshot.
    const rows = await sql`
      SELECT q.name, q.paused_at, q.concurrency, q.rate_limit, q.rate_period_ms, c.state, c.n,
        CASE WHEN q.rate_limit IS NULL THEN 0 ELSE
          (SELECT count(*) FROM queue_starts s
           WHERE s.queue = q.name AND s.started_at > ${now} - q.rate_period_ms) END AS recent_starts
      FROM queues q
      LEFT JOIN (
        SELECT queue, state, sum(n)::bigint AS n FROM job_count_deltas GROUP BY queue, state
      ) c ON c.queue = q.name
      ORDER BY q.name COLLATE "C"`;
    const queues = new Map<string, QueueSummary>();
    for (const row of rows) {
      const name = row.name as string;
      let queue = queues.get(name);
      if (queue === undefined) {
        queue = {
          name,
          pausedAt: row.paused_at as number | null,
          counts: emptyCounts(),
          limits: rowToLimits(row),
          recentStarts: Number(row.recent_starts),
        };
        queues.set(name, queue);
      }
      if (row.state !== null) queue.counts[row.state as JobState] = row.n as number;
    }
    return [...queues.values()].filter(isKept);
  });
}

/** Stops workers claiming from a queue; false if it was paused already. */
export function pauseQueue(conn: PgConnection, name: string, now: number): Promise<boolean> {
  return conn.read(async (sql) => {
    const paused = await sql`
      INSERT INTO queues (name, paused_at) VALUES (${name}, ${now})
      ON CONFLICT (name) DO UPDATE SET paused_at = excluded.paused_at
        WHERE queues.paused_at IS NULL`;
    return paused.count > 0;
  });
}

/** Lets workers claim from a queue again, waking them; false if it was not paused. */
export function resumeQueue(conn: PgConnection, name: string): Promise<boolean> {
  return conn.write(async (tx) => {
    const resumed = await tx`
      UPDATE queues SET paused_at = NULL WHERE name = ${name} AND paused_at IS NOT NULL`;
    if (resumed.count === 0) return false;
    await conn.notify(tx, "jobs");
    return true;
  });
}
