/**
 * The PostgreSQL backend of {@linkcode Store}, on the `postgres` npm package,
 * for a queue shared by worker processes on many hosts. Its files mirror
 * the SQLite backend's, concern by concern:
 *
 * | file                | concern                                                         |
 * | ------------------- | --------------------------------------------------------------- |
 * | pg_store.ts         | this facade: the `Store` methods, each handed to one below      |
 * | pg_connection.ts    | the URL and client settings, the pool, transactions, errors     |
 * | pg_open.ts          | checking the server and the schema, migrating under a lock      |
 * | pg_migrations.ts    | the schema, as frozen numbered migrations in step with SQLite's |
 * | pg_rows.ts          | state lists from lib/states.ts (records: rows.ts, shared)       |
 * | pg_notifier.ts      | LISTEN/NOTIFY: news of work for every host; changes for waiters |
 * | pg_claim.ts         | the claim: `FOR UPDATE SKIP LOCKED` in priority order           |
 * | pg_enqueue.ts       | enqueue: new jobs in their initial states                       |
 * | pg_outcomes.ts      | outcomes, retry, delete: the dependency cascade                 |
 * | pg_queries.ts       | jobs, counts and queues (pause, resume)                         |
 * | pg_search.ts        | jobs by text (the trigram index) and from a cursor's place      |
 * | pg_outputs.ts       | job output, finished and live                                   |
 * | pg_metrics.ts       | run statistics and history marks                                |
 * | pg_workers.ts       | the worker registry, heartbeats, stop and kill requests         |
 * | pg_leases.ts        | leases on the server's clock, the leader, recovery              |
 * | pg_maintenance.ts   | purge, folding counts, forgetting empty queues (leader's)       |
 * | pg_config.ts        | queue-wide settings                                             |
 * | pg_schedules.ts     | recurring schedules and their firings                           |
 * | pg_limits.ts        | queue limits (`queue set`); the claim obeys them                |
 *
 * The domain rules (a new job's state, the dependency cascade, the kill
 * override) are lib/store/rules.ts, shared with SQLite. Loaded only for a
 * PostgreSQL location (lib/store/mod.ts imports it dynamically): the client
 * costs tens of milliseconds of start-up that SQLite users never pay.
 *
 * @module
 */

import type { QueueConfig } from "../config.ts";
import type { QueueLimits, QueueLimitsChange } from "../queue_limits.ts";
import type { AttemptOutput, AttemptRecord, ClaimedJob, Job, NewJob } from "../job.ts";
import { type JobState, PURGEABLE_STATES, TRANSITIONS } from "../states.ts";
import type { NewSchedule, Schedule } from "../schedules.ts";
import * as config from "./pg_config.ts";
import { PgConnection, pgSettings } from "./pg_connection.ts";
import { openPgDatabase, type PgOpenOptions, schemaStillThere } from "./pg_open.ts";
import { enqueue } from "./pg_enqueue.ts";
import * as outcomes from "./pg_outcomes.ts";
import * as claims from "./pg_claim.ts";
import * as queries from "./pg_queries.ts";
import * as search from "./pg_search.ts";
import * as limits from "./pg_limits.ts";
import * as outputs from "./pg_outputs.ts";
import * as metrics from "./pg_metrics.ts";
import * as workers from "./pg_workers.ts";
import * as maintenance from "./pg_maintenance.ts";
import * as leases from "./pg_leases.ts";
import * as schedules from "./pg_schedules.ts";
import { PgNotifier } from "./pg_notifier.ts";
import { ServerClock } from "./pg_clock.ts";
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

/** Options of {@linkcode openPgStore}. */
export type PgStoreOptions = PgOpenOptions;

/**
 * Opens the queue at the PostgreSQL `url` (its schema named by `?schema=`,
 * else `queuectl`), creating or migrating the schema when it is missing or
 * older; `where` is the URL as messages show it (no password).
 *
 * @throws {DatabaseError} when the server cannot be reached or used, or the schema is newer
 */
