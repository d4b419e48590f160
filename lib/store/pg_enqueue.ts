/**
 * The PostgreSQL backend: how jobs enter the queue, each in the initial
 * state the dependency rules of lib/store/rules.ts give it, in one
 * transaction that also notifies `jobs`; as lib/store/sqlite_enqueue.ts does
 * for SQLite. A new job's dependencies are locked while their states are
 * read, so that the enqueue and their ends are ordered (see pg_outcomes.ts).
 *
 * @module
 */

import { DuplicateJobError, QueueError } from "../errors.ts";
import type { NewJob } from "../job.ts";
import type { JobState } from "../states.ts";
import { initialState, type UniqueCandidate, uniqueHolder, uniqueWindowStart } from "./rules.ts";
import { type PgConnection, sqlState, type Tx, UNIQUE_VIOLATION } from "./pg_connection.ts";
import { UNFINISHED } from "./pg_rows.ts";
import { envColumn } from "./rows.ts";
import type { UniqueKeyHeld } from "./store.ts";

/**
 * Adds jobs in one transaction, each in the state its dependencies give it;
 * all or none. Notifies `jobs` in the same transaction.
 *
 * A job whose unique key is held (lib/store/rules.ts) is left out and named
 * in the answer. The keys are locked first ({@linkcode lockUniqueKeys}), and
 * their holders read by the next statement, whose snapshot (READ COMMITTED)
 * then holds every enqueue of those keys that committed before: two
 * enqueues of one key can never both find it free. A holder that finishes
 * meanwhile needs no lock: it holds the key either way while it is inside
 * the window; and a job started over takes the lock too (pg_outcomes.ts).
 *
 * @throws {DuplicateJobError} for the first job (in batch order) whose id is taken
 * @throws {QueueError} for a job after one that does not exist
 */
export async function enqueue(
  conn: PgConnection,
  jobs: NewJob[],
  now: number,
): Promise<UniqueKeyHeld[]> {
  if (jobs.length === 0) return [];
  const ids = new Set(jobs.map((job) => job.id));
  if (
    ids.size === jobs.length &&
    jobs.every((job) => job.after.length === 0 && job.uniqueKey == null)
  ) {
    await enqueueIndependent(conn, jobs, now);
    return [];
  }
  return await conn.write((tx) => insertJobs(conn, tx, jobs, now));
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
): Promise<UniqueKeyHeld[]> {
  const held: UniqueKeyHeld[] = [];
  const holders = await readUniqueHolders(tx, jobs, now);
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
  const rows = [];
  // Jobs earlier in the batch count, as in SQLite, where they are inserted already:
  // for their ids, their states and their unique keys.
  for (const [index, job] of jobs.entries()) {
    const candidates = job.uniqueKey == null
      ? undefined
      : holders.get(uniqueName(job.queue, job.uniqueKey))!;
    if (candidates !== undefined) {
      const holder = uniqueHolder(candidates, now, job.uniqueForMs ?? 0);
      if (holder !== undefined) {
        held.push({ index, holder: holder.id, holderState: holder.state });
        continue;
      }
    }
    const { state, lastError } = initialState(job.id, job.after, stateOf);
    if (states.has(job.id)) throw new DuplicateJobError(job.id);
    states.set(job.id, state);
    candidates?.unshift({ id: job.id, state, finishedAt: state === "dead" ? now : null });
    rows.push({ job, state, lastError });
  }
  if (rows.length === 0) return held;
  const added = rows.map((row) => row.job);
  await lockQueues(tx, [...new Set(added.map((job) => job.queue))]);
  try {
    await tx`
        INSERT INTO jobs (id, queue, command, state, max_retries, priority, run_at, created_at,
          updated_at, finished_at, last_error, timeout_ms, cwd, env, unique_key)
        SELECT id, queue, command, state, max_retries, priority, run_at, ${now}::bigint,
          ${now}::bigint, finished_at, last_error, timeout_ms, cwd, env, unique_key
        FROM unnest(
          ${rows.map((r) => r.job.id)}::text[], ${rows.map((r) => r.job.queue)}::text[],
          ${rows.map((r) => r.job.command)}::text[], ${rows.map((r) => r.state)}::text[],
          ${rows.map((r) => r.job.maxRetries)}::bigint[],
          ${rows.map((r) => r.job.priority)}::bigint[], ${rows.map((r) => r.job.runAt)}::bigint[],
          ${rows.map((r) => r.state === "dead" ? now : null)}::bigint[],
          ${rows.map((r) => r.lastError)}::text[], ${rows.map((r) => r.job.timeoutMs)}::bigint[],
          ${rows.map((r) => r.job.cwd)}::text[], ${rows.map((r) => envColumn(r.job.env))}::text[],
          ${rows.map((r) => r.job.uniqueKey ?? null)}::text[]
        ) WITH ORDINALITY AS t(id, queue, command, state, max_retries, priority, run_at,
          finished_at, last_error, timeout_ms, cwd, env, unique_key, position)
        ORDER BY position`;
  } catch (error) {
    // Another transaction took one of the ids after the read above.
    if (sqlState(error) === UNIQUE_VIOLATION) throw uniqueViolation(error);
    throw error;
  }
  const edges = added.flatMap((job) => job.after.map((after) => [job.id, after]));
  if (edges.length > 0) {
    await tx`
        INSERT INTO job_dependencies (job_id, depends_on)
        SELECT * FROM unnest(${edges.map((e) => e[0])}::text[], ${edges.map((e) => e[1])}::text[])
        ON CONFLICT DO NOTHING`;
  }
  await conn.notify(tx, "jobs");
  return held;
}

