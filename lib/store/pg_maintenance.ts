/**
 * The PostgreSQL backend: purge, folding counts, forgetting empty queues (the leader's upkeep).
 *
 * @module
 */

import type { JobState } from "../states.ts";
import type { PgConnection } from "./pg_connection.ts";

/** See `Store.purgeJobs`. */
export function purgeJobs(
  _conn: PgConnection,
  _states: readonly JobState[],
  _finishedBefore: number,
): Promise<number> {
  return Promise.reject(new Error("purgeJobs: not written yet"));
}

/** Forgets queues that hold no job and are not paused; returns how many. */
export function forgetEmptyQueues(_conn: PgConnection): Promise<number> {
  return Promise.reject(new Error("forgetEmptyQueues: not written yet"));
}

/** Folds the rows of `job_count_deltas` into one per queue and state. */
export function foldCounts(_conn: PgConnection): Promise<void> {
  return Promise.reject(new Error("foldCounts: not written yet"));
}
