/**
 * The SQLite backend of {@linkcode Store}, on Deno's built-in `node:sqlite`.
 * All SQL of queuectl lives in this file and its migrations.
 *
 * @module
 */

import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { configField, DEFAULT_CONFIG, type QueueConfig } from "../config.ts";
import { DatabaseError, DuplicateJobError, JobNotFoundError, QueueError } from "../errors.ts";
import type { AttemptOutput, ClaimedJob, Job, NewJob } from "../job.ts";
import {
  CLAIMABLE_STATES,
  JOB_STATES,
  type JobState,
  PURGEABLE_STATES,
  type Transition,
  TRANSITIONS,
  UNFINISHED_STATES,
} from "../states.ts";
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION } from "./sqlite_migrations.ts";
import type { AttemptOutcome, JobFilter, StateCounts, Store, WorkerRecord } from "./store.ts";

/** How long one statement waits for another connection's write lock, in ms. */
const BUSY_TIMEOUT_MS = 5_000;
/** How long a write keeps retrying past busy timeouts before giving up, in ms. */
const BUSY_GIVE_UP_MS = 120_000;

/** Jobs deleted per transaction by `purgeJobs`. */
const PURGE_BATCH = 5_000;
/** A WAL larger than this is folded back into the database by `checkpoint`, in bytes. */
const WAL_TRUNCATE_BYTES = 16 * 1024 * 1024;

const SQLITE_BUSY = 5;
const SQLITE_CONSTRAINT_UNIQUE = 2067;
const SQLITE_NOTADB = 26;