/**
 * How many advisory locks the unique keys of one schema share. A lock per
 * key would let one batch of many keyed jobs fill the server's lock table
 * (`max_locks_per_transaction` × connections, about 6,400 by default):
 * 20,000 keys failed with "out of shared memory". Keys that share a bucket
 * only wait for each other's enqueue.
 */
const UNIQUE_LOCK_BUCKETS = 256;

/**
 * Locks the unique keys of (queue, key) pairs until the transaction ends:
 * an advisory lock on the schema and a bucket of the queue and key, taken
 * in lock order so that two batches never wait on each other in a circle.
 */
export async function lockUniqueKeys(tx: Tx, queues: string[], keys: string[]): Promise<void> {
  await tx`
    SELECT pg_advisory_xact_lock(lock) FROM (
      SELECT DISTINCT hashtextextended('queuectl unique ' || current_schema() || E'\n' ||
        (hashtextextended(queue || E'\n' || key, 0) & ${UNIQUE_LOCK_BUCKETS - 1})::text, 0) AS lock
      FROM unnest(${queues}::text[], ${keys}::text[]) AS t(queue, key)
      ORDER BY lock) locks`;
}

/** A (queue, unique key) pair as one map key. */
function uniqueName(queue: string, key: string): string {
  return `${queue}\n${key}`;
}

/**
 * Locks the unique keys of the batch's keyed jobs and reads, by
 * {@linkcode uniqueName}, the stored jobs that may hold them (rules.ts
 * `uniqueHolder` decides): waiting or running, or finished inside the
 * widest window of the batch; latest finish first.
 */
async function readUniqueHolders(
  tx: Tx,
  jobs: NewJob[],
  now: number,
): Promise<Map<string, UniqueCandidate[]>> {
  const holders = new Map<string, UniqueCandidate[]>();
  const keyed = jobs.filter((job) => job.uniqueKey != null);
  if (keyed.length === 0) return holders;
  for (const job of keyed) holders.set(uniqueName(job.queue, job.uniqueKey!), []);
  const queues = keyed.map((job) => job.queue);
  const keys = keyed.map((job) => job.uniqueKey!);
  await lockUniqueKeys(tx, queues, keys);
  // A statement after the lock: its snapshot holds the enqueues of these keys that committed.
  const widest = Math.max(...keyed.map((job) => job.uniqueForMs ?? 0));
  const rows = await tx`
    SELECT id, queue, unique_key, state, finished_at FROM jobs
    WHERE (queue, unique_key) IN (SELECT * FROM unnest(${queues}::text[], ${keys}::text[]))
      AND (state = ANY(${UNFINISHED}::text[]) OR finished_at > ${uniqueWindowStart(now, widest)})
    ORDER BY finished_at DESC NULLS FIRST`;
  for (const row of rows) {
    holders.get(uniqueName(row.queue as string, row.unique_key as string))!.push({
      id: row.id as string,
      state: row.state as JobState,
      finishedAt: row.finished_at === null ? null : Number(row.finished_at),
    });
  }
  return holders;
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
              updated_at, finished_at, last_error, timeout_ms, cwd, env)
            SELECT id, queue, command, state, max_retries, priority, run_at, ${now}::bigint,
              ${now}::bigint, NULL, last_error, timeout_ms, cwd, env
            FROM unnest(
              ${rows.map((r) => r.job.id)}::text[], ${rows.map((r) => r.job.queue)}::text[],
              ${rows.map((r) => r.job.command)}::text[], ${rows.map((r) => r.state)}::text[],
              ${rows.map((r) => r.job.maxRetries)}::bigint[],
              ${rows.map((r) => r.job.priority)}::bigint[],
              ${rows.map((r) => r.job.runAt)}::bigint[], ${rows.map((r) => r.lastError)}::text[],
              ${rows.map((r) => r.job.timeoutMs)}::bigint[], ${rows.map((r) => r.job.cwd)}::text[],
              ${rows.map((r) => envColumn(r.job.env))}::text[]
            ) WITH ORDINALITY AS t(id, queue, command, state, max_retries, priority, run_at,
              last_error, timeout_ms, cwd, env, position)
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

/**
 * A unique violation as an error: a taken id; or, from the unique-key index,
 * a key that a job started over took after the read (the lock on keys makes
 * this a should-not-happen).
 */
function uniqueViolation(error: unknown): Error {
  const detail = String((error as { detail?: unknown }).detail ?? "");
  if (detail.startsWith("Key (queue, unique_key)")) {
    return new QueueError(`a unique key of the batch was taken meanwhile: ${detail}`);
  }
  return new DuplicateJobError(takenId(error));
}

/** The id a unique violation names, as the server's detail line gives it. */
function takenId(error: unknown): string {
  const detail = String((error as { detail?: unknown }).detail ?? "");
  return /^Key \(id\)=\((.*)\) already exists\.$/s.exec(detail)?.[1] ?? "?";
}
