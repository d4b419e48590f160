/**
 * Opens the store behind a database location: the SQLite backend for a
 * file, the PostgreSQL backend for a `postgres://` URL. The PostgreSQL
 * backend is imported only when one is opened: its client costs tens of
 * milliseconds of start-up that a SQLite command never pays.
 *
 * Its URL is built at run time (lib/module_urls.ts): Deno loads the target
 * of a string-literal dynamic import with the program, before the first
 * line runs, so `import("./pg_store.ts")` cost every SQLite command the
 * PostgreSQL backend's fifteen modules and the npm resolution of its client
 * (about 1 ms of CPU and 2 ms of a single enqueue's wall time). A PostgreSQL
 * queue loads it in {@linkcode openStore}, before any command draws on the
 * terminal (see the top of sqlite_store.ts for why that matters).
 *
 * @module
 */

import { type DbLocation, describeLocation } from "../db_location.ts";
import { moduleUrl } from "../module_urls.ts";
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

/** Loads the PostgreSQL backend (lib/store/pg_store.ts); see the top of this module. */
function loadPgBackend(): Promise<typeof import("./pg_store.ts")> {
  return import(moduleUrl("lib/store/pg_store"));
}

/** Options of {@linkcode openStore}. */
export interface OpenOptions {
  /** Connections the store may hold at once (PostgreSQL's pool); 4 when left out. */
  connections?: number;
  /**
   * SQLite: write turns shared by the threads of this process (the Web
   * Workers of `worker start`), a SharedArrayBuffer of 4 bytes: their
   * writes take turns in the process instead of colliding in SQLite's busy
   * handler. PostgreSQL ignores it.
   */
  writeTurns?: SharedArrayBuffer;
}

/**
 * Opens the queue at `location`, creating it when missing. An older schema
 * is migrated forward first (for SQLite under the write lock, for
 * PostgreSQL under an advisory lock); one from a newer queuectl is refused.
 * The store's `location` is {@linkcode describeLocation}'s form of it.
 *
 * @throws {DatabaseError} when the database cannot be opened or used
 */
export async function openStore(location: DbLocation, options: OpenOptions = {}): Promise<Store> {
  if (location.kind === "sqlite") {
    return await openSqliteStore(location.path, { writeTurns: options.writeTurns });
  }
  const { openPgStore } = await loadPgBackend();
  return await openPgStore(location.url, describeLocation(location), {
    max: options.connections ?? 4,
  });
}

/**
 * Brings the schema at `location` up to date under the database's write
 * lock (creating the database when missing), for `queuectl migrate`.
 * Returns the version found and the version left.
 */
export async function migrateStore(location: DbLocation): Promise<SchemaMigration> {
  if (location.kind === "sqlite") return await migrateSqliteDatabase(location.path);
  const { migratePgDatabase } = await loadPgBackend();
  return await migratePgDatabase(location.url, describeLocation(location));
}
