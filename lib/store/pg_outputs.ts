/**
 * The PostgreSQL backend: job output, finished and live.
 *
 * @module
 */

import type { AttemptOutput, ClaimedJob } from "../job.ts";
import type { PgConnection } from "./pg_connection.ts";
import type { LiveOutput, NewestOutput } from "./store.ts";

/** See `Store.recordLiveOutput`. */
export function recordLiveOutput(
  _conn: PgConnection,
  _job: ClaimedJob,
  _output: Omit<LiveOutput, "claimToken" | "attempt">,
): Promise<boolean> {
  return Promise.reject(new Error("recordLiveOutput: not written yet"));
}

/** See `Store.liveOutput`. */
export function liveOutput(_conn: PgConnection, _id: string): Promise<LiveOutput | undefined> {
  return Promise.reject(new Error("liveOutput: not written yet"));
}

/** See `Store.latestOutput`. */
export function latestOutput(_conn: PgConnection, _id: string): Promise<AttemptOutput | undefined> {
  return Promise.reject(new Error("latestOutput: not written yet"));
}

/** See `Store.attemptOutput`. */
export function attemptOutput(
  _conn: PgConnection,
  _id: string,
  _attempt: number,
): Promise<AttemptOutput | undefined> {
  return Promise.reject(new Error("attemptOutput: not written yet"));
}

/** See `Store.newestOutputs`. */
export function newestOutputs(
  _conn: PgConnection,
  _ids: readonly string[],
): Promise<Map<string, NewestOutput>> {
  return Promise.reject(new Error("newestOutputs: not written yet"));
}
