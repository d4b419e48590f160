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
 * | sqlite_enqueue.ts       | enqueue: new jobs in their initial states                    |
 * | sqlite_outcomes.ts      | outcomes, retry, delete: the dependency cascade              |
 * | sqlite_queries.ts       | jobs, counts and queues (pause, resume)                      |
 * | sqlite_search.ts        | jobs by text (the trigram index) and from a cursor's place   |
 * | sqlite_outputs.ts       | job output, finished and live                                |
 * | sqlite_metrics.ts       | run statistics and history marks                             |
 * | sqlite_workers.ts       | the worker registry, heartbeats, stop and kill requests      |
 * | sqlite_leases.ts        | leases on the database's clock, the leader, recovery         |
 * | sqlite_maintenance.ts   | purge, WAL checkpoints, forgetting empty queues (leader's)   |
 * | sqlite_config.ts        | queue-wide settings                                          |
 * | sqlite_schedules.ts     | recurring schedules and their firings                        |
 * | sqlite_limits.ts        | queue limits (`queue set`); the claim obeys them             |
 *
 * The domain rules those files apply (a new job's state, the dependency
 * cascade, the kill override) are stated for every backend in rules.ts.
 *
 * Each concern is a set of plain functions that take the one
 * {@linkcode SqliteConnection}, rather than objects composed into the store:
 * they share no state but the connection (its statement cache and its
 * transactions), so a function can be read alone, with the SQL it runs in
 * front of it, and a method here is one line that names where its logic
 * lives. The concerns that `enqueue` never calls (outcomes, the claim
 * planner, queries, output, metrics and upkeep) are compiled on their first use
 * rather than with this module: under `deno run` each module costs start-up
 * time to compile and instantiate (about 0.04 ms, and more the more code it
 * holds), and those six took 0.6–0.8 ms of a single enqueue's CPU time.
 * Their dynamic imports name them by string literals on purpose: Deno then
 * reads and resolves them with the program (so they cost the start-up next
 * to nothing until called, and `deno compile` embeds them), whereas a module
 * whose specifier is built at run time is prepared only when imported, and
 * Deno then writes ESC[0G ESC[2K ESC[J to stderr when stderr is a sized
 * terminal, which wiped the progress bar of `wait` when a concern's first
 * use came while the bar was up (tests/cli_wait_test.ts checks it).
 *
 * @module
 */

import type { QueueLimits, QueueLimitsChange } from "../queue_limits.ts";
import type { QueueConfig } from "../config.ts";
import type { AttemptOutput, AttemptRecord, ClaimedJob, Job, NewJob } from "../job.ts";
import { type JobState, PURGEABLE_STATES, TRANSITIONS } from "../states.ts";
import type { NewSchedule, Schedule } from "../schedules.ts";
import * as config from "./sqlite_config.ts";
import { SqliteConnection, WriteTurns } from "./sqlite_connection.ts";
import {
  type FileIdentity,
  fileIdentity,
  openSqliteDatabase,
  type SqliteOpenOptions,
  stillAtLocation,
} from "./sqlite_open.ts";
import { enqueue } from "./sqlite_enqueue.ts";
import * as workers from "./sqlite_workers.ts";
import * as leases from "./sqlite_leases.ts";
import { sqliteNotifier } from "./sqlite_notifier.ts";
import type {
  AttemptOutcome,
  ClaimTime,
  DeleteTarget,
  Dependency,
  FinishAndClaim,
  FinishedCounts,
  Firing,
  FiringResult,
  Heartbeat,
  HistoryMark,
  JobFilter,
  KillMode,
  KillRequest,
  LiveOutput,
  Maintenance,
  MinuteRuns,
  NewestOutput,
  Notifier,
  OrphanSettlement,
  QueueRunTotals,
  QueueSelection,
  QueueSummary,
  Rescue,
  RescueRequest,
  RunStats,
  SchemaMigration,
  StateCounts,
  Store,
  UniqueKeyHeld,
  WorkerRecord,
} from "./store.ts";

/** Imports a module on the first call only, and hands every call the same module. */
function onFirstUse<T>(load: () => Promise<T>): () => Promise<T> {
  let loaded: Promise<T> | undefined;
  return () => loaded ??= load();
}

// The concerns `enqueue` never calls, compiled on first use (see the top of this module).
const outcomes = onFirstUse(() => import("./sqlite_outcomes.ts"));
const claims = onFirstUse(() => import("./sqlite_claim.ts"));
const queries = onFirstUse(() => import("./sqlite_queries.ts"));
const search = onFirstUse(() => import("./sqlite_search.ts"));

/**
 * Transactions of jobs the leader adds to the text index at each upkeep
 * (sqlite_search.ts): at most about 20,000 jobs, so upkeep stays short.
 */
const TEXT_INDEX_BATCHES_PER_UPKEEP = 10;
const outputs = onFirstUse(() => import("./sqlite_outputs.ts"));
const metrics = onFirstUse(() => import("./sqlite_metrics.ts"));
const maintenance = onFirstUse(() => import("./sqlite_maintenance.ts"));
const schedules = onFirstUse(() => import("./sqlite_schedules.ts"));
const limits = onFirstUse(() => import("./sqlite_limits.ts"));

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
  now(): number {
    return Date.now();
  }

  // Jobs in: sqlite_enqueue.ts; and out: sqlite_outcomes.ts.
  enqueue(jobs: NewJob[], now: number): Promise<UniqueKeyHeld[]> {
    return enqueue(this.#conn, jobs, now);
  }
  async finishAttempt(job: ClaimedJob, outcome: AttemptOutcome): Promise<boolean> {
    return (await outcomes()).finishAttempt(this.#conn, job, outcome);
  }
  async finishAndClaim(
    job: ClaimedJob,
    outcome: AttemptOutcome,
    workerId: string,
    now: ClaimTime,
    selection?: QueueSelection,
    token?: string,
  ): Promise<FinishAndClaim> {
    return (await outcomes()).finishAndClaim(
      this.#conn,
      job,
      outcome,
      workerId,
      now,
      selection,
      token,
    );
  }
  async releaseJob(job: ClaimedJob, now: number): Promise<boolean> {
    return (await outcomes()).releaseJob(this.#conn, job, now);
  }
  async reviveDead(ids: string[] | "all", now: number): Promise<string[]> {
    return (await outcomes()).startOver(this.#conn, ids, TRANSITIONS.revive, now);
  }
  async rerunJobs(ids: string[], now: number): Promise<string[]> {
    return (await outcomes()).startOver(this.#conn, ids, TRANSITIONS.rerun, now);
  }
  async deleteJobs(target: DeleteTarget, now: number): Promise<number> {
    return (await outcomes()).deleteJobs(this.#conn, target, now);
  }

  // The claim planner: sqlite_claim.ts.
  async claim(
    workerId: string,
    now: ClaimTime,
    selection?: QueueSelection,
    token?: string,
  ): Promise<ClaimedJob | undefined> {
    return (await claims()).claim(this.#conn, workerId, now, selection, token);
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
    // Text and positions: sqlite_search.ts.
    if ((filter.text ?? "") !== "" || filter.after !== undefined) {
      return (await search()).searchJobs(this.#conn, filter);
    }
    return (await queries()).listJobs(this.#conn, filter);
  }
  async countMatching(filter: JobFilter): Promise<number> {
    return (await search()).countMatching(this.#conn, filter);
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
  async listQueues(now = this.now()): Promise<QueueSummary[]> {
    return (await queries()).listQueues(this.#conn, now);
  }
  async setQueueLimits(name: string, change: QueueLimitsChange): Promise<QueueLimits> {
    return (await limits()).setQueueLimits(this.#conn, name, change);
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
  /** For the notifier: whether any worker process is registered. */
  anyWorkers(): Promise<boolean> {
    return workers.anyWorkers(this.#conn);
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
  async runTotals(): Promise<QueueRunTotals[]> {
    return (await metrics()).runTotals(this.#conn);
  }
  async runsByMinute(since: number): Promise<MinuteRuns[]> {
    return (await metrics()).runsByMinute(this.#conn, since);
  }
  async markHistory(now: number): Promise<HistoryMark> {
    return (await metrics()).markHistory(this.#conn, now);
  }
  async countFinishedSince(mark: HistoryMark): Promise<FinishedCounts> {
    return (await metrics()).countFinishedSince(this.#conn, mark);
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
  async settleOrphans(settlements: readonly OrphanSettlement[]): Promise<ClaimedJob[]> {
    return (await outcomes()).finishAttempts(this.#conn, settlements);
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
  async purgeJobs(states: readonly JobState[], finishedBefore: number): Promise<number> {
    return (await maintenance()).purgeJobs(this.#conn, states, finishedBefore);
  }
  async maintain(workerId: string, now = Date.now()): Promise<Maintenance | null> {
    if (!await leases.isLeader(this.#conn, workerId)) return null;
    const { retentionMs } = await this.getConfig();
    const purged = retentionMs === null
      ? 0
      : await this.purgeJobs(PURGEABLE_STATES, now - retentionMs);
    const forgottenQueues = await this.forgetEmptyQueues();
    await (await search()).indexNewJobs(this.#conn, TEXT_INDEX_BATCHES_PER_UPKEEP);
    await this.checkpoint();
    return { purged, forgottenQueues };
  }
  /** Folds a large WAL back into the database (backend-private upkeep of {@linkcode maintain}). */
  async checkpoint(): Promise<void> {
    return (await maintenance()).checkpoint(this.#conn);
  }
  /** Forgets queues that hold no job and are not paused (private upkeep); returns how many. */
  async forgetEmptyQueues(): Promise<number> {
    return (await maintenance()).forgetEmptyQueues(this.#conn);
  }

  // Recurring schedules: sqlite_schedules.ts.
  async addSchedule(schedule: NewSchedule, replace: boolean): Promise<void> {
    return (await schedules()).addSchedule(this.#conn, schedule, replace);
  }
  async listSchedules(): Promise<Schedule[]> {
    return (await schedules()).listSchedules(this.#conn);
  }
  async getSchedule(name: string): Promise<Schedule | undefined> {
    return (await schedules()).getSchedule(this.#conn, name);
  }
  async removeSchedule(name: string): Promise<boolean> {
    return (await schedules()).removeSchedule(this.#conn, name);
  }
  async pauseSchedule(name: string, now: number): Promise<boolean> {
    return (await schedules()).pauseSchedule(this.#conn, name, now);
  }
  async resumeSchedule(name: string, nextFireAt: number | null): Promise<boolean> {
    return (await schedules()).resumeSchedule(this.#conn, name, nextFireAt);
  }
  async schedulesToFire(workerId: string): Promise<Schedule[] | null> {
    if (!await leases.isLeader(this.#conn, workerId)) return null;
    return (await schedules()).activeSchedules(this.#conn);
  }
  async fireSchedule(firing: Firing, now: number): Promise<FiringResult> {
    return (await schedules()).fireSchedule(this.#conn, firing, now);
  }
  async runSchedule(name: string, job: NewJob, now: number): Promise<string | null> {
    return (await schedules()).runSchedule(this.#conn, name, job, now);
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
