/**
 * Opens the store behind a database location. Today every location is a
 * SQLite file path; a `postgres://` URL will select the PostgreSQL backend.
 *
 * @module
 */

import { migrateSqliteDatabase, openSqliteStore } from "./sqlite_store.ts";
import type { SchemaMigration, Store } from "./store.ts";

export type {
  AttemptOutcome,
  JobFilter,
  SchemaMigration,
  StateCounts,
  Store,
  WorkerRecord,
} from "./store.ts";

/**
 * Opens the queue at `location`, creating it when missing. An older schema
 * is migrated forward first (for SQLite, one file on one host, that is quick
 * and safe under the write lock); one from a newer queuectl is refused.
 */
export function openStore(location: string): Promise<Store> {
  return openSqliteStore(location);
}

/**
 * Brings the schema at `location` up to date under the database's write
 * lock (creating the database when missing), for `queuectl migrate`.
 * Returns the version found and the version left.
 */
export function migrateStore(location: string): Promise<SchemaMigration> {
  return migrateSqliteDatabase(location);
}
