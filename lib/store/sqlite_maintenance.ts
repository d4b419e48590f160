/**
 * Upkeep that worker processes do now and then: deleting finished jobs
 * (`purge` and retention), folding a large WAL back into the database, and
 * forgetting queues that hold no job.
 *
 * @module
 */

import { QueueError } from "../errors.ts";
import { type JobState, PURGEABLE_STATES } from "../states.ts";
import { DELETE_BATCH, type SqliteConnection } from "./sqlite_connection.ts";
import { WAL_TRUNCATE_BYTES } from "./sqlite_open.ts";

/**
 * Deletes jobs in the given finished states whose run ended before
 * `finishedBefore`, with their output, in batches; returns how many.
 */
export async function purgeJobs(
  conn: SqliteConnection,
  states: readonly JobState[],
  finishedBefore: number,
): Promise<number> {
  for (const state of states) {
    if (!PURGEABLE_STATES.includes(state)) throw new QueueError(`cannot purge ${state} jobs`);
  }
  const purge = conn.sql(
    `DELETE FROM jobs WHERE seq IN (
       SELECT seq FROM jobs WHERE state = ? AND finished_at < ? ORDER BY seq LIMIT ${DELETE_BATCH}
     )`,
  );
  let total = 0;
  for (const state of states) {
    while (true) {
      const deleted = await conn.write(() => Number(purge.run(state, finishedBefore).changes));
      total += deleted;
      if (deleted < DELETE_BATCH) break;
    }
  }
  return total;
}

/** Folds the WAL back into the database once it has grown past {@linkcode WAL_TRUNCATE_BYTES}. */
export async function checkpoint(conn: SqliteConnection): Promise<void> {
  let walBytes = 0;
  try {
    walBytes = Deno.statSync(`${conn.location}-wal`).size;
  } catch {
    return; // No WAL file: nothing to fold back.
  }
  if (walBytes < WAL_TRUNCATE_BYTES) return;
  // TRUNCATE waits for the writer lock through the busy timeout; readers
  // that hold old snapshots only make it do less, never fail.
  await conn.read(() => conn.db.exec("PRAGMA wal_checkpoint(TRUNCATE)"));
}

/**
 * Forgets queues that hold no job, are not paused and have no limits, so that names used
 * once do not slow every claim; returns how many.
 */
export function forgetEmptyQueues(conn: SqliteConnection): Promise<number> {
  const dropZeroCounts = conn.sql("DELETE FROM queue_counts WHERE n = 0");
  // A queue with any job has a count row above zero: its jobs' own state keeps it.
  const forget = conn.sql(
    `DELETE FROM queues WHERE paused_at IS NULL AND concurrency IS NULL AND rate_limit IS NULL
       AND NOT EXISTS (SELECT 1 FROM queue_counts c WHERE c.queue = queues.name)`,
  );
  return conn.write(() => {
    dropZeroCounts.run();
    return Number(forget.run().changes);
  });
}
