/**
 * The PostgreSQL backend: run statistics and history marks.
 *
 * @module
 */

import type { AttemptRecord } from "../job.ts";
import type { PgConnection } from "./pg_connection.ts";
import type { FinishedCounts, HistoryMark, RunStats } from "./store.ts";

/** See `Store.recentFailures`. */
export function recentFailures(_conn: PgConnection, _limit: number): Promise<AttemptRecord[]> {
  return Promise.reject(new Error("recentFailures: not written yet"));
}

/** See `Store.lastRun`. */
export function lastRun(_conn: PgConnection): Promise<AttemptRecord | undefined> {
  return Promise.reject(new Error("lastRun: not written yet"));
}

/** See `Store.runStats`. */
export function runStats(_conn: PgConnection, _since: number): Promise<RunStats> {
  return Promise.reject(new Error("runStats: not written yet"));
}

/** See `Store.markHistory`. */
export function markHistory(_conn: PgConnection, _now: number): Promise<HistoryMark> {
  return Promise.reject(new Error("markHistory: not written yet"));
}

/** See `Store.countFinishedSince`. */
export function countFinishedSince(
  _conn: PgConnection,
  _mark: HistoryMark,
): Promise<FinishedCounts> {
  return Promise.reject(new Error("countFinishedSince: not written yet"));
}
