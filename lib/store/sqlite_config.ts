/**
 * The queue-wide settings in the `config` table: one row per setting that
 * was ever set, its value as JSON, under a stored key of its own.
 *
 * @module
 */

import { DEFAULT_CONFIG, type QueueConfig } from "../config.ts";
import type { SqliteConnection } from "./sqlite_connection.ts";

/**
 * The key each setting is stored under. Part of the file format, frozen:
 * databases written since the first version hold these names, whatever the
 * CLI calls the settings now. PostgreSQL's `config` table holds the same.
 */
export const STORED_KEYS: Readonly<Record<keyof QueueConfig, string>> = {
  maxRetries: "max-retries",
  backoffBase: "backoff-base",
  backoffMaxMs: "backoff-max",
  jobTimeoutMs: "job-timeout",
  retentionMs: "retention",
  leaseTimeoutMs: "lease-timeout",
};

const FIELDS_BY_STORED_KEY = new Map(
  Object.entries(STORED_KEYS).map(([field, key]) => [key, field as keyof QueueConfig]),
);

/** The settings, defaults filled in; a stored key this version does not know is ignored. */
export function getConfig(conn: SqliteConnection): Promise<QueueConfig> {
  return conn.read(() =>
    configFromRows(conn.sql("SELECT key, value FROM config").all() as unknown as StoredSetting[])
  );
}

/** A `config` row: the stored key and its value as JSON. */
export interface StoredSetting {
  key: string;
  value: string;
}

/**
 * The settings the stored rows say, defaults filled in (both backends read
 * them so); a stored key this version does not know is ignored.
 */
export function configFromRows(rows: readonly StoredSetting[]): QueueConfig {
  const config: QueueConfig = { ...DEFAULT_CONFIG };
  for (const row of rows) {
    const field = FIELDS_BY_STORED_KEY.get(row.key);
    if (field === undefined) continue; // Written by a newer queuectl.
    try {
      Object.assign(config, { [field]: JSON.parse(row.value) });
    } catch {
      // A value this version cannot read: the default stands.
    }
  }
  return config;
}

/** Stores one setting, already validated. */
export function setConfig<K extends keyof QueueConfig>(
  conn: SqliteConnection,
  key: K,
  value: QueueConfig[K],
): Promise<void> {
  const upsert = conn.sql(
    "INSERT INTO config (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
  );
  return conn.write(() => {
    upsert.run(STORED_KEYS[key], JSON.stringify(value));
  });
}
