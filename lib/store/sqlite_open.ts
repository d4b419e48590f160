/**
 * Opening a queuectl SQLite file safely: creating it private to its owner,
 * refusing files that are not ours (or are too new) without writing to them,
 * setting the connection up, bringing the schema up to date under the write
 * lock, and telling later whether the path still names the file opened.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { DatabaseError, QueueError } from "../errors.ts";
import {
  BUSY_TIMEOUT_MS,
  errcode,
  isBusy,
  rollbackQuietly,
  type Row,
  SQLITE_NOTADB,
} from "./sqlite_connection.ts";
import { retryWithBackoff } from "../timing.ts";
import type { SchemaMigration } from "./store.ts";

/** Marks a SQLite file as a queuectl database (`PRAGMA application_id`): "QCTL". */
export const APPLICATION_ID = 0x5143544c;

/**
 * The schema version this code reads and writes: the number of migrations
 * in sqlite_migrations.ts (tests/sqlite_migrations_test.ts holds the two
 * equal). Stated here rather than counted there so that opening a database
 * already up to date, every command's case, does not compile the schema's
 * text (about 0.3 ms of each start).
 */
export const SCHEMA_VERSION = 10;

function loadMigrations(): Promise<typeof import("./sqlite_migrations.ts")> {
  return import("./sqlite_migrations.ts");
}

/**
 * The size a WAL is cut back to after each checkpoint, and past which
 * `checkpoint` folds it back into the database, in bytes.
 */
export const WAL_TRUNCATE_BYTES = 16 * 1024 * 1024;

/** Options of {@linkcode openSqliteDatabase}. */
export interface SqliteOpenOptions {
  /**
   * Create the file (and its folders) when it does not exist; otherwise a
   * missing file is an error. An older schema is migrated forward either way.
   * @default true
   */
  create?: boolean;
}

/** A connection ready for use, and what bringing its schema up to date did. */
export interface OpenedDatabase {
  db: DatabaseSync;
  migration: SchemaMigration;
}

/**
 * Opens (creating if needed) a queuectl SQLite database and brings its
 * schema up to date. A file that is not SQLite, a SQLite database of some
 * other program, or one made by a newer queuectl is refused with a
 * {@linkcode DatabaseError}, and left untouched.
 */
export async function openSqliteDatabase(
  path: string,
  options: SqliteOpenOptions = {},
): Promise<OpenedDatabase> {
  if (options.create ?? true) createPrivateFile(path);
  const exists = checkSize(path);
  if (!exists && options.create === false) throw new DatabaseError(`no database at ${path}`);
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (error) {
    throw new DatabaseError(`cannot open database ${path}: ${(error as Error).message}`);
  }
  // Processes opening a new file together race to set it up; the losers wait and look again.
  try {
    const migration = await retryWithBackoff(async () => {
      try {
        const found = prepareDatabase(db, path);
        if (found.to === SCHEMA_VERSION) return found;
        return migrate(db, path, (await loadMigrations()).MIGRATIONS);
      } catch (error) {
        rollbackQuietly(db);
        throw error;
      }
    }, { firstMs: 5, maxMs: 200, retryIf: isBusy, giveUpAt: Date.now() + BUSY_TIMEOUT_MS });
    return { db, migration };
  } catch (error) {
    db.close();
    throw isBusy(error)
      ? new DatabaseError(`database ${path} stayed locked: ${(error as Error).message}`)
      : error;
  }
}

/** Creates the database file and its folders, private to the owner, if missing. */
function createPrivateFile(path: string): void {
  try {
    Deno.statSync(path);
    return; // The usual case, and cheap: a failed exclusive create throws, which costs a millisecond.
  } catch {
    // Missing (or unreadable: the create below reports that).
  }
  const slash = path.lastIndexOf("/");
  const dir = slash > 0 ? path.slice(0, slash) : undefined;
  try {
    if (dir) {
      let exists = true;
      try {
        Deno.statSync(dir);
      } catch {
        exists = false;
      }
      if (!exists) Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    }
    Deno.openSync(path, { createNew: true, write: true, mode: 0o600 }).close();
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return;
    throw new DatabaseError(`cannot create database ${path}: ${(error as Error).message}`);
  }
}

/** The smallest page SQLite writes: a non-empty database file is never shorter. */
const MIN_PAGE_BYTES = 512;

/**
 * Returns whether a file is at `path`, and refuses a non-empty one too short
 * to be a SQLite database: SQLite itself would take a 1-byte file for an
 * empty database and overwrite it. Only the size is looked at: opening and
 * closing the file here would drop the POSIX locks that this process's other
 * connections hold on it.
 */
function checkSize(path: string): boolean {
  let size: number;
  try {
    size = Deno.statSync(path).size;
  } catch {
    return false; // Missing or unreadable: the SQLite open reports it in its own words.
  }
  if (size > 0 && size < MIN_PAGE_BYTES) {
    throw new DatabaseError(`${path} is not a SQLite database; refusing to touch it`);
  }
  return true;
}

function newerSchemaError(path: string, version: number): DatabaseError {
  return new DatabaseError(
    `${path} was written by a newer queuectl (schema ${version}, this one knows ${SCHEMA_VERSION}); upgrade queuectl`,
  );
}

