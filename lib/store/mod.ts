/**
 * Opens the store behind a database location. Today every location is a
 * SQLite file path; a `postgres://` URL will select the PostgreSQL backend.
 *
 * @module
 */

import { openSqliteStore } from "./sqlite_store.ts";
import type { Store } from "./store.ts";

export type { AttemptOutcome, JobFilter, StateCounts, Store, WorkerRecord } from "./store.ts";

/** Opens the queue at `location`, creating and migrating it when needed. */
export function openStore(location: string): Promise<Store> {
  return openSqliteStore(location);
}
