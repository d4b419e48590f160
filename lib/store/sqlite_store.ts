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
 * | sqlite_rows.ts          | SQL fragments made from lib/states.ts (records: rows.ts)     |
 * | sqlite_claim.ts         | the claim planner: which job runs next, and when             |
 * | sqlite_outcomes.ts      | enqueue, outcomes, retry, delete: the dependency rules       |
 * | sqlite_queries.ts       | jobs, counts and queues (pause, resume)                      |
 * | sqlite_outputs.ts       | job output, finished and live                                |
 * | sqlite_metrics.ts       | run statistics and history marks                             |
 * | sqlite_workers.ts       | the worker registry, heartbeats, stop and kill requests      |
 * | sqlite_leases.ts        | leases on the database's clock, the leader, recovery         |
 * | sqlite_maintenance.ts   | purge, WAL checkpoints, forgetting empty queues (leader's)   |
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
 * lives. Every concern loads with this module, though `enqueue` needs only
 * some: under `deno run` each module costs start-up time whatever its size
 * (the split store takes 2–3 ms more than the same code bundled into one
 * file), but the five concerns `enqueue` never calls are worth only about
 * 0.3–0.5 ms of that. Loading them later would cost more than it saves: a
 * module loaded by a dynamic import whose specifier is built at run time
 * makes Deno write ESC[0G ESC[2K ESC[J to stderr when stderr is a sized
 * terminal (not into a pipe, not under `deno run -q`), which wiped the
 * progress bar of `wait` whenever a concern's first use came while it was
 * up; a string-literal dynamic import is loaded at start-up, saving nothing.
 *
 * @module
 */

import type { QueueConfig } from "../config.ts";
import type { AttemptOutput, AttemptRecord, ClaimedJob, Job, NewJob } from "../job.ts";
import { type JobState, PURGEABLE_STATES, TRANSITIONS } from "../states.ts";
import * as config from "./sqlite_config.ts";
import { SqliteConnection, WriteTurns } from "./sqlite_connection.ts";
import {
  type FileIdentity,
  fileIdentity,
  openSqliteDatabase,
  type SqliteOpenOptions,
  stillAtLocation,
} from "./sqlite_open.ts";
import * as outcomes from "./sqlite_outcomes.ts";
import * as claims from "./sqlite_claim.ts";
import * as queries from "./sqlite_queries.ts";
import * as outputs from "./sqlite_outputs.ts";
import * as metrics from "./sqlite_metrics.ts";
import * as workers from "./sqlite_workers.ts";
import * as maintenance from "./sqlite_maintenance.ts";
import * as leases from "./sqlite_leases.ts";
import { sqliteNotifier } from "./sqlite_notifier.ts";
import type {
  AttemptOutcome,
  DeleteTarget,
  Dependency,
  FinishAndClaim,
  FinishedCounts,
  Heartbeat,
  HistoryMark,
  JobFilter,
  KillMode,
  KillRequest,
  LiveOutput,
  Maintenance,
  NewestOutput,
  Notifier,
  OrphanSettlement,
  QueueSelection,
  QueueSummary,
  Rescue,
  RescueRequest,
  RunStats,
  SchemaMigration,
  StateCounts,
  Store,
  WorkerRecord,
} from "./store.ts";

/** Options of {@linkcode openSqliteStore}. */
export interface SqliteStoreOptions extends SqliteOpenOptions {
  /**
   * Write turns shared by the threads of this process that open the same
   * database (a SharedArrayBuffer of 4 bytes; see {@linkcode WriteTurns}).
   */
  writeTurns?: SharedArrayBuffer;
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
  const { db } = await openSqliteDatabase(path, options);
  const turns = options.writeTurns && new WriteTurns(options.writeTurns);
  return new SqliteStore(new SqliteConnection(db, path, turns));
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
  finishAndClaim(
    job: ClaimedJob,
    outcome: AttemptOutcome,
    workerId: string,
    now: number,
    selection?: QueueSelection,
  ): Promise<FinishAndClaim> {
    return outcomes.finishAndClaim(this.#conn, job, outcome, workerId, now, selection);
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
  claim(
    workerId: string,
    now: number,
    selection?: QueueSelection,
  ): Promise<ClaimedJob | undefined> {
    return claims.claim(this.#conn, workerId, now, selection);
  }
  nextRunAt(selection?: QueueSelection): Promise<number | undefined> {
    return claims.nextRunAt(this.#conn, selection);
  }
  oldestWaitingRunAt(): Promise<number | undefined> {
    return claims.oldestWaitingRunAt(this.#conn);
  }

  // Jobs, counts and queues: sqlite_queries.ts.
  getJob(id: string): Promise<Job | undefined> {
    return queries.getJob(this.#conn, id);
  }
  listJobs(filter: JobFilter): Promise<Job[]> {
    return queries.listJobs(this.#conn, filter);
  }
  getDependencies(id: string): Promise<Dependency[]> {
    return queries.getDependencies(this.#conn, id);
  }
  listAttempts(id: string): Promise<AttemptRecord[]> {
    return queries.listAttempts(this.#conn, id);
  }
  countByState(): Promise<StateCounts> {
    return queries.countByState(this.#conn);
  }
  countJobs(states: readonly JobState[], changedBefore?: number): Promise<number> {
    return queries.countJobs(this.#conn, states, changedBefore);
  }
  countUnfinished(selection?: QueueSelection): Promise<number> {
    return queries.countUnfinished(this.#conn, selection);
  }
  listScheduled(now: number, limit: number): Promise<Job[]> {
    return queries.listScheduled(this.#conn, now, limit);
  }
  listQueues(): Promise<QueueSummary[]> {
    return queries.listQueues(this.#conn);
  }
  pauseQueue(name: string, now: number): Promise<boolean> {
    return queries.pauseQueue(this.#conn, name, now);
  }
  resumeQueue(name: string): Promise<boolean> {
    return queries.resumeQueue(this.#conn, name);
  }
  /** For the notifier: whether another connection has committed since the previous call. */
  dataVersionChanged(): Promise<boolean> {
    return this.#conn.hasChanged();
  }

  // Output: sqlite_outputs.ts.
  recordLiveOutput(
    job: ClaimedJob,
    output: Omit<LiveOutput, "claimToken" | "attempt">,
  ): Promise<boolean> {
    return outputs.recordLiveOutput(this.#conn, job, output);
  }
  liveOutput(id: string): Promise<LiveOutput | undefined> {
    return outputs.liveOutput(this.#conn, id);
  }
  latestOutput(id: string): Promise<AttemptOutput | undefined> {
    return outputs.latestOutput(this.#conn, id);
  }
  attemptOutput(id: string, attempt: number): Promise<AttemptOutput | undefined> {
    return outputs.attemptOutput(this.#conn, id, attempt);
  }
  newestOutputs(ids: readonly string[]): Promise<Map<string, NewestOutput>> {
    return outputs.newestOutputs(this.#conn, ids);
  }

  // Metrics: sqlite_metrics.ts.
  recentFailures(limit: number): Promise<AttemptRecord[]> {
    return metrics.recentFailures(this.#conn, limit);
  }
  lastRun(): Promise<AttemptRecord | undefined> {
    return metrics.lastRun(this.#conn);
  }
  runStats(since: number): Promise<RunStats> {
    return metrics.runStats(this.#conn, since);
  }
  markHistory(now: number): Promise<HistoryMark> {
    return metrics.markHistory(this.#conn, now);
  }
  countFinishedSince(mark: HistoryMark): Promise<FinishedCounts> {
    return metrics.countFinishedSince(this.#conn, mark);
  }

  // Worker processes and kill requests: sqlite_workers.ts.
  async registerWorker(worker: WorkerRecord): Promise<void> {
    const { leaseTimeoutMs } = await this.getConfig();
    return workers.registerWorker(this.#conn, worker, leaseTimeoutMs);
  }
  async heartbeatWorker(worker: WorkerRecord, clock = Date.now): Promise<Heartbeat> {
    const { leaseTimeoutMs } = await this.getConfig();
    return workers.heartbeatWorker(this.#conn, worker, clock, leaseTimeoutMs);
  }
  removeWorkers(ids: string[]): Promise<void> {
    return workers.removeWorkers(this.#conn, ids);
  }
  pruneWorkers(list: Pick<WorkerRecord, "id" | "heartbeatAt">[]): Promise<string[]> {
    return workers.pruneWorkers(this.#conn, list);
  }

  // Leases, the leader and recovery: sqlite_leases.ts.
  async rescue(request: RescueRequest): Promise<Rescue> {
    const { leaseTimeoutMs } = await this.getConfig();
    return leases.rescue(this.#conn, request, leaseTimeoutMs);
  }
  settleOrphans(settlements: readonly OrphanSettlement[]): Promise<ClaimedJob[]> {
    return outcomes.finishAttempts(this.#conn, settlements);
  }
  listWorkers(): Promise<WorkerRecord[]> {
    return workers.listWorkers(this.#conn);
  }
  requestWorkerStop(ids: string[]): Promise<void> {
    return workers.requestWorkerStop(this.#conn, ids);
  }
  requestKill(id: string, mode: KillMode): Promise<KillRequest> {
    return workers.requestKill(this.#conn, id, mode);
  }
  listKillRequests(workerId: string): Promise<KillRequest[]> {
    return workers.listKillRequests(this.#conn, workerId);
  }

  // Upkeep: sqlite_maintenance.ts.
  purgeJobs(states: readonly JobState[], finishedBefore: number): Promise<number> {
    return maintenance.purgeJobs(this.#conn, states, finishedBefore);
  }
  async maintain(workerId: string, now = Date.now()): Promise<Maintenance | null> {
    if (!await leases.isLeader(this.#conn, workerId)) return null;
    const { retentionMs } = await this.getConfig();
    const purged = retentionMs === null
      ? 0
      : await this.purgeJobs(PURGEABLE_STATES, now - retentionMs);
    const forgottenQueues = await this.forgetEmptyQueues();
    await this.checkpoint();
    return { purged, forgottenQueues };
  }
  /** Folds a large WAL back into the database (backend-private upkeep of {@linkcode maintain}). */
  checkpoint(): Promise<void> {
    return maintenance.checkpoint(this.#conn);
  }
  /** Forgets queues that hold no job and are not paused (private upkeep); returns how many. */
  forgetEmptyQueues(): Promise<number> {
    return maintenance.forgetEmptyQueues(this.#conn);
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
