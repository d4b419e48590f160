/**
 * One open SQLite connection as the rest of the SQLite backend uses it:
 * statements prepared once and reused, write transactions that wait out
 * other writers (busy handling), snapshot reads, and low-level errors
 * turned into one-line queue errors.
 *
 * @module
 */

import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import { DatabaseError, QueueError } from "../errors.ts";
import { sleep } from "../timing.ts";

/** A row as node:sqlite returns it. */
export type Row = Record<string, SQLInputValue>;

/** How long one statement waits for another connection's write lock, in ms. */
export const BUSY_TIMEOUT_MS = 5_000;
/** How long a write keeps retrying past busy timeouts before giving up, in ms. */
const BUSY_GIVE_UP_MS = 120_000;
/**
 * How long a write that may be skipped waits for another connection's write
 * lock, in ms. SQLite's busy wait blocks the calling thread: a worker stuck
 * in it for live output could not see its run end (nor a kill) in time.
 */
const SKIPPABLE_BUSY_TIMEOUT_MS = 50;

/**
 * Jobs deleted per transaction when many are (purge, retention, delete by
 * state): each batch is its own transaction, so that workers are never
 * locked out for long while a large backlog is deleted.
 */
export const DELETE_BATCH = 5_000;

const SQLITE_BUSY = 5;
/** The result code of a UNIQUE constraint failure. */
export const SQLITE_CONSTRAINT_UNIQUE = 2067;
/** The result code of "file is not a database". */
export const SQLITE_NOTADB = 26;

/** The SQLite result code of an error thrown by a prepared statement; undefined for others. */
export function errcode(error: unknown): number | undefined {
  return (error as { errcode?: number }).errcode;
}

/** Whether an error means another connection holds the lock (SQLITE_BUSY and its variants). */
export function isBusy(error: unknown): boolean {
  const code = errcode(error);
  if (code !== undefined) return (code & 0xff) === SQLITE_BUSY;
  // exec() errors carry no errcode; the message is the only sign.
  return /database is locked/.test((error as Error).message ?? "");
}

/** Ends an open transaction without letting a failing ROLLBACK hide the error that caused it. */
export function rollbackQuietly(db: DatabaseSync): void {
  try {
    if (db.isTransaction) db.exec("ROLLBACK");
  } catch {
    // The original error says more.
  }
}

/**
 * How long a write waits for its turn among the threads of this process
 * before taking it anyway, in ms: a thread ended in the middle of a write
 * (a terminated Web Worker) never gives its turn back.
 */
const TURN_WAIT_MS = 1_000;

/**
 * Write turns among the threads of one process (the Web Workers of `worker
 * start`), kept in a shared cell. Their connections would otherwise collide
 * in SQLite's busy handler, which sleeps a millisecond or more each time;
 * waiting on the cell ends the moment the other thread commits. Only
 * advisory: SQLite's own lock (and busy timeout) still keeps writers apart,
 * those of other processes too.
 */
export class WriteTurns {
  readonly #cell: Int32Array;

  /** @param shared a SharedArrayBuffer of at least 4 bytes, the same for every thread */
  constructor(shared: SharedArrayBuffer) {
    this.#cell = new Int32Array(shared, 0, 1);
  }