/**
 * Checks the file is ours (reading only), then sets pragmas; returns the
 * version found (as `from` and `to`), for the caller to migrate when behind.
 */
function prepareDatabase(db: DatabaseSync, path: string): SchemaMigration {
  let applicationId: number, version: number, objects: number;
  try {
    // One statement reads all three at one moment, so that another process's
    // migration cannot commit between the reads and make the file look half-made.
    const row = db.prepare(
      `SELECT (SELECT application_id FROM pragma_application_id) AS app,
              (SELECT user_version FROM pragma_user_version) AS version,
              (SELECT count(*) FROM sqlite_master) AS objects`,
    ).get() as Row;
    applicationId = row.app as number;
    version = row.version as number;
    objects = row.objects as number;
  } catch (error) {
    if (isBusy(error)) throw error;
    if (errcode(error) === SQLITE_NOTADB) {
      throw new DatabaseError(`${path} is not a SQLite database; refusing to touch it`);
    }
    throw new DatabaseError(`cannot read database ${path}: ${(error as Error).message}`);
  }
  const isNew = applicationId === 0 && version === 0 && objects === 0;
  if (!isNew && applicationId !== APPLICATION_ID) {
    throw new DatabaseError(
      `${path} is a SQLite database but not a queuectl one; refusing to touch it`,
    );
  }
  if (version > SCHEMA_VERSION) throw newerSchemaError(path, version);
  try {
    // The journal mode is stored in the file: only a database this process
    // sets up needs it switched (and the switch takes a lock). WAL lets
    // readers run beside the one writer.
    if (version < SCHEMA_VERSION) {
      const mode = (db.prepare("PRAGMA journal_mode").get() as Row).journal_mode;
      if (mode !== "wal") db.exec("PRAGMA journal_mode = WAL");
    }
    // NORMAL is durable across process crashes in WAL mode (only a power cut
    // can lose the last commits); the size limit cuts a WAL that a burst of
    // writes grew, after each checkpoint.
    db.exec(`PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = ${WAL_TRUNCATE_BYTES}`);
    return { from: version, to: version };
  } catch (error) {
    if (error instanceof QueueError || isBusy(error)) throw error;
    throw new DatabaseError(`cannot prepare database ${path}: ${(error as Error).message}`);
  }
}

/** Applies the pending ones of `migrations`; errors named as {@linkcode prepareDatabase}'s are. */
function migrate(db: DatabaseSync, path: string, migrations: readonly string[]): SchemaMigration {
  try {
    return migrateWithoutForeignKeys(db, path, migrations);
  } catch (error) {
    if (error instanceof QueueError || isBusy(error)) throw error;
    throw new DatabaseError(`cannot prepare database ${path}: ${(error as Error).message}`);
  }
}

function migrateWithoutForeignKeys(
  db: DatabaseSync,
  path: string,
  migrations: readonly string[],
): SchemaMigration {
  // Migration 3 rebuilds the jobs table; with foreign keys on, dropping the
  // old table would delete every attempt through ON DELETE CASCADE. The
  // pragma cannot change inside a transaction.
  db.exec("PRAGMA foreign_keys = OFF");
  try {
    return migrateLocked(db, path, migrations);
  } finally {
    db.exec("PRAGMA foreign_keys = ON");
  }
}

/** Applies the pending migrations in one transaction under the write lock; returns what it did. */
function migrateLocked(
  db: DatabaseSync,
  path: string,
  migrations: readonly string[],
): SchemaMigration {
  db.prepare("BEGIN IMMEDIATE").run();
  try {
    // Another process may have migrated while this one waited for the lock.
    const current = (db.prepare("PRAGMA user_version").get() as Row).user_version as number;
    if (current > SCHEMA_VERSION) throw newerSchemaError(path, current);
    if (current < SCHEMA_VERSION) {
      for (let version = current; version < SCHEMA_VERSION; version++) {
        db.exec(migrations[version]);
      }
      const broken = db.prepare("PRAGMA foreign_key_check").all();
      if (broken.length > 0) throw new Error(`migration broke ${broken.length} references`);
      db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    }
    db.prepare("COMMIT").run();
    return { from: current, to: SCHEMA_VERSION };
  } catch (error) {
    rollbackQuietly(db);
    throw error;
  }
}

/** The device and inode of a file: what stays the same while a path names the same file. */
export interface FileIdentity {
  dev: number;
  ino: number;
}

/** The identity of the file at `path`, or null where it cannot be read. */
export function fileIdentity(path: string): FileIdentity | null {
  try {
    const info = Deno.statSync(path);
    return info.ino === null ? null : { dev: info.dev, ino: info.ino };
  } catch {
    return null;
  }
}

/**
 * Whether `path` still names the file that had `identity` when it was
 * opened: false once it was deleted, or replaced by another file. True
 * where that cannot be told (no identity, or the path cannot be read).
 */
export function stillAtLocation(path: string, identity: FileIdentity | null): boolean {
  if (identity === null) return true;
  let now: Deno.FileInfo;
  try {
    now = Deno.statSync(path);
  } catch (error) {
    return !(error instanceof Deno.errors.NotFound);
  }
  return now.dev === identity.dev && now.ino === identity.ino;
}
