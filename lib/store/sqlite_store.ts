/**
 * The SQLite backend of {@linkcode Store}, on Deno's built-in `node:sqlite`.
 * All SQL of queuectl lives in the `sqlite_*.ts` files of this folder:
 *
 * | file                    | concern                                                      |
 * | ----------------------- | ------------------------------------------------------------ |
 * | sqlite_store.ts         | this facade: the `Store` methods, each handed to one below   |
 * | sqlite_open.ts          | opening and file safety, migrating, the file's identity      |
 * | sqlite_migrations.ts    | the schema, as frozen numbered migrations                    |
 * | sqlite_connection.ts    | statements, transactions, busy handling, errors              |
 * | sqlite_rows.ts          | rows to records; SQL fragments made from lib/states.ts       |
 * | sqlite_claim.ts         | the claim planner: which job runs next, and when             |
 * | sqlite_outcomes.ts      | enqueue, outcomes, retry, delete: the dependency rules       |
 * | sqlite_queries.ts       | jobs, counts and queues (pause, resume)                      |
 * | sqlite_outputs.ts       | job output, finished and live                                |
 * | sqlite_metrics.ts       | run statistics and history marks                             |
 * | sqlite_workers.ts       | the worker registry, heartbeats, stop and kill requests      |
 * | sqlite_maintenance.ts   | purge, WAL checkpoints, forgetting empty queues              |
 * | sqlite_config.ts        | queue-wide settings                                          |
 *
 * The domain rules those files apply (a new job's state, the dependency
 * cascade, the kill override) are stated for every backend in rules.ts.
 *
 * Each concern is a set of plain functions that take the one
 * {@linkcode SqliteConnection}, rather than objects composed into the store:
 * they share no state but the connection (its statement cache and its
 * transactions), so a function can be read alone, with the SQL it runs in
 * front of it, and a method here is one line that names where its logic
 * lives. The concerns `enqueue` uses are loaded with this module, each
 * other one the first time one of its methods runs (see `lazily`), so that a
 * command pays start-up time only for the concerns it uses.
 *
 * @module
 */

import type { QueueConfig } from "../config.ts";
import type { AttemptOutput, AttemptRecord, ClaimedJob, Job, NewJob } from "../job.ts";
import { type JobState, TRANSITIONS } from "../states.ts";
import * as config from "./sqlite_config.ts";
import { SqliteConnection } from "./sqlite_connection.ts";
import {
  type FileIdentity,
  fileIdentity,
  openSqliteDatabase,
  type SqliteOpenOptions,
  stillAtLocation,
} from "./sqlite_open.ts";
import * as outcomes from "./sqlite_outcomes.ts";
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
  SchemaMigration,
  StateCounts,
  Store,
  WorkerRecord,
} from "./store.ts";

/**
 * A concern's module, loaded the first time one of its methods runs. Under
 * `deno run` every module costs start-up time (about 0.15 ms each, measured
 * against a bundle of the same code), so the concerns that `enqueue`, the
 * command that must start fast, needs (opening, the connection, outcomes,
 * config) are imported above and the rest come on first use. The specifier
 * is built at run time on purpose: Deno loads literal dynamic imports at
 * start-up (see lib/cli/commands.ts). `deno task compile` includes lib/store.
 */
function lazily<Module>(file: string): () => Promise<Module> {
  let module: Promise<Module> | undefined;
  return () => module ??= import(new URL(`./${file}`, import.meta.url).href);
}

const claims = lazily<typeof import("./sqlite_claim.ts")>("sqlite_claim.ts");
const queries = lazily<typeof import("./sqlite_queries.ts")>("sqlite_queries.ts");
const outputs = lazily<typeof import("./sqlite_outputs.ts")>("sqlite_outputs.ts");
const metrics = lazily<typeof import("./sqlite_metrics.ts")>("sqlite_metrics.ts");
const workers = lazily<typeof import("./sqlite_workers.ts")>("sqlite_workers.ts");
const maintenance = lazily<typeof import("./sqlite_maintenance.ts")>("sqlite_maintenance.ts");

