/**
 * The PostgreSQL backend: how jobs enter the queue, each in the initial
 * state the dependency rules of lib/store/rules.ts give it, in one
 * transaction that also notifies `jobs`; as lib/store/sqlite_enqueue.ts does
 * for SQLite. A new job's dependencies are locked while their states are
 * read, so that the enqueue and their ends are ordered (see pg_outcomes.ts).
 *
 * @module
 */

import { DuplicateJobError } from "../errors.ts";
import type { NewJob } from "../job.ts";
import type { JobState } from "../states.ts";
import { initialState } from "./rules.ts";
import { type PgConnection, sqlState, type Tx, UNIQUE_VIOLATION } from "./pg_connection.ts";

/**
 * Adds jobs in one transaction, each in the state its dependencies give it;
 * all or none. Notifies `jobs` in the same transaction.
 *
 * @throws {DuplicateJobError} for the first job (in batch order) whose id is taken
 * @throws {QueueError} for a job after one that does not exist
 */
export function enqueue(conn: PgConnection, jobs: NewJob[], now: number): Promise<void> {
  if (jobs.length === 0) return Promise.resolve();
  const ids = new Set(jobs.map((job) => job.id));
  if (ids.size === jobs.length && jobs.every((job) => job.after.length === 0)) {
    return enqueueIndependent(conn, jobs, now);
  }
  return conn.write((tx) => insertJobs(conn, tx, jobs, now));
}

/**
 * {@linkcode enqueue} inside a transaction already begun (a schedule's
 * firing's), by its general path; notifies `jobs` in it.
 */
export async function insertJobs(
  conn: PgConnection,
  tx: Tx,
  jobs: NewJob[],
  now: number,
): Promise<void> {
  // A block: the former body of enqueue's transaction, kept as it was.
  {
    // The jobs the batch runs after are locked (FOR SHARE) while their states
    // decide, so that an end of one of them commits either before this read
    // or after this transaction, whose jobs its cascade then sees. Oldest
    // first, the order in which an end's cascade locks a job and then the
    // jobs after it (enqueued later): the other order could deadlock with it.
    const looked = [...new Set(jobs.flatMap((job) => [job.id, ...job.after]))];
    const found = await tx`
      SELECT id, state FROM jobs WHERE id = ANY(${looked}::text[]) ORDER BY seq FOR SHARE`;
    const states = new Map(found.map((row) => [row.id as string, row.state as JobState]));
    const stateOf = (id: string) => states.get(id) ?? null;
    const rows = jobs.map((job) => {
      // Jobs earlier in the batch count, as in SQLite, where they are inserted already.
      const { state, lastError } = initialState(job.id, job.after, stateOf);
      if (states.has(job.id)) throw new DuplicateJobError(job.id);
      states.set(job.id, state);
      return { job, state, lastError };
    });
    await lockQueues(tx, [...new Set(jobs.map((job) => job.queue))]);
    try {
      await tx`
        INSERT INTO jobs (id, queue, command, state, max_retries, priority, run_at, created_at,
          updated_at, finished_at, last_error, timeout_ms, cwd)
        SELECT id, queue, command, state, max_retries, priority, run_at, ${now}::bigint,
          ${now}::bigint, finished_at, last_error, timeout_ms, cwd
        FROM unnest(
          ${rows.map((r) => r.job.id)}::text[], ${rows.map((r) => r.job.queue)}::text[],
          ${rows.map((r) => r.job.command)}::text[], ${rows.map((r) => r.state)}::text[],
          ${rows.map((r) => r.job.maxRetries)}::bigint[],
          ${rows.map((r) => r.job.priority)}::bigint[], ${rows.map((r) => r.job.runAt)}::bigint[],
          ${rows.map((r) => r.state === "dead" ? now : null)}::bigint[],
          ${rows.map((r) => r.lastError)}::text[], ${rows.map((r) => r.job.timeoutMs)}::bigint[],
          ${rows.map((r) => r.job.cwd)}::text[]
        ) WITH ORDINALITY AS t(id, queue, command, state, max_retries, priority, run_at,
          finished_at, last_error, timeout_ms, cwd, position)
        ORDER BY position`;
    } catch (error) {
      // Another transaction took one of the ids after the read above.
      if (sqlState(error) === UNIQUE_VIOLATION) throw new DuplicateJobError(takenId(error));
      throw error;
    }
    const edges = jobs.flatMap((job) => job.after.map((after) => [job.id, after]));
    if (edges.length > 0) {
      await tx`
        INSERT INTO job_dependencies (job_id, depends_on)
        SELECT * FROM unnest(${edges.map((e) => e[0])}::text[], ${edges.map((e) => e[1])}::text[])
        ON CONFLICT DO NOTHING`;
    }
    await conn.notify(tx, "jobs");
  }
}

