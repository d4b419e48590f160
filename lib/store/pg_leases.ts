/**
 * The PostgreSQL backend: leases on the server clock, the leader, recovery.
 *
 * @module
 */

import type { PgConnection } from "./pg_connection.ts";
import type { Rescue, RescueRequest } from "./store.ts";

/** See `Store.rescue`; judged on the server clock unless `request.now` is given. */
export function rescue(
  _conn: PgConnection,
  _request: RescueRequest,
  _leaseTimeoutMs: number,
): Promise<Rescue> {
  return Promise.reject(new Error("rescue: not written yet"));
}

/** Whether `workerId` holds the leader lease. */
export function isLeader(_conn: PgConnection, _workerId: string): Promise<boolean> {
  return Promise.reject(new Error("isLeader: not written yet"));
}
