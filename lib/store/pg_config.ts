/**
 * The PostgreSQL backend: queue-wide settings, stored as SQLite stores them
 * (the same keys, each value as JSON text), so that one reader decodes both.
 *
 * @module
 */

import type { QueueConfig } from "../config.ts";
import type { PgConnection } from "./pg_connection.ts";
import { configFromRows, STORED_KEYS, type StoredSetting } from "./sqlite_config.ts";

/** See `Store.getConfig`. */
export function getConfig(conn: PgConnection): Promise<QueueConfig> {
  return conn.read(async (sql) =>
    configFromRows(await sql<StoredSetting[]>`SELECT key, value FROM config`)
  );
}

/** See `Store.setConfig`. */
export function setConfig<K extends keyof QueueConfig>(
  conn: PgConnection,
  key: K,
  value: QueueConfig[K],
): Promise<void> {
  return conn.read(async (sql) => {
    await sql`
      INSERT INTO config (key, value) VALUES (${STORED_KEYS[key]}, ${JSON.stringify(value)})
      ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
  });
}