export async function openPgStore(
  url: string,
  where: string,
  options: PgStoreOptions = {},
): Promise<Store> {
  const settings = pgSettings(url, where);
  const { clients } = await openPgDatabase(settings, where, options);
  const conn = new PgConnection(clients, settings, where);
  const clock = new ServerClock(conn);
  try {
    await clock.sync();
  } catch (error) {
    await conn.close().catch(() => {});
    throw error;
  }
  return new PgStore(conn, clock);
}

/** Brings the schema at `url` up to date under its advisory lock, for `queuectl migrate`. */
export async function migratePgDatabase(url: string, where: string): Promise<SchemaMigration> {
  const { clients, migration } = await openPgDatabase(pgSettings(url, where), where, { max: 1 });
  await clients.end(2);
  return migration;
}

class PgStore implements Store {
  readonly #conn: PgConnection;
  readonly #notifier: PgNotifier;
  readonly #clock: ServerClock;

  constructor(conn: PgConnection, clock: ServerClock) {
    this.#clock = clock;
    this.#conn = conn;
    this.#notifier = new PgNotifier(conn);
  }

  get location(): string {
    return this.#conn.where;
  }
  now(): number {
    return this.#clock.now();
  }
  get notifier(): Notifier {
    return this.#notifier;
  }

  // Jobs in: pg_enqueue.ts; and out: pg_outcomes.ts.
  enqueue(jobs: NewJob[], now: number): Promise<UniqueKeyHeld[]> {
    return enqueue(this.#conn, jobs, now);
  }
  finishAttempt(job: ClaimedJob, outcome: AttemptOutcome): Promise<boolean> {
    return outcomes.finishAttempt(this.#conn, job, outcome);
  }
  finishAndClaim(
    job: ClaimedJob,
    outcome: AttemptOutcome,
    workerId: string,
    now: ClaimTime,
    selection?: QueueSelection,
    token?: string,
  ): Promise<FinishAndClaim> {
    return outcomes.finishAndClaim(this.#conn, job, outcome, workerId, now, selection, token);
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

  // The claim planner: pg_claim.ts.
  claim(
    workerId: string,
    now: ClaimTime,
    selection?: QueueSelection,
    token?: string,
  ): Promise<ClaimedJob | undefined> {
    return claims.claim(this.#conn, workerId, now, selection, token);
  }
  nextRunAt(selection?: QueueSelection): Promise<number | undefined> {
    return claims.nextRunAt(this.#conn, selection);
  }
  oldestWaitingRunAt(): Promise<number | undefined> {
    return claims.oldestWaitingRunAt(this.#conn);
  }

  // Jobs, counts and queues: pg_queries.ts.
  getJob(id: string): Promise<Job | undefined> {
    return queries.getJob(this.#conn, id);
  }
  listJobs(filter: JobFilter): Promise<Job[]> {
    // Text and positions: pg_search.ts.
    if ((filter.text ?? "") !== "" || filter.after !== undefined) {
      return search.searchJobs(this.#conn, filter);
    }
    return queries.listJobs(this.#conn, filter);
  }
  countMatching(filter: JobFilter): Promise<number> {
    return search.countMatching(this.#conn, filter);
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
  listQueues(now = this.now()): Promise<QueueSummary[]> {
    return queries.listQueues(this.#conn, now);
  }
  setQueueLimits(name: string, change: QueueLimitsChange): Promise<QueueLimits> {
    return limits.setQueueLimits(this.#conn, name, change);
  }
  pauseQueue(name: string, now: number): Promise<boolean> {
    return queries.pauseQueue(this.#conn, name, now);
  }
  resumeQueue(name: string): Promise<boolean> {
    return queries.resumeQueue(this.#conn, name);
  }

  // Output: pg_outputs.ts.
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

  // Metrics: pg_metrics.ts.
  recentFailures(limit: number): Promise<AttemptRecord[]> {
    return metrics.recentFailures(this.#conn, limit);
  }
  lastRun(): Promise<AttemptRecord | undefined> {
    return metrics.lastRun(this.#conn);
  }
  runStats(since: number): Promise<RunStats> {
    return metrics.runStats(this.#conn, since);
  }
  runTotals(): Promise<QueueRunTotals[]> {
    return metrics.runTotals(this.#conn);
  }
  runsByMinute(since: number): Promise<MinuteRuns[]> {
    return metrics.runsByMinute(this.#conn, since);
  }
  markHistory(now: number): Promise<HistoryMark> {
    return metrics.markHistory(this.#conn, now);
  }
  countFinishedSince(mark: HistoryMark): Promise<FinishedCounts> {
    return metrics.countFinishedSince(this.#conn, mark);
  }

  // Worker processes and kill requests: pg_workers.ts.
  async registerWorker(worker: WorkerRecord): Promise<void> {
    const { leaseTimeoutMs } = await this.getConfig();
    return workers.registerWorker(this.#conn, worker, leaseTimeoutMs);
  }
  async heartbeatWorker(worker: WorkerRecord, clock?: () => number): Promise<Heartbeat> {
    const { leaseTimeoutMs } = await this.getConfig();
    return workers.heartbeatWorker(this.#conn, worker, clock, leaseTimeoutMs);
  }
  removeWorkers(ids: string[]): Promise<void> {
    return workers.removeWorkers(this.#conn, ids);
  }
  pruneWorkers(list: Pick<WorkerRecord, "id" | "heartbeatAt">[]): Promise<string[]> {
    return workers.pruneWorkers(this.#conn, list);
  }

  // Leases, the leader and recovery: pg_leases.ts.
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

  // Upkeep: pg_maintenance.ts.
  purgeJobs(states: readonly JobState[], finishedBefore: number): Promise<number> {
    return maintenance.purgeJobs(this.#conn, states, finishedBefore);
  }
  async maintain(workerId: string, now = this.now()): Promise<Maintenance | null> {
    if (!await leases.isLeader(this.#conn, workerId)) return null;
    const { retentionMs } = await this.getConfig();
    const purged = retentionMs === null
      ? 0
      : await this.purgeJobs(PURGEABLE_STATES, now - retentionMs);
    const forgottenQueues = await maintenance.forgetEmptyQueues(this.#conn);
    await maintenance.foldCounts(this.#conn);
    await maintenance.foldRunTally(this.#conn);
    return { purged, forgottenQueues };
  }

  // Recurring schedules: pg_schedules.ts.
  addSchedule(schedule: NewSchedule, replace: boolean): Promise<void> {
    return schedules.addSchedule(this.#conn, schedule, replace);
  }
  listSchedules(): Promise<Schedule[]> {
    return schedules.listSchedules(this.#conn);
  }
  getSchedule(name: string): Promise<Schedule | undefined> {
    return schedules.getSchedule(this.#conn, name);
  }
  removeSchedule(name: string): Promise<boolean> {
    return schedules.removeSchedule(this.#conn, name);
  }
  pauseSchedule(name: string, now: number): Promise<boolean> {
    return schedules.pauseSchedule(this.#conn, name, now);
  }
  resumeSchedule(name: string, nextFireAt: number | null): Promise<boolean> {
    return schedules.resumeSchedule(this.#conn, name, nextFireAt);
  }
  async schedulesToFire(workerId: string): Promise<Schedule[] | null> {
    if (!await leases.isLeader(this.#conn, workerId)) return null;
    return schedules.activeSchedules(this.#conn);
  }
  fireSchedule(firing: Firing, now: number): Promise<FiringResult> {
    return schedules.fireSchedule(this.#conn, firing, now);
  }
  runSchedule(name: string, job: NewJob, now: number): Promise<string | null> {
    return schedules.runSchedule(this.#conn, name, job, now);
  }

  // Settings: pg_config.ts.
  getConfig(): Promise<QueueConfig> {
    return config.getConfig(this.#conn);
  }
  setConfig<K extends keyof QueueConfig>(key: K, value: QueueConfig[K]): Promise<void> {
    return config.setConfig(this.#conn, key, value);
  }

  // The schema: pg_open.ts.
  stillAtLocation(): Promise<boolean> {
    return schemaStillThere(this.#conn);
  }
  async close(): Promise<void> {
    await this.#notifier.close();
    await this.#conn.close();
  }
}