  /** Waits until no other thread of the process writes, then marks this one writing. */
  take(): void {
    if (!this.tryTake(TURN_WAIT_MS)) Atomics.store(this.#cell, 0, 1);
  }

  /**
   * Marks this thread writing if no other thread writes within `waitMs`;
   * false, taking nothing, otherwise.
   */
  tryTake(waitMs: number): boolean {
    const deadline = Date.now() + waitMs;
    while (Atomics.compareExchange(this.#cell, 0, 0, 1) !== 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      Atomics.wait(this.#cell, 0, 1, left);
    }
    return true;
  }

  /** Ends this thread's write: the next waiting thread goes on. */
  give(): void {
    Atomics.store(this.#cell, 0, 0);
    Atomics.notify(this.#cell, 0, 1);
  }
}

/** A queuectl database connection: statements, transactions and errors. */
export class SqliteConnection {
  readonly #statements = new Map<string, StatementSync>();
  #dataVersion = -1;

  /** @param turns write turns shared with the other threads of this process, if any */
  constructor(
    readonly db: DatabaseSync,
    readonly location: string,
    readonly turns?: WriteTurns,
  ) {}

  /** A statement prepared once per connection and reused. */
  sql(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /**
   * Runs `body` in a write transaction, waiting out other writers. BEGIN
   * IMMEDIATE takes the write lock up front: a deferred transaction that
   * later writes fails at once when another connection holds the lock.
   */
  async write<T>(body: () => T): Promise<T> {
    const giveUpAt = Date.now() + BUSY_GIVE_UP_MS;
    // Not retryWithBackoff: its await would fall between BEGIN and the body,
    // and another connection of this thread would then block in its busy wait
    // on the lock held here ("eight connections in one thread" hangs).
    for (let attempt = 0;; attempt++) {
      this.turns?.take();
      try {
        this.sql("BEGIN IMMEDIATE").run();
      } catch (error) {
        this.turns?.give();
        if (isBusy(error) && Date.now() < giveUpAt) {
          await sleep(Math.min(10 * 2 ** attempt, 500) * (0.5 + Math.random()));
          continue;
        }
        throw this.wrap(error);
      }
      try {
        return this.#commitOrRollback(body);
      } finally {
        this.turns?.give();
      }
    }
  }

  /**
   * Runs `body` in a write transaction if the write lock comes within
   * {@linkcode SKIPPABLE_BUSY_TIMEOUT_MS}; throws otherwise, for the caller
   * to try again later.
   */
  writeIfFree<T>(body: () => T): T {
    // A thread holding the turn may itself wait out another process's lock
    // for seconds: waiting a full turn here would block this thread as long.
    if (this.turns && !this.turns.tryTake(SKIPPABLE_BUSY_TIMEOUT_MS)) {
      throw new DatabaseError(`database ${this.location}: another thread is writing`);
    }
    this.sql(`PRAGMA busy_timeout = ${SKIPPABLE_BUSY_TIMEOUT_MS}`).get();
    try {
      this.sql("BEGIN IMMEDIATE").run();
    } catch (error) {
      this.turns?.give();
      throw this.wrap(error);
    } finally {
      this.sql(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`).get();
    }
    try {
      return this.#commitOrRollback(body);
    } finally {
      this.turns?.give();
    }
  }

  /** Runs `body` in the transaction just begun: commits its work, or rolls it back if it throws. */
  #commitOrRollback<T>(body: () => T): T {
    try {
      const result = body();
      this.sql("COMMIT").run();
      return result;
    } catch (error) {
      rollbackQuietly(this.db);
      throw this.wrap(error);
    }
  }

  /** Turns low-level SQLite errors into one-line queue errors. */
  wrap(error: unknown): Error {
    if (error instanceof QueueError) return error;
    return new DatabaseError(`database ${this.location}: ${(error as Error).message}`);
  }

  /** Runs the reads of `body` outside any transaction (each statement sees the latest commit). */
  async read<T>(body: () => T): Promise<T> {
    try {
      return await Promise.resolve(body());
    } catch (error) {
      throw this.wrap(error);
    }
  }

  /** Like {@linkcode read}, with every statement of `body` reading the same snapshot. */
  readSnapshot<T>(body: () => T): Promise<T> {
    return this.read(() => {
      this.sql("BEGIN").run();
      try {
        const result = body();
        this.sql("COMMIT").run();
        return result;
      } catch (error) {
        rollbackQuietly(this.db);
        throw error;
      }
    });
  }

  /** Whether another connection has committed a change since the last call. */
  hasChanged(): Promise<boolean> {
    return this.read(() => {
      const version = (this.sql("PRAGMA data_version").get() as Row).data_version as number;
      const changed = version !== this.#dataVersion;
      this.#dataVersion = version;
      return changed;
    });
  }

  /** Releases the statements and the connection. */
  close(): void {
    this.#statements.clear();
    if (this.db.isOpen) this.db.close();
  }
}
