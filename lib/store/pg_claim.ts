/**
 * The PostgreSQL backend: the claim: due jobs taken `FOR UPDATE SKIP LOCKED` in priority order.
 *
 * @module
 */

import type { ClaimedJob } from "../job.ts";
import type { PgConnection } from "./pg_connection.ts";
import type { QueueSelection } from "./store.ts";

/** See `Store.claim`. */
export function claim(
  _conn: PgConnection,
  _workerId: string,
  _now: number,
  _selection?: QueueSelection,
): Promise<ClaimedJob | undefined> {
  return Promise.reject(new Error("claim: not written yet"));
}

/** See `Store.nextRunAt`. */
export function nextRunAt(
  _conn: PgConnection,
  _selection?: QueueSelection,
): Promise<number | undefined> {
  return Promise.reject(new Error("nextRunAt: not written yet"));
}

/** See `Store.oldestWaitingRunAt`. */
export function oldestWaitingRunAt(_conn: PgConnection): Promise<number | undefined> {
  return Promise.reject(new Error("oldestWaitingRunAt: not written yet"));
}
