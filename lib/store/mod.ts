/**
 * Opens the store behind a database location: the SQLite backend for a file.
 * A PostgreSQL location is refused until that backend exists.
 *
 * @module
 */

import { type DbLocation, describeLocation } from "../db_location.ts";
import { UsageError } from "../errors.ts";
import { openSqliteStore } from "./sqlite_store.ts";
import type { Store } from "./store.ts";

export type { AttemptOutcome, JobFilter, StateCounts, Store, WorkerRecord } from "./store.ts";

/**
 * Opens the queue at `location`, creating and migrating it when needed. The
 * store's `location` is {@linkcode describeLocation}'s form of it.
 *
 * @throws {UsageError} for a PostgreSQL location, not supported yet
 */
export async function openStore(location: DbLocation): Promise<Store> {
  if (location.kind === "postgres") {
    // Refused before anything is made or connected to; the message never shows the password.
    throw new UsageError(
      `PostgreSQL (${describeLocation(location)}) is not supported yet: ` +
        "give --db or QUEUECTL_DB the path of a SQLite file",
    );
  }
  return await openSqliteStore(location.path);
}
