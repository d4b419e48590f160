/**
 * The PostgreSQL backend: purge, folding counts, forgetting empty queues (the
 * leader's upkeep), as SQLite does it (lib/store/sqlite_maintenance.ts), each
 * in short transactions so that worker processes, claiming and finishing
 * jobs all the while, never wait on it for long.
 *
 * @module
 */

import { QueueError } from "../errors.ts";
import { type JobState, PURGEABLE_STATES } from "../states.ts";
import type { PgConnection } from "./pg_connection.ts";

/**
 * Jobs deleted per transaction by a purge: each batch commits on its own,
 * so the row locks it holds (and the work of the triggers on them) last
 * moments, never the whole purge.
 */
export const PURGE_BATCH = 1_000;

/**
 * See `Store.purgeJobs`: deletes, in batches of {@linkcode PURGE_BATCH}, the
 * jobs in the given finished states whose run ended before `finishedBefore`,
 * with their output; returns how many. A job locked by another writer (a
 * `retry` of it under way) is skipped rather than waited for: it is no
 * longer finished once that commits, or the next purge takes it.
 */
export async function purgeJobs(
  conn: PgConnection,
  states: readonly JobState[],
  finishedBefore: number,
): Promise<number> {
  for (const state of states) {
    if (!PURGEABLE_STATES.includes(state)) throw new QueueError(`cannot purge ${state} jobs`);
  }
  let total = 0;
  for (const state of states) {
    while (true) {
      const deleted = await conn.write(async (tx) =>
        (await tx`
          DELETE FROM jobs WHERE seq IN (
            SELECT seq FROM jobs WHERE state = ${state} AND finished_at < ${finishedBefore}
            ORDER BY seq LIMIT ${PURGE_BATCH} FOR UPDATE SKIP LOCKED
          )`).count
      );
      total += deleted;
      if (deleted < PURGE_BATCH) break;
    }
  }
  return total;
}

/**
 * Forgets queues that hold no job, are not paused and have no limits, so that names used
 * once do not slow every claim; returns how many.
 *
 * A job inserted by a transaction not yet committed is invisible here, and
 * claims find jobs through their queue's row: forgetting its queue then
 * would strand the job. An enqueue holds its queues' rows (`FOR KEY SHARE`,
 * pg_outcomes.ts) from before it inserts its jobs until it commits, so the
 * rows are first locked here (`FOR UPDATE`, which conflicts with that),
 * skipping those held: those queues are being given jobs. The emptiness is
 * then judged again in a statement of its own, whose snapshot is taken once
 * the locks are held and so sees the jobs of every enqueue that held one of
 * these rows before. An enqueue that comes after waits for this one, finds
 * its queue's row gone, and writes it again. Nothing waits here, and no
 * claim or outcome waits for this.
 */
export function forgetEmptyQueues(conn: PgConnection): Promise<number> {
  return conn.write(async (tx) => {
    const idle = (await tx`
      SELECT name FROM queues q WHERE q.paused_at IS NULL
        AND q.concurrency IS NULL AND q.rate_limit IS NULL
        AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.queue = q.name)
      ORDER BY name FOR UPDATE SKIP LOCKED`).map((row) => row.name as string);
    if (idle.length === 0) return 0;
    return (await tx`
      DELETE FROM queues q WHERE q.name = ANY(${idle}) AND q.paused_at IS NULL
        AND q.concurrency IS NULL AND q.rate_limit IS NULL
        AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.queue = q.name)`).count;
  });
}

/**
 * Folds the rows of `job_count_deltas` into one per queue and state (none
 * where they sum to 0), in one statement.
 *
 * Correct under READ COMMITTED while jobs change (their triggers insert
 * delta rows all the while): the DELETE removes exactly the rows of the
 * statement's snapshot, and RETURNING hands on exactly the rows it removed,
 * which the INSERT adds back as their sums, in the same transaction. A
 * delta inserted by a transaction that commits after the snapshot is
 * invisible to it: neither deleted nor summed, it stays as it is. Delta rows
 * are never updated, only inserted and deleted, so a DELETE waits only on
 * another fold; a row that fold removed first is skipped (a deleted row is
 * not deleted twice) and so is not summed twice, and the sums it inserted
 * are not in this snapshot. Readers sum the rows in their own snapshot:
 * before the commit they see the old rows, after it the sums, never a mix,
 * so every count is the same on both sides of the fold.
 */
export function foldCounts(conn: PgConnection): Promise<void> {
  return conn.read(async (sql) => {
    await sql`
      WITH gone AS (DELETE FROM job_count_deltas RETURNING queue, state, n)
      INSERT INTO job_count_deltas (queue, state, n)
        SELECT queue, state, sum(n)::bigint FROM gone GROUP BY queue, state
        HAVING sum(n) <> 0`;
  });
}

/**
 * Folds the rows of `run_tally` into one per queue, success, retry and
 * duration bucket, in one statement, as {@linkcode foldCounts} does for the
 * counts (and correct for the same reasons). Its sums only grow: no group
 * is left out.
 */
export function foldRunTally(conn: PgConnection): Promise<void> {
  return conn.read(async (sql) => {
    await sql`
      WITH gone AS (DELETE FROM run_tally RETURNING queue, succeeded, retry, bucket, n, duration_ms)
      INSERT INTO run_tally (queue, succeeded, retry, bucket, n, duration_ms)
        SELECT queue, succeeded, retry, bucket, sum(n)::bigint, sum(duration_ms)::bigint
        FROM gone GROUP BY queue, succeeded, retry, bucket`;
  });
}
