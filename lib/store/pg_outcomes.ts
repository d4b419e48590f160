/**
 * The PostgreSQL backend: enqueue, outcomes, retry, delete: the dependency rules of lib/store/rules.ts.
 *
 * @module
 */

import type { ClaimedJob, NewJob } from "../job.ts";
import type { Transition } from "../states.ts";
import type { PgConnection } from "./pg_connection.ts";
import type { AttemptOutcome, DeleteTarget, OrphanSettlement } from "./store.ts";

/** See `Store.enqueue`; notifies `jobs` in the same transaction. */
export function enqueue(_conn: PgConnection, _jobs: NewJob[], _now: number): Promise<void> {
  return Promise.reject(new Error("enqueue: not written yet"));
}

/** See `Store.finishAttempt`. */
export function finishAttempt(
  _conn: PgConnection,
  _job: ClaimedJob,
  _outcome: AttemptOutcome,
): Promise<boolean> {
  return Promise.reject(new Error("finishAttempt: not written yet"));
}

/** See `Store.settleOrphans`. */
export function finishAttempts(
  _conn: PgConnection,
  _settlements: readonly OrphanSettlement[],
): Promise<ClaimedJob[]> {
  return Promise.reject(new Error("finishAttempts: not written yet"));
}

/** See `Store.releaseJob`. */
export function releaseJob(_conn: PgConnection, _job: ClaimedJob, _now: number): Promise<boolean> {
  return Promise.reject(new Error("releaseJob: not written yet"));
}

/** See `Store.reviveDead` and `Store.rerunJobs`. */
export function startOver(
  _conn: PgConnection,
  _ids: string[] | "all",
  _transition: Transition,
  _now: number,
): Promise<string[]> {
  return Promise.reject(new Error("startOver: not written yet"));
}

/** See `Store.deleteJobs`. */
export function deleteJobs(
  _conn: PgConnection,
  _target: DeleteTarget,
  _now: number,
): Promise<number> {
  return Promise.reject(new Error("deleteJobs: not written yet"));
}
