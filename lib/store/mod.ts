/**
 * Opens the store behind a database location: the SQLite backend for a file.
 * A PostgreSQL location is refused until that backend exists.
 *
 * @module
 */

import { type DbLocation, describeLocation } from "../db_location.ts";
import { UsageError } from "../errors.ts";
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
 * and safe under the write lock); one from a newer queuectl is refused. The
 * store's `location` is {@linkcode describeLocation}'s form of it.
 *
 * @throws {UsageError} for a PostgreSQL location, not supported yet
 */
export async function openStore(location: DbLocation): Promise<Store> {
  return await openSqliteStore(sqlitePath(location));
}

/**
 * Brings the schema at `location` up to date under the database's write
 * lock (creating the database when missing), for `queuectl migrate`.
 * Returns the version found and the version left.
 */
export async function migrateStore(location: DbLocation): Promise<SchemaMigration> {
  return await migrateSqliteDatabase(sqlitePath(location));
}

/** The SQLite file of `location`; PostgreSQL is refused before anything is made or connected to. */
function sqlitePath(location: DbLocation): string {
  if (location.kind === "postgres") {
    // The message never shows the password.
    throw new UsageError(
      `PostgreSQL (${describeLocation(location)}) is not supported yet: ` +
        "give --db or QUEUECTL_DB the path of a SQLite file",
    );
  }
  return location.path;
}