/**
 * {@linkcode enqueue} of jobs that run after no job, with distinct ids: one
 * statement, run on its own. Nothing is read to decide their state (a job
 * that runs after nothing starts `pending`), and a taken id is the unique
 * index's to find: the rows go in in batch order, so the first taken id in
 * batch order is the one reported, as the general path reports it. A
 * command line's enqueue is thus two round trips (the client describes a
 * new statement before running it), not a dozen: the enqueue's commit,
 * hence the moment idle workers hear of the job, comes that much sooner.
 * The queues are made and held as {@linkcode lockQueues} does; when one of
 * them was made by a transaction that committed during the statement (so
 * that the statement can neither see nor hold it), no job is inserted and
 * the statement runs again.
 */
async function enqueueIndependent(conn: PgConnection, jobs: NewJob[], now: number): Promise<void> {
  const rows = jobs.map((job) => ({ job, ...initialState(job.id, job.after, () => null) }));
  const queues = [...new Set(jobs.map((job) => job.queue))].sort();
  for (;;) {
    const [row] = await conn.statement(async (sql) => {
      try {
        return await sql`
          WITH made AS (
            INSERT INTO queues (name) SELECT unnest(${queues}::text[]) ON CONFLICT DO NOTHING
            RETURNING name
          ), held AS (
            SELECT name FROM queues WHERE name = ANY(${queues}::text[]) ORDER BY name
            FOR KEY SHARE
          ), ready AS (
            SELECT (SELECT count(*) FROM made) + (SELECT count(*) FROM held) = ${queues.length}
              AS all_held
          ), inserted AS (
            INSERT INTO jobs (id, queue, command, state, max_retries, priority, run_at, created_at,
              updated_at, finished_at, last_error, timeout_ms, cwd)
            SELECT id, queue, command, state, max_retries, priority, run_at, ${now}::bigint,
              ${now}::bigint, NULL, last_error, timeout_ms, cwd
            FROM unnest(
              ${rows.map((r) => r.job.id)}::text[], ${rows.map((r) => r.job.queue)}::text[],
              ${rows.map((r) => r.job.command)}::text[], ${rows.map((r) => r.state)}::text[],
              ${rows.map((r) => r.job.maxRetries)}::bigint[],
              ${rows.map((r) => r.job.priority)}::bigint[],
              ${rows.map((r) => r.job.runAt)}::bigint[], ${rows.map((r) => r.lastError)}::text[],
              ${rows.map((r) => r.job.timeoutMs)}::bigint[], ${rows.map((r) => r.job.cwd)}::text[]
            ) WITH ORDINALITY AS t(id, queue, command, state, max_retries, priority, run_at,
              last_error, timeout_ms, cwd, position)
            WHERE (SELECT all_held FROM ready)
            ORDER BY position
            RETURNING 1
          )
          SELECT all_held,
            CASE WHEN all_held THEN pg_notify(${conn.channel}, 'jobs') END AS notified,
            (SELECT count(*) FROM inserted) AS inserted
          FROM ready`;
      } catch (error) {
        if (sqlState(error) === UNIQUE_VIOLATION) throw new DuplicateJobError(takenId(error));
        throw error;
      }
    });
    if (row.all_held) return;
  }
}

/**
 * Makes sure the queues exist and holds them (`FOR KEY SHARE`) until the
 * enqueue commits, so that upkeep forgetting empty queues cannot remove a
 * queue row from under jobs being added to it: a job whose queue has no row
 * would never be claimed.
 */
async function lockQueues(tx: Tx, names: string[]): Promise<void> {
  names.sort();
  for (;;) {
    await tx`INSERT INTO queues (name) SELECT unnest(${names}::text[]) ON CONFLICT DO NOTHING`;
    const held = await tx`
      SELECT name FROM queues WHERE name = ANY(${names}::text[]) ORDER BY name FOR KEY SHARE`;
    if (held.length === names.length) return;
  }
}

/** The id a unique violation names, as the server's detail line gives it. */
function takenId(error: unknown): string {
  const detail = String((error as { detail?: unknown }).detail ?? "");
  return /^Key \(id\)=\((.*)\) already exists\.$/s.exec(detail)?.[1] ?? "?";
}