/** Options of {@linkcode openSqliteStore}. */
export type SqliteStoreOptions = SqliteOpenOptions;

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
  const { db } = await openSqliteDatabase(path, options);
  return new SqliteStore(new SqliteConnection(db, path));
}

/**
 * Brings the schema of the database at `path` up to date (creating the
 * database if missing), under the write lock, and closes it; returns what it
 * did. Refuses what {@linkcode openSqliteStore} refuses.
 */
export async function migrateSqliteDatabase(path: string): Promise<SchemaMigration> {
  const { db, migration } = await openSqliteDatabase(path);
  db.close();
  return migration;
}

class SqliteStore implements Store {
  readonly #conn: SqliteConnection;
  /** The file's identity when it was opened, to notice it deleted or replaced; null if unknown. */
  readonly #identity: FileIdentity | null;

  readonly notifier: Notifier;

  constructor(conn: SqliteConnection) {
    this.#conn = conn;
    this.#identity = fileIdentity(conn.location);
    this.notifier = sqliteNotifier(this, conn.location);
  }

  get location(): string {
    return this.#conn.location;
  }

  // Jobs in and out: sqlite_outcomes.ts.
  enqueue(jobs: NewJob[], now: number): Promise<void> {
    return outcomes.enqueue(this.#conn, jobs, now);
  }
  finishAttempt(job: ClaimedJob, outcome: AttemptOutcome): Promise<boolean> {
    return outcomes.finishAttempt(this.#conn, job, outcome);
  }
  releaseJob(job: ClaimedJob, now: number): Promise<boolean> {
    return outcomes.releaseJob(this.#conn, job, now);
  }
  reviveDead(ids: string[] | "all", now: number): Promise<string[]> {
    return outcomes.startOver(this.#conn, ids, TRANSITIONS.revive, now);
  }
  rerunJobs(ids: string[], now: number): Promise<string[]> {
    return outcomes.startOver(this.#conn, ids, TRANSITIONS.rerun, now);
  }
  deleteJobs(target: DeleteTarget, now: number): Promise<number> {
    return outcomes.deleteJobs(this.#conn, target, now);
  }

  // The claim planner: sqlite_claim.ts.
  async claim(
    workerId: string,
    now: number,
    selection?: QueueSelection,
  ): Promise<ClaimedJob | undefined> {
    return (await claims()).claim(this.#conn, workerId, now, selection);
  }
  async nextRunAt(selection?: QueueSelection): Promise<number | undefined> {
    return (await claims()).nextRunAt(this.#conn, selection);
  }
  async oldestWaitingRunAt(): Promise<number | undefined> {
    return (await claims()).oldestWaitingRunAt(this.#conn);
  }

  // Jobs, counts and queues: sqlite_queries.ts.
  async getJob(id: string): Promise<Job | undefined> {
    return (await queries()).getJob(this.#conn, id);
  }
  async listJobs(filter: JobFilter): Promise<Job[]> {
    return (await queries()).listJobs(this.#conn, filter);
  }
  async getDependencies(id: string): Promise<Dependency[]> {
    return (await queries()).getDependencies(this.#conn, id);
  }
  async listAttempts(id: string): Promise<AttemptRecord[]> {
    return (await queries()).listAttempts(this.#conn, id);
  }
  async countByState(): Promise<StateCounts> {
    return (await queries()).countByState(this.#conn);
  }
  async countJobs(states: readonly JobState[], changedBefore?: number): Promise<number> {
    return (await queries()).countJobs(this.#conn, states, changedBefore);
  }
  async countUnfinished(selection?: QueueSelection): Promise<number> {
    return (await queries()).countUnfinished(this.#conn, selection);
  }
  async listScheduled(now: number, limit: number): Promise<Job[]> {
    return (await queries()).listScheduled(this.#conn, now, limit);
  }
  async listQueues(): Promise<QueueSummary[]> {
    return (await queries()).listQueues(this.#conn);
  }
  async pauseQueue(name: string, now: number): Promise<boolean> {
    return (await queries()).pauseQueue(this.#conn, name, now);
  }
  async resumeQueue(name: string): Promise<boolean> {
    return (await queries()).resumeQueue(this.#conn, name);
  }
  /** For the notifier: whether another connection has committed since the previous call. */
  dataVersionChanged(): Promise<boolean> {
    return this.#conn.hasChanged();
  }

  // Output: sqlite_outputs.ts.
  async recordLiveOutput(
    job: ClaimedJob,
    output: Omit<LiveOutput, "claimToken" | "attempt">,
  ): Promise<boolean> {
    return (await outputs()).recordLiveOutput(this.#conn, job, output);
  }
  async liveOutput(id: string): Promise<LiveOutput | undefined> {
    return (await outputs()).liveOutput(this.#conn, id);
  }
  async latestOutput(id: string): Promise<AttemptOutput | undefined> {
    return (await outputs()).latestOutput(this.#conn, id);
  }
  async attemptOutput(id: string, attempt: number): Promise<AttemptOutput | undefined> {
    return (await outputs()).attemptOutput(this.#conn, id, attempt);
  }
  async newestOutputs(ids: readonly string[]): Promise<Map<string, NewestOutput>> {
    return (await outputs()).newestOutputs(this.#conn, ids);
  }

  // Metrics: sqlite_metrics.ts.
  async recentFailures(limit: number): Promise<AttemptRecord[]> {
    return (await metrics()).recentFailures(this.#conn, limit);
  }
  async lastRun(): Promise<AttemptRecord | undefined> {
    return (await metrics()).lastRun(this.#conn);
  }
  async runStats(since: number): Promise<RunStats> {
    return (await metrics()).runStats(this.#conn, since);
  }
  async markHistory(now: number): Promise<HistoryMark> {
    return (await metrics()).markHistory(this.#conn, now);
  }
  async countFinishedSince(mark: HistoryMark): Promise<FinishedCounts> {
    return (await metrics()).countFinishedSince(this.#conn, mark);
  }

  // Worker processes and kill requests: sqlite_workers.ts.
  async registerWorker(worker: WorkerRecord): Promise<void> {
    return (await workers()).registerWorker(this.#conn, worker);
  }
  async heartbeatWorker(worker: WorkerRecord, clock = Date.now): Promise<Heartbeat> {
    return (await workers()).heartbeatWorker(this.#conn, worker, clock);
  }
  async removeWorkers(ids: string[]): Promise<void> {
    return (await workers()).removeWorkers(this.#conn, ids);
  }
  async pruneWorkers(list: Pick<WorkerRecord, "id" | "heartbeatAt">[]): Promise<string[]> {
    return (await workers()).pruneWorkers(this.#conn, list);
  }
  async listOrphanedJobs(): Promise<ClaimedJob[]> {
    return (await workers()).listOrphanedJobs(this.#conn);
  }
  async listWorkers(): Promise<WorkerRecord[]> {
    return (await workers()).listWorkers(this.#conn);
  }
  async requestWorkerStop(ids: string[]): Promise<void> {
    return (await workers()).requestWorkerStop(this.#conn, ids);
  }
  async requestKill(id: string, mode: KillMode): Promise<KillRequest> {
    return (await workers()).requestKill(this.#conn, id, mode);
  }
  async listKillRequests(workerId: string): Promise<KillRequest[]> {
    return (await workers()).listKillRequests(this.#conn, workerId);
  }

  // Upkeep: sqlite_maintenance.ts.
  async purgeJobs(states: readonly JobState[], finishedBefore: number): Promise<number> {
    return (await maintenance()).purgeJobs(this.#conn, states, finishedBefore);
  }
  async checkpoint(): Promise<void> {
    return (await maintenance()).checkpoint(this.#conn);
  }
  async forgetEmptyQueues(): Promise<number> {
    return (await maintenance()).forgetEmptyQueues(this.#conn);
  }

  // Settings: sqlite_config.ts.
  getConfig(): Promise<QueueConfig> {
    return config.getConfig(this.#conn);
  }
  setConfig<K extends keyof QueueConfig>(key: K, value: QueueConfig[K]): Promise<void> {
    return config.setConfig(this.#conn, key, value);
  }

  // The file: sqlite_open.ts.
  stillAtLocation(): Promise<boolean> {
    return Promise.resolve(stillAtLocation(this.#conn.location, this.#identity));
  }
  close(): Promise<void> {
    this.#conn.close();
    return Promise.resolve();
  }
}