type Row = Record<string, SQLInputValue>;

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
  };
}

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
  db.prepare("BEGIN IMMEDIATE").run();
  try {
    // Another process may have migrated while this one waited for the lock.
    const current = (db.prepare("PRAGMA user_version").get() as Row).user_version as number;
    for (let version = current; version < SCHEMA_VERSION; version++) {
      db.exec(MIGRATIONS[version]);
    }
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const CLAIMABLE = sqlList(CLAIMABLE_STATES);

class SqliteStore implements Store {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #dataVersion = -1;

  constructor(db: DatabaseSync, readonly location: string) {
    this.#db = db;
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

  enqueue(jobs: NewJob[], now: number): Promise<void> {
    const insert = this.#sql(
      `INSERT INTO jobs (id, command, state, max_retries, priority, run_at, created_at, updated_at, timeout_ms, cwd)
       VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)`,
    );
    const count = this.#sql("UPDATE job_counts SET n = n + ? WHERE state = 'pending'");
    return this.#write(() => {
      count.run(jobs.length);
      for (const job of jobs) {
        try {
          insert.run(
            job.id,
            job.command,
            job.maxRetries,
            job.priority,
            job.runAt,
            now,
            now,
            job.timeoutMs,
            job.cwd,
          );
        } catch (error) {
          if (errcode(error) === SQLITE_CONSTRAINT_UNIQUE) throw new DuplicateJobError(job.id);
          throw error;
        }
      }
    });
  }

  getJob(id: string): Promise<Job | undefined> {
    return this.#read(() => {
      const row = this.#sql("SELECT * FROM jobs WHERE id = ?").get(id) as Row | undefined;
      return row && rowToJob(row);
    });
  }

  listJobs(filter: JobFilter): Promise<Job[]> {
    return this.#read(() => {
      const limit = filter.limit ?? -1;
      const rows = filter.state
        ? this.#sql("SELECT * FROM jobs WHERE state = ? ORDER BY seq DESC LIMIT ?").all(
          filter.state,
          limit,
        )
        : this.#sql("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?").all(limit);
      return (rows as Row[]).map(rowToJob);
    });
  }

  countByState(): Promise<StateCounts> {
    return this.#read(() => {
      const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as StateCounts;
      const rows = this.#sql("SELECT state, n FROM job_counts").all() as Row[];
      for (const row of rows) counts[row.state as JobState] = row.n as number;
      return counts;
    });
  }

  countUnfinished(): Promise<number> {
    return this.#read(() =>
      (this.#sql(
        `SELECT coalesce(sum(n), 0) AS n FROM job_counts WHERE state IN (${
          sqlList(UNFINISHED_STATES)
        })`,
      ).get() as Row).n as number
    );
  }

  nextRunAt(): Promise<number | undefined> {
    return this.#read(() => {
      const row = this.#sql(
        `SELECT min(run_at) AS t FROM jobs INDEXED BY jobs_waiting_by_time
         WHERE state IN (${CLAIMABLE})`,
      ).get() as Row;
      return (row.t as number | null) ?? undefined;
    });
  }

  hasChanged(): Promise<boolean> {
    return this.#read(() => {
      const version = (this.#sql("PRAGMA data_version").get() as Row).data_version as number;
      const changed = version !== this.#dataVersion;
      this.#dataVersion = version;
      return changed;
    });
  }

  // INDEXED BY pins the plans below: without statistics the planner prefers
  // jobs_by_state and sorts every waiting job on every claim.
  claim(workerId: string, now: number): Promise<ClaimedJob | undefined> {
    const claim = this.#sql(
      `UPDATE jobs SET state = '${TRANSITIONS.claim.to}', attempts = attempts + 1,
         claim_token = :token, worker_id = :worker, started_at = :now, updated_at = :now
       WHERE seq = (
         SELECT seq FROM jobs INDEXED BY jobs_ready
         WHERE state IN (${CLAIMABLE}) AND run_at <= :now
         ORDER BY priority DESC, run_at, seq LIMIT 1
       ) AND ${leaving(TRANSITIONS.claim)}
       RETURNING *`,
    );
    const token = crypto.randomUUID();
    return this.#write(() => {
      const row = claim.get({ token, worker: workerId, now }) as Row | undefined;
      return row && { ...rowToJob(row), claimToken: token };
    });
  }

  finishAttempt(job: ClaimedJob, outcome: AttemptOutcome): Promise<boolean> {
    const transition = outcome.state === "completed"
      ? TRANSITIONS.complete
      : outcome.state === "failed"
      ? TRANSITIONS.scheduleRetry
      : TRANSITIONS.bury;
    const update = this.#sql(
      `UPDATE jobs SET state = :state, run_at = coalesce(:retryAt, run_at), updated_at = :now,
         finished_at = :now, exit_code = :exitCode, last_error = :error,
         claim_token = NULL, worker_id = NULL
       WHERE id = :id AND claim_token = :token AND ${leaving(transition)}`,
    );
    const record = this.#sql(
      `INSERT INTO job_attempts (job_id, attempt, started_at, finished_at, exit_code, error,
         stdout, stderr, stdout_dropped, stderr_dropped)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    return this.#write(() => {
      const { changes } = update.run({
        state: transition.to,
        retryAt: outcome.retryAt ?? null,
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
      return true;
    });
  }

  releaseJob(job: ClaimedJob, now: number): Promise<boolean> {
    const release = this.#sql(
      `UPDATE jobs SET state = '${TRANSITIONS.release.to}', attempts = attempts - 1,
         claim_token = NULL, worker_id = NULL, updated_at = :now
       WHERE id = :id AND claim_token = :token AND ${leaving(TRANSITIONS.release)}`,
    );
    return this.#write(() => release.run({ now, id: job.id, token: job.claimToken }).changes > 0);
  }

  reviveDead(ids: string[] | "all", now: number): Promise<string[]> {
    const revive = TRANSITIONS.revive;
    const update = this.#sql(
      `UPDATE jobs SET state = '${revive.to}', attempts = 0, run_at = :now, updated_at = :now
       WHERE id = :id AND ${leaving(revive)}`,
    );
    return this.#write(() => {
      const targets = ids === "all"
        ? (this.#sql(`SELECT id FROM jobs WHERE ${leaving(revive)} ORDER BY seq`).all() as Row[])
          .map((r) => r.id as string)
        : [...new Set(ids)];
      for (const id of targets) {
        if (update.run({ now, id }).changes === 1) continue;
        const row = this.#sql("SELECT state FROM jobs WHERE id = ?").get(id) as Row | undefined;
        if (!row) throw new JobNotFoundError(id);
        throw new QueueError(`job '${id}' is not in the DLQ (its state is ${row.state})`);
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
      if (!row) return undefined;
      return {
        attempt: row.attempt as number,
        stdout: row.stdout as Uint8Array,
        stderr: row.stderr as Uint8Array,
        stdoutDropped: row.stdout_dropped as number,
        stderrDropped: row.stderr_dropped as number,
      };
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
    configField(key);
    const upsert = this.#sql(
      "INSERT INTO config (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    );
    return this.#write(() => {
      upsert.run(key, JSON.stringify(value));
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

  async heartbeatWorker(worker: WorkerRecord, now: number): Promise<boolean> {
    const beat = this.#sql(
      "UPDATE workers SET heartbeat_at = ? WHERE id = ? RETURNING stop_requested",
    );
    const row = await this.#write(() => beat.get(now, worker.id) as Row | undefined);
    if (row) return row.stop_requested === 1;
    // Someone pruned this process as dead while it was stalled: it is alive, so say so again.
    await this.registerWorker({ ...worker, heartbeatAt: now });
    return worker.stopRequested;
  }

  removeWorkers(ids: string[]): Promise<void> {
    const remove = this.#sql("DELETE FROM workers WHERE id = ?");
    return this.#write(() => {
      for (const id of ids) remove.run(id);
    });
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

  close(): Promise<void> {
    this.#statements.clear();
    if (this.#db.isOpen) this.#db.close();
    return Promise.resolve();
  }
}
