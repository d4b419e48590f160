/**
 * The SQLite backend of {@linkcode Store}, on Deno's built-in `node:sqlite`.
 * All SQL of queuectl lives in this file and its migrations.
 *
 * @module
 */

import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { configField, configKey, DEFAULT_CONFIG, type QueueConfig } from "../config.ts";
import { DatabaseError, DuplicateJobError, JobNotFoundError, QueueError } from "../errors.ts";
import type { AttemptOutput, AttemptRecord, ClaimedJob, Job, NewJob } from "../job.ts";
import {
  CLAIMABLE_STATES,
  DELETABLE_STATES,
  FINAL_STATES,
  JOB_STATES,
  type JobState,
  PURGEABLE_STATES,
  type Transition,
  TRANSITIONS,
  UNFINISHED_STATES,
} from "../states.ts";
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION } from "./sqlite_migrations.ts";
import { sqliteNotifier } from "./sqlite_notifier.ts";
import type {
  AttemptOutcome,
  DeleteTarget,
  Dependency,
  FinishedCounts,
  Heartbeat,
  HistoryMark,
  JobFilter,
  KillMode,
  KillRequest,
  LiveOutput,
  NewestOutput,
  Notifier,
  QueueSelection,
  QueueSummary,
  RunStats,
  StateCounts,
  Store,
  WorkerRecord,
} from "./store.ts";

/** How long one statement waits for another connection's write lock, in ms. */
const BUSY_TIMEOUT_MS = 5_000;
/** How long a write keeps retrying past busy timeouts before giving up, in ms. */
const BUSY_GIVE_UP_MS = 120_000;
/**
 * How long a write that may be skipped waits for another connection's write
 * lock, in ms. SQLite's busy wait blocks the calling thread: a worker stuck
 * in it for live output could not see its run end (nor a kill) in time.
 */
const SKIPPABLE_BUSY_TIMEOUT_MS = 50;

/** Jobs deleted per transaction by `purgeJobs`. */
const PURGE_BATCH = 5_000;
/** A WAL larger than this is folded back into the database by `checkpoint`, in bytes. */
const WAL_TRUNCATE_BYTES = 16 * 1024 * 1024;

const SQLITE_BUSY = 5;
const SQLITE_CONSTRAINT_UNIQUE = 2067;
const SQLITE_NOTADB = 26;

type Row = Record<string, SQLInputValue>;

/**
 * The statement of `listJobs`: one per filter, each searching its own index
 * (a statement with optional filters, "? IS NULL OR …", would scan the whole
 * table). Several states are one search per state, merged in `seq` order by
 * SQLite (a compound ORDER BY), so the newest N never sort every match.
 * Parameters: each state (followed by the queue, when filtered by queue);
 * the queue alone when there is no state; then the limit (-1 for none).
 */
export function listJobsSql(stateCount: number, byQueue: boolean): string {
  if (stateCount === 0) {
    return byQueue
      ? "SELECT * FROM jobs INDEXED BY jobs_by_queue WHERE queue = ? ORDER BY seq DESC LIMIT ?"
      : "SELECT * FROM jobs ORDER BY seq DESC LIMIT ?";
  }
  const search = `SELECT * FROM jobs INDEXED BY jobs_by_state WHERE state = ?${
    byQueue ? " AND queue = ?" : ""
  }`;
  return `${Array(stateCount).fill(search).join(" UNION ALL ")} ORDER BY seq DESC LIMIT ?`;
}

function sqlList(states: readonly JobState[]): string {
  return states.map((s) => `'${s}'`).join(", ");
}

/** The `state IN (…)` guard for a transition: an update only applies to a job in a state it may leave. */
function leaving(transition: Transition): string {
  return `state IN (${sqlList(transition.from)})`;
}

function errcode(error: unknown): number | undefined {
  return (error as { errcode?: number }).errcode;
}

function isBusy(error: unknown): boolean {
  const code = errcode(error);
  if (code !== undefined) return (code & 0xff) === SQLITE_BUSY;
  // exec() errors carry no errcode; the message is the only sign.
  return /database is locked/.test((error as Error).message ?? "");
}

function rowToJob(row: Row): Job {
  return {
    id: row.id as string,
    queue: row.queue as string,
    command: row.command as string,
    state: row.state as JobState,
    attempts: row.attempts as number,
    maxRetries: row.max_retries as number,
    priority: row.priority as number,
    runAt: row.run_at as number,
    createdAt: row.created_at as number,
    updatedAt: row.updated_at as number,
    startedAt: row.started_at as number | null,
    finishedAt: row.finished_at as number | null,
    exitCode: row.exit_code as number | null,
    lastError: row.last_error as string | null,
    timeoutMs: row.timeout_ms as number | null,
    cwd: row.cwd as string,
    workerId: row.worker_id as string | null,
  };
}

function rowToAttempt(row: Row): AttemptRecord {
  return {
    jobId: row.job_id as string,
    attempt: row.attempt as number,
    startedAt: row.started_at as number | null,
    finishedAt: row.finished_at as number,
    exitCode: row.exit_code as number | null,
    error: row.error as string | null,
  };
}

function rowToOutput(row: Row): AttemptOutput {
  return {
    attempt: row.attempt as number,
    stdout: row.stdout as Uint8Array,
    stderr: row.stderr as Uint8Array,
    stdoutDropped: row.stdout_dropped as number,
    stderrDropped: row.stderr_dropped as number,
  };
}

function emptyCounts(): StateCounts {
  return Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as StateCounts;
}

/** A queue selection as the JSON text that SQL reads with json_each, or null for every queue. */
function queuesParam(selection: QueueSelection | undefined): string | null {
  return selection?.queues === undefined ? null : JSON.stringify(selection.queues);
}

/** How many priority levels a claim visits one by one below a queue's top level (see #dueBelow). */
const LEVELS_VISITED = 8;

/** Whether waiting job `a` goes before `b`: higher priority, then earlier due, then older. */
function ranksBefore(a: Row, b: Row): boolean {
  const [pa, pb] = [a.priority as number, b.priority as number];
  if (pa !== pb) return pa > pb;
  const [ra, rb] = [a.run_at as number, b.run_at as number];
  if (ra !== rb) return ra < rb;
  return (a.seq as number) < (b.seq as number);
}

/** The served, unpaused queues of a selection, as SQL over the queues table aliased `q`. */
const SELECTED_QUEUES = `q.paused_at IS NULL
  AND (:queues IS NULL OR q.name IN (SELECT value FROM json_each(:queues)))`;

