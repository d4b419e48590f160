/**
 * The PostgreSQL backend: queue-wide settings.
 *
 * @module
 */

import type { QueueConfig } from "../config.ts";
import type { PgConnection } from "./pg_connection.ts";

/** See `Store.getConfig`. */
export function getConfig(_conn: PgConnection): Promise<QueueConfig> {
  return Promise.reject(new Error("getConfig: not written yet"));
}

/** See `Store.setConfig`. */
export function setConfig<K extends keyof QueueConfig>(
  _conn: PgConnection,
  _key: K,
  _value: QueueConfig[K],
): Promise<void> {
  return Promise.reject(new Error("setConfig: not written yet"));
}