function rowToWorker(row: Row): WorkerRecord {
  return {
    id: row.id as string,
    pid: row.pid as number,
    host: row.host as string,
    threads: row.threads as number,
    startedAt: row.started_at as number,
    heartbeatAt: row.heartbeat_at as number,
    stopRequested: row.stop_requested === 1,
    procStart: (row.proc_start as string | null) ?? null,
  };
}

/** Options of {@linkcode openSqliteStore}. */
export interface SqliteStoreOptions {
  /**
   * Create the file (and its folders) when it does not exist; otherwise a
   * missing file is an error. An older schema is migrated forward either way.
   * @default true
   */
  create?: boolean;
}

/**
 * Opens (creating if needed) a queuectl SQLite database and brings its
 * schema up to date. A file that is not SQLite, a SQLite database of some
 * other program, or one made by a newer queuectl is refused with a
 * {@linkcode DatabaseError}, and left untouched.
 */
export async function openSqliteStore(
  path: string,
  options: SqliteStoreOptions = {},
): Promise<Store> {
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
  const giveUpAt = Date.now() + BUSY_TIMEOUT_MS;
  for (let attempt = 0;; attempt++) {
    try {
      prepareDatabase(db, path);
      break;
    } catch (error) {
      rollbackQuietly(db);
      if (isBusy(error) && Date.now() < giveUpAt) {
        await sleep(Math.min(5 * 2 ** attempt, 200));
        continue;
      }
      db.close();
      throw isBusy(error)
        ? new DatabaseError(`database ${path} stayed locked: ${(error as Error).message}`)
        : error;
    }
  }
  return new SqliteStore(db, path);
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

/** Checks the file is ours (reading only), then sets pragmas and migrates. */
function prepareDatabase(db: DatabaseSync, path: string): void {
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
  if (version > SCHEMA_VERSION) {
    throw new DatabaseError(
      `${path} was written by a newer queuectl (schema ${version}, this one knows ${SCHEMA_VERSION}); upgrade queuectl`,
    );
  }
  try {
    // WAL lets readers run beside the one writer; NORMAL is durable across
    // process crashes in WAL mode, and only a power cut can lose the last commits.
    // The journal mode is stored in the file: only a database this process
    // sets up needs it switched (and the switch takes a lock).
    if (version < SCHEMA_VERSION) {
      const mode = (db.prepare("PRAGMA journal_mode").get() as Row).journal_mode;
      if (mode !== "wal") db.exec("PRAGMA journal_mode = WAL");
    }
    // NORMAL is durable across process crashes in WAL mode (only a power cut
    // can lose the last commits); the size limit cuts a WAL that a burst of
    // writes grew, after each checkpoint.
    db.exec(`PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = ${WAL_TRUNCATE_BYTES}`);
    if (version < SCHEMA_VERSION) migrate(db);
  } catch (error) {
    if (error instanceof QueueError || isBusy(error)) throw error;
    throw new DatabaseError(`cannot prepare database ${path}: ${(error as Error).message}`);
  }
}

function migrate(db: DatabaseSync): void {
  // Migration 3 rebuilds the jobs table; with foreign keys on, dropping the
  // old table would delete every attempt through ON DELETE CASCADE. The
  // pragma cannot change inside a transaction.
  db.exec("PRAGMA foreign_keys = OFF");
  try {
    migrateLocked(db);
  } finally {
    db.exec("PRAGMA foreign_keys = ON");
  }
}

function migrateLocked(db: DatabaseSync): void {
  db.prepare("BEGIN IMMEDIATE").run();
  try {
    // Another process may have migrated while this one waited for the lock.
    const current = (db.prepare("PRAGMA user_version").get() as Row).user_version as number;
    for (let version = current; version < SCHEMA_VERSION; version++) {
      db.exec(MIGRATIONS[version]);
    }
    const broken = db.prepare("PRAGMA foreign_key_check").all();
    if (broken.length > 0) throw new Error(`migration broke ${broken.length} references`);
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    db.prepare("COMMIT").run();
  } catch (error) {
    rollbackQuietly(db);
    throw error;
  }
}

/** Ends an open transaction without letting a failing ROLLBACK hide the error that caused it. */
function rollbackQuietly(db: DatabaseSync): void {
  try {
    if (db.isTransaction) db.exec("ROLLBACK");
  } catch {
    // The original error says more.
  }
}

/** The device and inode of the file at `path`, or null where they cannot be read. */
function fileIdentity(path: string): { dev: number; ino: number } | null {
  try {
    const info = Deno.statSync(path);
    return info.ino === null ? null : { dev: info.dev, ino: info.ino };
  } catch {
    return null;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const CLAIMABLE = sqlList(CLAIMABLE_STATES);

class SqliteStore implements Store {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #dataVersion = -1;

  /** The file's identity when it was opened, to notice it deleted or replaced; null if unknown. */
  readonly #identity: { dev: number; ino: number } | null;

  readonly notifier: Notifier;

  constructor(db: DatabaseSync, readonly location: string) {
    this.#db = db;
    this.#identity = fileIdentity(location);
    this.notifier = sqliteNotifier(this, location);
  }

  /** A statement prepared once per connection and reused. */
  #sql(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /**
   * Runs `body` in a write transaction, waiting out other writers. BEGIN
   * IMMEDIATE takes the write lock up front: a deferred transaction that
   * later writes fails at once when another connection holds the lock.
   */
  async #write<T>(body: () => T): Promise<T> {
    const giveUpAt = Date.now() + BUSY_GIVE_UP_MS;
    for (let attempt = 0;; attempt++) {
      try {
        this.#sql("BEGIN IMMEDIATE").run();
      } catch (error) {
        if (isBusy(error) && Date.now() < giveUpAt) {
          await sleep(Math.min(10 * 2 ** attempt, 500) * (0.5 + Math.random()));
          continue;
        }
        throw this.#wrap(error);
      }
      try {
        const result = body();
        this.#sql("COMMIT").run();
        return result;
      } catch (error) {
        rollbackQuietly(this.#db);
        throw this.#wrap(error);
      }
    }
  }

  /**
   * Runs `body` in a write transaction if the write lock comes within
   * {@linkcode SKIPPABLE_BUSY_TIMEOUT_MS}; throws otherwise, for the caller
   * to try again later.
   */
  #writeIfFree<T>(body: () => T): T {
    this.#sql(`PRAGMA busy_timeout = ${SKIPPABLE_BUSY_TIMEOUT_MS}`).get();
    try {
      this.#sql("BEGIN IMMEDIATE").run();
    } catch (error) {
      throw this.#wrap(error);
    } finally {
      this.#sql(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`).get();
    }
    try {
      const result = body();
      this.#sql("COMMIT").run();
      return result;
    } catch (error) {
      rollbackQuietly(this.#db);
      throw this.#wrap(error);
    }
  }

  /** Turns low-level SQLite errors into one-line queue errors. */
  #wrap(error: unknown): Error {
    if (error instanceof QueueError) return error;
    return new DatabaseError(`database ${this.location}: ${(error as Error).message}`);
  }

  async #read<T>(body: () => T): Promise<T> {
    try {
      return await Promise.resolve(body());
    } catch (error) {
      throw this.#wrap(error);
    }
  }

  /** Like #read, with every statement of `body` reading the same snapshot of the database. */
  #readSnapshot<T>(body: () => T): Promise<T> {
    return this.#read(() => {
      this.#sql("BEGIN").run();
      try {
        const result = body();
        this.#sql("COMMIT").run();
        return result;
      } catch (error) {
        rollbackQuietly(this.#db);
        throw error;
      }
    });
  }

  enqueue(jobs: NewJob[], now: number): Promise<void> {
    const insert = this.#sql(
      `INSERT INTO jobs (id, queue, command, state, max_retries, priority, run_at, created_at,
         updated_at, finished_at, last_error, timeout_ms, cwd)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const addDependency = this.#sql(
      "INSERT OR IGNORE INTO job_dependencies (job_id, depends_on) VALUES (?, ?)",
    );
    return this.#write(() => {
      // Inserts are counted once per queue and state, not by a per-row trigger (see migration 2).
      const counts = new Map<string, { queue: string; state: JobState; n: number }>();
      for (const job of jobs) {
        const { state, lastError } = this.#initialState(job);
        try {
          insert.run(
            job.id,
            job.queue,
            job.command,
            state,
            job.maxRetries,
            job.priority,
            job.runAt,
            now,
            now,
            state === "dead" ? now : null,
            lastError,
            job.timeoutMs,
            job.cwd,
          );
        } catch (error) {
          if (errcode(error) === SQLITE_CONSTRAINT_UNIQUE) throw new DuplicateJobError(job.id);
          throw error;
        }
        for (const dependency of job.after) addDependency.run(job.id, dependency);
        const key = `${job.queue}\0${state}`;
        const entry = counts.get(key) ?? { queue: job.queue, state, n: 0 };
        entry.n++;
        counts.set(key, entry);
      }
      for (const { queue, state, n } of counts.values()) this.#countInsert(queue, state, n);
    });
  }

  /** A new job's state from the jobs it runs after, which must exist (earlier in the batch counts). */
  #initialState(job: NewJob): { state: JobState; lastError: string | null } {
    let state: JobState = "pending";
    for (const dependency of job.after) {
      const row = this.#sql("SELECT state FROM jobs WHERE id = ?").get(dependency) as
        | Row
        | undefined;
      if (!row) {
        throw new QueueError(`job '${job.id}' runs after '${dependency}', which does not exist`);
      }
      if (row.state === "dead") {
        return { state: "dead", lastError: `runs after '${dependency}', which is dead` };
      }
      if (row.state !== "completed") state = "blocked";
    }
    return { state, lastError: null };
  }

  #countInsert(queue: string, state: JobState, n: number): void {
    this.#sql("INSERT INTO queues (name) VALUES (?) ON CONFLICT (name) DO NOTHING").run(queue);
    this.#sql(
      `INSERT INTO queue_counts (queue, state, n) VALUES (?, ?, ?)
       ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n`,
    ).run(queue, state, n);
  }

  getJob(id: string): Promise<Job | undefined> {
    return this.#read(() => {
      const row = this.#sql("SELECT * FROM jobs WHERE id = ?").get(id) as Row | undefined;
      return row && rowToJob(row);
    });
  }

  getDependencies(id: string): Promise<Dependency[]> {
    const dependencies = this.#sql(
      `SELECT d.depends_on AS id, j.state FROM job_dependencies d
       LEFT JOIN jobs j ON j.id = d.depends_on AND NOT d.gone
       WHERE d.job_id = ? ORDER BY d.depends_on`,
    );
    return this.#read(() =>
      (dependencies.all(id) as Row[]).map((row) => ({
        id: row.id as string,
        state: row.state as JobState | null,
      }))
    );
  }

  listJobs(filter: JobFilter): Promise<Job[]> {
    return this.#read(() => {
      const states = [...new Set(filter.states ?? [])];
      const sql = listJobsSql(states.length, filter.queue !== undefined);
      const params = states.flatMap((state) =>
        filter.queue === undefined ? [state] : [state, filter.queue]
      );
      if (states.length === 0 && filter.queue !== undefined) params.push(filter.queue);
      const rows = this.#sql(sql).all(...params, filter.limit ?? -1);
      return (rows as Row[]).map(rowToJob);
    });
  }

  countByState(): Promise<StateCounts> {
    return this.#read(() => {
      const counts = emptyCounts();
      const rows = this.#sql("SELECT state, sum(n) AS n FROM queue_counts GROUP BY state")
        .all() as Row[];
      for (const row of rows) counts[row.state as JobState] = row.n as number;
      return counts;
    });
  }

  countJobs(states: readonly JobState[], changedBefore?: number): Promise<number> {
    return this.#read(() => {
      let total = 0;
      for (const state of new Set(states)) {
        const row = changedBefore === undefined
          ? this.#sql("SELECT coalesce(sum(n), 0) AS n FROM queue_counts WHERE state = ?").get(
            state,
          )
          : this.#sql(
            `SELECT count(*) AS n FROM jobs INDEXED BY jobs_by_state
             WHERE state = ? AND updated_at < ?`,
          ).get(state, changedBefore);
        total += (row as Row).n as number;
      }
      return total;
    });
  }

  countUnfinished(selection?: QueueSelection): Promise<number> {
    return this.#read(() => {
      const unfinished = `state IN (${sqlList(UNFINISHED_STATES)})`;
      const row = selection === undefined
        ? this.#sql(`SELECT coalesce(sum(n), 0) AS n FROM queue_counts WHERE ${unfinished}`).get()
        : this.#sql(
          `SELECT coalesce(sum(n), 0) AS n FROM queue_counts
           WHERE ${unfinished} AND queue IN (SELECT q.name FROM queues q WHERE ${SELECTED_QUEUES})`,
        ).get({ queues: queuesParam(selection) });
      return (row as Row).n as number;
    });
  }

  nextRunAt(selection?: QueueSelection): Promise<number | undefined> {
    return this.#read(() => {
      const row = this.#sql(
        `SELECT min((SELECT min(run_at) FROM jobs INDEXED BY jobs_waiting_by_time
                     WHERE queue = q.name AND state IN (${CLAIMABLE}))) AS t
         FROM queues q WHERE ${SELECTED_QUEUES}`,
      ).get({ queues: queuesParam(selection) }) as Row;
      return (row.t as number | null) ?? undefined;
    });
  }

  oldestWaitingRunAt(): Promise<number | undefined> {
    return this.#read(() => {
      const row = this.#sql(
        `SELECT min((SELECT min(run_at) FROM jobs INDEXED BY jobs_waiting_by_time
                     WHERE queue = q.name AND state IN (${CLAIMABLE}))) AS t
         FROM queues q`,
      ).get() as Row;
      return (row.t as number | null) ?? undefined;
    });
  }

  listScheduled(now: number, limit: number): Promise<Job[]> {
    return this.#read(() => {
      // Per queue through the index, then merged: a few queues, each read only at its front.
      const rows: Row[] = [];
      for (const queue of this.#sql("SELECT name FROM queues").all() as Row[]) {
        rows.push(
          ...this.#sql(
            `SELECT * FROM jobs INDEXED BY jobs_waiting_by_time
             WHERE queue = ? AND state IN (${CLAIMABLE}) AND run_at > ?
             ORDER BY run_at LIMIT ?`,
          ).all(queue.name, now, limit) as Row[],
        );
      }
      return rows.map(rowToJob).sort((a, b) => a.runAt - b.runAt).slice(0, limit);
    });
  }

  listQueues(): Promise<QueueSummary[]> {
    return this.#read(() => {
      const queues = new Map<string, QueueSummary>();
      for (
        const row of this.#sql("SELECT name, paused_at FROM queues ORDER BY name").all() as Row[]
      ) {
        queues.set(row.name as string, {
          name: row.name as string,
          pausedAt: row.paused_at as number | null,
          counts: emptyCounts(),
        });
      }
      for (const row of this.#sql("SELECT queue, state, n FROM queue_counts").all() as Row[]) {
        const queue = queues.get(row.queue as string);
        if (queue) queue.counts[row.state as JobState] = row.n as number;
      }
      return [...queues.values()].filter((q) =>
        q.pausedAt !== null || Object.values(q.counts).some((n) => n > 0)
      );
    });
  }

  pauseQueue(name: string, now: number): Promise<boolean> {
    const pause = this.#sql(
      `INSERT INTO queues (name, paused_at) VALUES (?, ?)
       ON CONFLICT (name) DO UPDATE SET paused_at = excluded.paused_at WHERE paused_at IS NULL`,
    );
    return this.#write(() => pause.run(name, now).changes > 0);
  }

  resumeQueue(name: string): Promise<boolean> {
    const resume = this.#sql(
      "UPDATE queues SET paused_at = NULL WHERE name = ? AND paused_at IS NOT NULL",
    );
    return this.#write(() => resume.run(name).changes > 0);
  }

  /** For the notifier: whether another connection has committed since the previous call. */
  dataVersionChanged(): Promise<boolean> {
    return this.#read(() => {
      const version = (this.#sql("PRAGMA data_version").get() as Row).data_version as number;
      const changed = version !== this.#dataVersion;
      this.#dataVersion = version;
      return changed;
    });
  }

  // INDEXED BY pins the plans below: without statistics the planner prefers
  // jobs_by_state and sorts every waiting job on every claim.
  claim(
    workerId: string,
    now: number,
    selection?: QueueSelection,
  ): Promise<ClaimedJob | undefined> {
    // Every served, unpaused queue that has a due job (one index probe),
    // with the front of its index: the earliest job of its highest priority
    // level (one seek). If that one is due, it is the queue's best; if not,
    // nothing at that level is, and the queue's best lies lower. Queues of
    // the second kind come first, then the rest best first: the first of
    // those ends the search.
    const fronts = this.#sql(
      `SELECT q.name AS queue, c.seq, c.priority, c.run_at FROM queues q
       JOIN jobs c ON c.seq = (
         SELECT seq FROM jobs INDEXED BY jobs_ready
         WHERE queue = q.name AND state IN (${CLAIMABLE})
         ORDER BY priority DESC, run_at, seq LIMIT 1
       )
       WHERE ${SELECTED_QUEUES}
         AND (SELECT min(run_at) FROM jobs INDEXED BY jobs_waiting_by_time
              WHERE queue = q.name AND state IN (${CLAIMABLE})) <= :now
       ORDER BY c.run_at > :now DESC, c.priority DESC, c.run_at, c.seq`,
    );
    const claim = this.#sql(
      `UPDATE jobs SET state = '${TRANSITIONS.claim.to}', attempts = attempts + 1,
         claim_token = :token, worker_id = :worker, started_at = :now, updated_at = :now,
         kill_request = NULL
       WHERE seq = :seq AND ${leaving(TRANSITIONS.claim)}
       RETURNING *`,
    );
    const token = crypto.randomUUID();
    const queues = queuesParam(selection);
    return this.#write(() => {
      let best: Row | undefined;
      for (const front of fronts.iterate({ queues, now }) as Iterable<Row>) {
        const due = (front.run_at as number) <= now;
        const candidate = due
          ? front
          : this.#dueBelow(front.queue as string, front.priority as number, now);
        if (candidate && (!best || ranksBefore(candidate, best))) best = candidate;
        if (due) break; // The rest come best first: this one beats them.
      }
      if (!best) return undefined;
      const row = claim.get({ token, worker: workerId, now, seq: best.seq }) as Row | undefined;
      return row && { ...rowToJob(row), claimToken: token };
    });
  }

  /**
   * The best due job of `queue` below priority `level`. The next levels are
   * visited one index seek each, which skips jobs scheduled later however
   * many; past {@linkcode LEVELS_VISITED} levels, one ordered search takes
   * the rest, so that many sparse levels cost no more than that search.
   */
  #dueBelow(queue: string, level: number, now: number): Row | undefined {
    const nextLevel = this.#sql(
      `SELECT max(priority) AS level FROM jobs INDEXED BY jobs_ready
       WHERE queue = :queue AND state IN (${CLAIMABLE}) AND priority < :level`,
    );
    const dueAtLevel = this.#sql(
      `SELECT seq, priority, run_at FROM jobs INDEXED BY jobs_ready
       WHERE queue = :queue AND state IN (${CLAIMABLE}) AND priority = :level
         AND run_at <= :now
       ORDER BY run_at, seq LIMIT 1`,
    );
    const dueAnywhereBelow = this.#sql(
      `SELECT seq, priority, run_at FROM jobs INDEXED BY jobs_ready
       WHERE queue = :queue AND state IN (${CLAIMABLE}) AND priority < :level
         AND run_at <= :now
       ORDER BY priority DESC, run_at, seq LIMIT 1`,
    );
    for (let visited = 0; visited < LEVELS_VISITED; visited++) {
      const next = (nextLevel.get({ queue, level }) as Row).level as number | null;
      if (next === null) return undefined;
      level = next;
      const due = dueAtLevel.get({ queue, level, now }) as Row | undefined;
      if (due) return due;
    }
    return dueAnywhereBelow.get({ queue, level, now }) as Row | undefined;
  }

  finishAttempt(job: ClaimedJob, outcome: AttemptOutcome): Promise<boolean> {
    const update = this.#sql(
      `UPDATE jobs SET state = :state, run_at = coalesce(:retryAt, run_at), updated_at = :now,
         finished_at = :now, exit_code = :exitCode, last_error = :error,
         claim_token = NULL, worker_id = NULL, kill_request = NULL
       WHERE id = :id AND claim_token = :token AND state = 'processing'`,
    );
    const killRequest = this.#sql(
      "SELECT kill_request FROM jobs WHERE id = ? AND claim_token = ?",
    );
    const record = this.#sql(
      `INSERT INTO job_attempts (job_id, attempt, started_at, finished_at, exit_code, error,
         stdout, stderr, stdout_dropped, stderr_dropped)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    return this.#write(() => {
      let state = outcome.state;
      const request = killRequest.get(job.id, job.claimToken) as Row | undefined;
      if (state === "failed" && request?.kill_request === "dead") state = "dead";
      const transition = state === "completed"
        ? TRANSITIONS.complete
        : state === "failed"
        ? TRANSITIONS.scheduleRetry
        : TRANSITIONS.bury;
      const { changes } = update.run({
        state: transition.to,
        retryAt: state === "failed" ? outcome.retryAt ?? null : null,
        now: outcome.finishedAt,
        exitCode: outcome.exitCode,
        error: outcome.error,
        id: job.id,
        token: job.claimToken,
      });
      if (changes === 0) return false;
      const out = outcome.output;
      record.run(
        job.id,
        job.attempts,
        job.startedAt,
        outcome.finishedAt,
        outcome.exitCode,
        outcome.error,
        out.stdout,
        out.stderr,
        out.stdoutDropped,
        out.stderrDropped,
      );
      if (transition.to === "completed") this.#releaseDependents(job.id, outcome.finishedAt);
      if (transition.to === "dead") {
        this.#abandonDependents(job.id, "which is dead", outcome.finishedAt);
      }
      return true;
    });
  }

  // The unary + in "+state IN (…)" keeps SQLite from searching jobs_by_state (every
  // blocked job) instead of looking the few dependents up by id: that made every
  // finished job cost a scan of all blocked ones.

  /** Moves jobs blocked on `id`, which just completed, to pending once all they run after has completed. */
  #releaseDependents(id: string, now: number): void {
    const unblock = this.#sql(
      `UPDATE jobs SET state = '${TRANSITIONS.unblock.to}', updated_at = :now
       WHERE +${leaving(TRANSITIONS.unblock)} AND id IN (
         SELECT d.job_id FROM job_dependencies d INDEXED BY job_dependencies_by_dependency
         WHERE d.depends_on = :id AND NOT d.gone
       ) AND NOT EXISTS (
         SELECT 1 FROM job_dependencies d2 JOIN jobs j2 ON j2.id = d2.depends_on
         WHERE d2.job_id = jobs.id AND NOT d2.gone AND j2.state <> 'completed'
       )`,
    );
    unblock.run({ now, id });
  }

  /** Sends jobs blocked on `id` to the DLQ, and the jobs blocked on them, and so on. */
  #abandonDependents(id: string, why: string, now: number): void {
    const abandon = this.#sql(
      `UPDATE jobs SET state = '${TRANSITIONS.abandon.to}', updated_at = :now, finished_at = :now,
         last_error = :error
       WHERE +${leaving(TRANSITIONS.abandon)} AND id IN (
         SELECT d.job_id FROM job_dependencies d INDEXED BY job_dependencies_by_dependency
         WHERE d.depends_on = :id AND NOT d.gone
       )
       RETURNING id`,
    );
    const stack = [{ id, why }];
    while (stack.length > 0) {
      const next = stack.pop()!;
      const error = `runs after '${next.id}', ${next.why}`;
      for (const row of abandon.all({ now, id: next.id, error }) as Row[]) {
        stack.push({ id: row.id as string, why: "which is dead" });
      }
    }
  }

  releaseJob(job: ClaimedJob, now: number): Promise<boolean> {
    const release = this.#sql(
      `UPDATE jobs SET state = '${TRANSITIONS.release.to}', attempts = attempts - 1,
         claim_token = NULL, worker_id = NULL, updated_at = :now, kill_request = NULL
       WHERE id = :id AND claim_token = :token AND ${leaving(TRANSITIONS.release)}`,
    );
    return this.#write(() => release.run({ now, id: job.id, token: job.claimToken }).changes > 0);
  }

  reviveDead(ids: string[] | "all", now: number): Promise<string[]> {
    return this.#startOver(ids, TRANSITIONS.revive, now);
  }

  rerunJobs(ids: string[], now: number): Promise<string[]> {
    return this.#startOver(ids, TRANSITIONS.rerun, now);
  }

  /** `dlq retry` and `retry`: finished jobs go back to the queue, attempts 0, all or none. */
  #startOver(ids: string[] | "all", transition: Transition, now: number): Promise<string[]> {
    const update = this.#sql(
      `UPDATE jobs SET state = '${transition.to}', attempts = 0, run_at = :now, updated_at = :now
       WHERE id = :id AND ${leaving(transition)}`,
    );
    const block = this.#sql(
      `UPDATE jobs SET state = '${TRANSITIONS.block.to}' WHERE id = ? AND ${
        leaving(TRANSITIONS.block)
      }`,
    );
    const dependencyStates = this.#sql(
      `SELECT d.depends_on AS id, j.state FROM job_dependencies d
       JOIN jobs j ON j.id = d.depends_on WHERE d.job_id = ? AND NOT d.gone`,
    );
    return this.#write(() => {
      let targets: string[];
      if (ids === "all") {
        targets = (this.#sql(`SELECT id FROM jobs WHERE ${leaving(transition)} ORDER BY seq`)
          .all() as Row[]).map((r) => r.id as string);
      } else {
        // Oldest first, so that a job started over together with one it runs after finds it waiting.
        const seqOf = this.#sql("SELECT seq, state FROM jobs WHERE id = ?");
        const found = [...new Set(ids)].map((id) => {
          const row = seqOf.get(id) as Row | undefined;
          if (!row) throw new JobNotFoundError(id);
          return { id, seq: row.seq as number };
        });
        targets = found.sort((a, b) => a.seq - b.seq).map((t) => t.id);
      }
      for (const id of targets) {
        if (update.run({ now, id }).changes !== 1) {
          const row = this.#sql("SELECT state FROM jobs WHERE id = ?").get(id) as Row;
          const allowed = transition.from.join(" or ");
          throw new QueueError(`job '${id}' is ${row.state}; only ${allowed} jobs can be retried`);
        }
        for (const dependency of dependencyStates.all(id) as Row[]) {
          if (dependency.state === "dead") {
            throw new QueueError(
              `job '${id}' runs after '${dependency.id}', which is dead; retry '${dependency.id}' too`,
            );
          }
          if (dependency.state !== "completed") block.run(id);
        }
      }
      return targets;
    });
  }

  async purgeJobs(states: readonly JobState[], finishedBefore: number): Promise<number> {
    for (const state of states) {
      if (!PURGEABLE_STATES.includes(state)) throw new QueueError(`cannot purge ${state} jobs`);
    }
    // Small batches, each its own transaction, so that workers are never
    // locked out for long while a large backlog is deleted.
    const purge = this.#sql(
      `DELETE FROM jobs WHERE seq IN (
         SELECT seq FROM jobs WHERE state = ? AND finished_at < ? ORDER BY seq LIMIT ${PURGE_BATCH}
       )`,
    );
    let total = 0;
    for (const state of states) {
      while (true) {
        const deleted = await this.#write(() => Number(purge.run(state, finishedBefore).changes));
        total += deleted;
        if (deleted < PURGE_BATCH) break;
      }
    }
    return total;
  }

  async deleteJobs(target: DeleteTarget, now: number): Promise<number> {
    const remove = this.#sql("DELETE FROM jobs WHERE id = ?");
    // Dependents are found through job_dependencies, where the delete itself
    // marks the job gone (migration 4): they are sent to the DLQ first.
    const deleteOne = (id: string, state: JobState) => {
      if (state !== "completed") this.#abandonDependents(id, "which was deleted", now);
      remove.run(id);
    };
    if ("ids" in target) {
      return await this.#write(() => {
        const ids = [...new Set(target.ids)];
        const states = ids.map((id) => {
          const row = this.#sql("SELECT state FROM jobs WHERE id = ?").get(id) as Row | undefined;
          if (!row) throw new JobNotFoundError(id);
          if (!DELETABLE_STATES.includes(row.state as JobState)) {
            throw new QueueError(`job '${id}' is running; kill it first ('queuectl kill ${id}')`);
          }
          return row.state as JobState;
        });
        ids.forEach((id, i) => deleteOne(id, states[i]));
        return ids.length;
      });
    }
    for (const state of target.states) {
      if (!DELETABLE_STATES.includes(state)) throw new QueueError(`cannot delete ${state} jobs`);
    }
    // Batches, each its own transaction, as in purgeJobs.
    const batch = this.#sql(
      `SELECT id FROM jobs INDEXED BY jobs_by_state WHERE state = ? AND updated_at < ?
       ORDER BY seq LIMIT ${PURGE_BATCH}`,
    );
    let total = 0;
    // Blocked jobs first: deleting the jobs they wait on would otherwise send them
    // to the DLQ before their turn came.
    const states = [...target.states].sort((a, b) =>
      Number(b === "blocked") - Number(a === "blocked")
    );
    for (const state of states) {
      while (true) {
        const deleted = await this.#write(() => {
          const rows = batch.all(state, target.changedBefore ?? Number.MAX_SAFE_INTEGER) as Row[];
          for (const row of rows) deleteOne(row.id as string, state);
          return rows.length;
        });
        total += deleted;
        if (deleted < PURGE_BATCH) break;
      }
    }
    return total;
  }

  requestKill(id: string, mode: KillMode): Promise<KillRequest> {
    const request = this.#sql(
      `UPDATE jobs SET kill_request = ? WHERE id = ? AND state = 'processing'
       RETURNING claim_token, attempts, started_at`,
    );
    return this.#write(() => {
      const row = request.get(mode, id) as Row | undefined;
      if (row) {
        return {
          id,
          claimToken: row.claim_token as string,
          mode,
          attempt: row.attempts as number,
          startedAt: row.started_at as number | null,
        };
      }
      const job = this.#sql("SELECT state FROM jobs WHERE id = ?").get(id) as Row | undefined;
      if (!job) throw new JobNotFoundError(id);
      throw new QueueError(`job '${id}' is not running (its state is ${job.state})`);
    });
  }

  listKillRequests(workerId: string): Promise<KillRequest[]> {
    return this.#read(() =>
      (this.#sql(
        `SELECT id, claim_token, kill_request, attempts, started_at FROM jobs
         INDEXED BY jobs_by_worker
         WHERE worker_id = ? AND state = 'processing' AND kill_request IS NOT NULL`,
      ).all(workerId) as Row[]).map((row) => ({
        id: row.id as string,
        claimToken: row.claim_token as string,
        mode: row.kill_request as KillMode,
        attempt: row.attempts as number,
        startedAt: row.started_at as number | null,
      }))
    );
  }

  async recordLiveOutput(
    job: ClaimedJob,
    output: Omit<LiveOutput, "claimToken" | "attempt">,
  ): Promise<boolean> {
    const upsert = this.#sql(
      `INSERT INTO live_output (job_id, claim_token, attempt, stdout, stderr, stdout_total,
         stderr_total, updated_at)
       SELECT :id, :token, :attempt, :stdout, :stderr, :stdoutTotal, :stderrTotal, :now
       WHERE EXISTS (SELECT 1 FROM jobs WHERE id = :id AND claim_token = :token)
       ON CONFLICT (job_id) DO UPDATE SET claim_token = excluded.claim_token,
         attempt = excluded.attempt, stdout = excluded.stdout, stderr = excluded.stderr,
         stdout_total = excluded.stdout_total, stderr_total = excluded.stderr_total,
         updated_at = excluded.updated_at`,
    );
    return await this.#writeIfFree(() =>
      upsert.run({
        id: job.id,
        token: job.claimToken,
        attempt: job.attempts,
        stdout: output.stdout,
        stderr: output.stderr,
        stdoutTotal: output.stdoutTotal,
        stderrTotal: output.stderrTotal,
        now: output.updatedAt,
      }).changes > 0
    );
  }

  liveOutput(id: string): Promise<LiveOutput | undefined> {
    return this.#read(() => {
      const row = this.#sql("SELECT * FROM live_output WHERE job_id = ?").get(id) as
        | Row
        | undefined;
      if (!row) return undefined;
      return {
        claimToken: row.claim_token as string,
        attempt: row.attempt as number,
        stdout: row.stdout as Uint8Array,
        stderr: row.stderr as Uint8Array,
        stdoutTotal: row.stdout_total as number,
        stderrTotal: row.stderr_total as number,
        updatedAt: row.updated_at as number,
      };
    });
  }

  listAttempts(id: string): Promise<AttemptRecord[]> {
    return this.#read(() =>
      (this.#sql(
        `SELECT job_id, attempt, started_at, finished_at, exit_code, error FROM job_attempts
         WHERE job_id = ? ORDER BY seq`,
      ).all(id) as Row[]).map(rowToAttempt)
    );
  }

  recentFailures(limit: number): Promise<AttemptRecord[]> {
    return this.#read(() =>
      (this.#sql(
        `SELECT job_id, attempt, started_at, finished_at, exit_code, error
         FROM job_attempts INDEXED BY job_attempts_failed
         WHERE error IS NOT NULL ORDER BY seq DESC LIMIT ?`,
      ).all(limit) as Row[]).map(rowToAttempt)
    );
  }

  runStats(since: number): Promise<RunStats> {
    return this.#read(() => {
      const totals = this.#sql(
        `SELECT count(*) AS runs, coalesce(sum(error IS NULL), 0) AS succeeded,
           coalesce(sum(attempt > 1), 0) AS retries,
           count(started_at) AS timed, avg(finished_at - started_at) AS mean,
           max(finished_at - started_at) AS max
         FROM job_attempts INDEXED BY job_attempts_by_finish WHERE finished_at >= ?`,
      ).get(since) as Row;
      const runs = totals.runs as number;
      const succeeded = totals.succeeded as number;
      const timed = totals.timed as number;
      // Retention may delete runs between the two reads: a missing row falls back to the max.
      const percentile = (p: number): number => {
        const row = this.#sql(
          `SELECT finished_at - started_at AS d FROM job_attempts INDEXED BY job_attempts_by_finish
           WHERE finished_at >= ? AND started_at IS NOT NULL ORDER BY d LIMIT 1 OFFSET ?`,
        ).get(since, Math.min(timed - 1, Math.ceil(p * timed) - 1)) as Row | undefined;
        return (row?.d ?? totals.max) as number;
      };
      return {
        runs,
        succeeded,
        failed: runs - succeeded,
        retries: totals.retries as number,
        durationMs: timed === 0 ? null : {
          mean: totals.mean as number,
          p50: percentile(0.5),
          p95: percentile(0.95),
          max: totals.max as number,
        },
      };
    });
  }

  forgetEmptyQueues(): Promise<number> {
    const dropZeroCounts = this.#sql("DELETE FROM queue_counts WHERE n = 0");
    // A queue with any job has a count row above zero: its jobs' own state keeps it.
    const forget = this.#sql(
      `DELETE FROM queues WHERE paused_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM queue_counts c WHERE c.queue = queues.name)`,
    );
    return this.#write(() => {
      dropZeroCounts.run();
      return Number(forget.run().changes);
    });
  }

  async checkpoint(): Promise<void> {
    let walBytes = 0;
    try {
      walBytes = Deno.statSync(`${this.location}-wal`).size;
    } catch {
      return; // No WAL file: nothing to fold back.
    }
    if (walBytes < WAL_TRUNCATE_BYTES) return;
    // TRUNCATE waits for the writer lock through the busy timeout; readers
    // that hold old snapshots only make it do less, never fail.
    await this.#read(() => this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)"));
  }

  latestOutput(id: string): Promise<AttemptOutput | undefined> {
    return this.#read(() => {
      const row = this.#sql(
        `SELECT attempt, stdout, stderr, stdout_dropped, stderr_dropped FROM job_attempts
         WHERE job_id = ? ORDER BY seq DESC LIMIT 1`,
      ).get(id) as Row | undefined;
      return row && rowToOutput(row);
    });
  }

  attemptOutput(id: string, attempt: number): Promise<AttemptOutput | undefined> {
    return this.#read(() => {
      const row = this.#sql(
        `SELECT attempt, stdout, stderr, stdout_dropped, stderr_dropped FROM job_attempts
         INDEXED BY job_attempts_by_job WHERE job_id = ? AND attempt = ? ORDER BY seq DESC LIMIT 1`,
      ).get(id, attempt) as Row | undefined;
      return row && rowToOutput(row);
    });
  }

  newestOutputs(ids: readonly string[]): Promise<Map<string, NewestOutput>> {
    // One statement for every id: a running job's live row, else its latest
    // finished run (found through job_attempts_by_job, one seek per job).
    const newest = this.#sql(
      `SELECT j.id, j.state, j.attempts AS current_attempt,
         l.attempt AS live_attempt, l.stdout AS live_stdout, l.stderr AS live_stderr,
         l.stdout_total, l.stderr_total,
         a.attempt, a.stdout, a.stderr, a.stdout_dropped, a.stderr_dropped
       FROM json_each(:ids) AS k
       JOIN jobs j ON j.id = k.value
       LEFT JOIN live_output l ON j.state = 'processing' AND l.job_id = j.id
       LEFT JOIN job_attempts a ON j.state <> 'processing' AND a.seq = (
         SELECT max(seq) FROM job_attempts INDEXED BY job_attempts_by_job WHERE job_id = j.id
       )`,
    );
    return this.#read(() => {
      const outputs = new Map<string, NewestOutput>();
      for (const row of newest.all({ ids: JSON.stringify(ids) }) as Row[]) {
        const id = row.id as string;
        if (row.state === "processing") {
          const stdout = (row.live_stdout as Uint8Array | null) ?? new Uint8Array();
          const stderr = (row.live_stderr as Uint8Array | null) ?? new Uint8Array();
          outputs.set(id, {
            // A run that has printed nothing yet has no live row.
            attempt: (row.live_attempt ?? row.current_attempt) as number,
            stdout,
            stderr,
            stdoutDropped: ((row.stdout_total as number | null) ?? 0) - stdout.length,
            stderrDropped: ((row.stderr_total as number | null) ?? 0) - stderr.length,
            finished: false,
          });
        } else if (row.attempt !== null) {
          outputs.set(id, { ...rowToOutput(row), finished: true });
        }
      }
      return outputs;
    });
  }

  lastRun(): Promise<AttemptRecord | undefined> {
    return this.#read(() => {
      const row = this.#sql(
        `SELECT job_id, attempt, started_at, finished_at, exit_code, error
         FROM job_attempts INDEXED BY job_attempts_by_finish ORDER BY finished_at DESC LIMIT 1`,
      ).get() as Row | undefined;
      return row && rowToAttempt(row);
    });
  }

  markHistory(now: number): Promise<HistoryMark> {
    return this.#readSnapshot(() => {
      const runs = this.#sql("SELECT coalesce(max(seq), 0) AS seq FROM job_attempts").get() as Row;
      const unfinished = this.#sql(
        `SELECT coalesce(sum(n), 0) AS n FROM queue_counts
         WHERE state IN (${sqlList(UNFINISHED_STATES)})`,
      ).get() as Row;
      return { at: now, unfinished: unfinished.n as number, runCursor: runs.seq as number };
    });
  }

  countFinishedSince(mark: HistoryMark): Promise<FinishedCounts> {
    // A run is recorded in the transaction that ends it, so runs with a
    // higher seq than the mark's ended after it, to the commit. Only jobs
    // whose latest run that is count: a job retried since has run again or
    // waits to. A job sent to the DLQ without running (after a job it ran
    // after) has no run of its own: its finish time tells. CROSS JOIN keeps
    // the runs since the mark (a rowid range) first: the planner would
    // rather walk every completed job.
    const byLatestRun = this.#sql(
      `SELECT j.state, count(*) AS n FROM job_attempts a
       CROSS JOIN jobs j ON j.id = a.job_id
       WHERE a.seq > :cursor AND j.state IN (${sqlList(FINAL_STATES)})
         AND a.seq = (SELECT max(seq) FROM job_attempts INDEXED BY job_attempts_by_job
                      WHERE job_id = a.job_id)
       GROUP BY j.state`,
    );
    const deadWithoutRun = this.#sql(
      `SELECT count(*) AS n FROM jobs INDEXED BY jobs_by_state
       WHERE state = 'dead' AND finished_at >= :at AND NOT EXISTS (
         SELECT 1 FROM job_attempts a INDEXED BY job_attempts_by_job
         WHERE a.job_id = jobs.id AND a.seq > :cursor
       )`,
    );
    return this.#readSnapshot(() => {
      const counts: FinishedCounts = { completed: 0, dead: 0 };
      for (const row of byLatestRun.all({ cursor: mark.runCursor }) as Row[]) {
        counts[row.state as keyof FinishedCounts] = row.n as number;
      }
      counts.dead += (deadWithoutRun.get({ at: mark.at, cursor: mark.runCursor }) as Row)
        .n as number;
      return counts;
    });
  }

  getConfig(): Promise<QueueConfig> {
    return this.#read(() => {
      const config: QueueConfig = { ...DEFAULT_CONFIG };
      for (const row of this.#sql("SELECT key, value FROM config").all() as Row[]) {
        try {
          Object.assign(config, {
            [configField(row.key as string)]: JSON.parse(row.value as string),
          });
        } catch {
          // A key this version does not know (written by a newer one): ignore it.
        }
      }
      return config;
    });
  }

  setConfig(key: string, value: number | null): Promise<void> {
    const name = configKey(key);
    const upsert = this.#sql(
      "INSERT INTO config (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    );
    return this.#write(() => {
      upsert.run(name, JSON.stringify(value));
    });
  }

  registerWorker(worker: WorkerRecord): Promise<void> {
    const insert = this.#sql(
      `INSERT OR REPLACE INTO workers (id, pid, host, threads, started_at, heartbeat_at,
         stop_requested, proc_start)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    return this.#write(() => {
      insert.run(
        worker.id,
        worker.pid,
        worker.host,
        worker.threads,
        worker.startedAt,
        worker.heartbeatAt,
        worker.stopRequested ? 1 : 0,
        worker.procStart,
      );
    });
  }

  async heartbeatWorker(worker: WorkerRecord, clock = Date.now): Promise<Heartbeat> {
    const beat = this.#sql(
      `UPDATE workers SET heartbeat_at = max(heartbeat_at, ?) WHERE id = ?
       RETURNING heartbeat_at, stop_requested`,
    );
    const row = await this.#write(() => beat.get(clock(), worker.id) as Row | undefined);
    if (row) {
      return { beatAt: row.heartbeat_at as number, stopRequested: row.stop_requested === 1 };
    }
    // Someone pruned this process as dead while it was stalled: it is alive, so say so again.
    const beatAt = clock();
    await this.registerWorker({ ...worker, heartbeatAt: beatAt });
    return { beatAt, stopRequested: worker.stopRequested };
  }

  removeWorkers(ids: string[]): Promise<void> {
    const remove = this.#sql("DELETE FROM workers WHERE id = ?");
    return this.#write(() => {
      for (const id of ids) remove.run(id);
    });
  }

  pruneWorkers(workers: Pick<WorkerRecord, "id" | "heartbeatAt">[]): Promise<string[]> {
    const prune = this.#sql("DELETE FROM workers WHERE id = ? AND heartbeat_at = ?");
    return this.#write(() =>
      workers.filter((w) => prune.run(w.id, w.heartbeatAt).changes > 0).map((w) => w.id)
    );
  }

  listOrphanedJobs(): Promise<ClaimedJob[]> {
    return this.#read(() =>
      (this.#sql(
        `SELECT * FROM jobs INDEXED BY jobs_by_worker
         WHERE state = 'processing' AND worker_id NOT IN (SELECT id FROM workers)`,
      ).all() as Row[]).map((row) => ({ ...rowToJob(row), claimToken: row.claim_token as string }))
    );
  }

  listWorkers(): Promise<WorkerRecord[]> {
    return this.#read(() =>
      (this.#sql("SELECT * FROM workers ORDER BY started_at, id").all() as Row[]).map(rowToWorker)
    );
  }

  requestWorkerStop(ids: string[]): Promise<void> {
    const request = this.#sql("UPDATE workers SET stop_requested = 1 WHERE id = ?");
    return this.#write(() => {
      for (const id of ids) request.run(id);
    });
  }

  stillAtLocation(): Promise<boolean> {
    if (this.#identity === null) return Promise.resolve(true);
    let now: Deno.FileInfo;
    try {
      now = Deno.statSync(this.location);
    } catch (error) {
      return Promise.resolve(!(error instanceof Deno.errors.NotFound));
    }
    return Promise.resolve(now.dev === this.#identity.dev && now.ino === this.#identity.ino);
  }

  close(): Promise<void> {
    this.#statements.clear();
    if (this.#db.isOpen) this.#db.close();
    return Promise.resolve();
  }
}
