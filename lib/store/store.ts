/**
 * The storage contract. The CLI and the workers reach the database only
 * through {@linkcode Store}, so that another backend (PostgreSQL) can be added
 * without touching them. Every method is async for that reason, even where
 * SQLite answers synchronously.
 *
 * Longer than most modules on purpose: it is the one list of what a backend
 * must do, with the records it speaks in; split, a backend's author would
 * have to gather it from several files (the conformance suite,
 * tests/store_conformance*.ts, checks each method).
 *
 * @module
 */

import type { QueueConfig } from "../config.ts";
import type { QueueLimits, QueueLimitsChange } from "../queue_limits.ts";
import type { AttemptOutput, AttemptRecord, ClaimedJob, Job, NewJob } from "../job.ts";
import type { JobState } from "../states.ts";
import type { NewSchedule, OverlapPolicy, Schedule } from "../schedules.ts";

/** Counts of jobs in every state; every state is present. */
export type StateCounts = Record<JobState, number>;

/** What {@linkcode Store.finishAndClaim} did: whether it recorded the outcome; the job it claimed. */
export interface FinishAndClaim {
  recorded: boolean;
  next: ClaimedJob | undefined;
}

/** How a claimed job's run ended, as the executor decided it. */
export interface AttemptOutcome {
  /** The state the job moves to. */
  state: "completed" | "failed" | "dead";
  /** For `failed`: when the retry may run, epoch ms. */
  retryAt?: number;
  /** The command's exit code; null when it never ran or died without one. */
  exitCode: number | null;
  /** Why the run failed; null on success. */
  error: string | null;
  /** When the run ended, epoch ms. */
  finishedAt: number;
  /** The captured output of the run. */
  output: Omit<AttemptOutput, "attempt">;
}

/** A job that another runs after, with its state now; null once it was deleted or purged. */
export interface Dependency {
  id: string;
  state: JobState | null;
}

/** What {@linkcode Store.rescue} is to judge. */
export interface RescueRequest {
  /** The worker process judging: never judged itself. */
  judge: string;
  /** Worker processes dead by local evidence, with the heartbeat the judgement saw. */
  deadWorkers: readonly Pick<WorkerRecord, "id" | "heartbeatAt">[];
  /** Worker processes alive by local evidence: their leases never expire. */
  aliveWorkers: readonly string[];
  /** The database's time (for tests: a fake clock); the store's clock when left out. */
  now?: number;
}

/** A job left `processing` by a worker process that is gone. */
export interface Orphan extends ClaimedJob {
  /** The host its worker process ran on; null when no longer known. */
  host: string | null;
}

/** What {@linkcode Store.rescue} did. */
export interface Rescue {
  /** Worker processes removed as dead. */
  removed: string[];
  /** Every job now left `processing` by a worker process that is gone. */
  orphans: Orphan[];
}

/** An orphaned run and the outcome to record for it. */
export interface OrphanSettlement {
  job: ClaimedJob;
  outcome: AttemptOutcome;
}

/** What {@linkcode Store.maintain} did. */
export interface Maintenance {
  /** Finished jobs deleted by retention. */
  purged: number;
  /** Queues forgotten: they held no job and were not paused. */
  forgottenQueues: number;
}

/**
 * One firing of a schedule, as the firer planned it from the schedule it
 * read (see lib/schedules.ts); {@linkcode Store.fireSchedule} applies it.
 */
export interface Firing {
  name: string;
  /** The next firing the firer read: the firing applies only while it is still the stored one. */
  due: number;
  /** The `createdAt` the firer read: a schedule replaced since is not fired from the old one. */
  createdAt: number;
  /** The firing after this one, to store; null when the timing has no more. */
  next: number | null;
  /** The job the firing enqueues; null when it enqueues none (missed under `--catch-up none`). */
  job: NewJob | null;
  overlap: OverlapPolicy;
}

/**
 * What {@linkcode Store.fireSchedule} did: `fired` (the job was enqueued, or
 * was already there), `skipped` (the previous job is still waiting or
 * running), `missed` (nothing to enqueue), `lost` (another firer applied
 * this firing, or the schedule changed, paused or went since it was read).
 */
export type FiringResult = "fired" | "skipped" | "missed" | "lost";

/** A `worker start` process as registered in the database. */
export interface WorkerRecord {
  id: string;
  pid: number;
  host: string;
  /** Web Workers running jobs in the process. */
  threads: number;
  startedAt: number;
  heartbeatAt: number;
  /** Set by `worker stop`: the process should finish its jobs and exit. */
  stopRequested: boolean;
  /** The process's start time as its OS reports it (Linux: clock ticks since boot), if known. */
  procStart: string | null;
}

/** What a heartbeat recorded, and what it found. */
export interface Heartbeat {
  /** The stamp stored as the worker's `heartbeatAt`. */
  beatAt: number;
  /** Whether a stop was requested for the worker (`worker stop`, or its own stop begun). */
  stopRequested: boolean;
}

/**
 * A place in the newest-first list of jobs, as a page's cursor keeps it:
 * the list goes on after the oldest of `ids` still stored (whatever its
 * state now), so that deleting the job a cursor points at neither repeats
 * nor skips one; when none of them is stored any more, at the jobs created
 * at or before `createdAt` (which may repeat a job, never skips one).
 */
export interface JobPosition {
  /** The last jobs of the page read so far. */
  ids: readonly string[];
  /** The creation time of the oldest of them, epoch ms. */
  createdAt: number;
}

/**
 * When a claim happens: a time, or a clock that the store reads once it
 * holds the database (after waiting for another connection's lock, which
 * may take seconds behind a long write), so that a start, and a rate
 * limit's window, is never dated before it happened.
 */
export type ClaimTime = number | (() => number);

/** Which jobs `listJobs` returns. */
export interface JobFilter {
  /** Only jobs in one of these states; undefined (or empty) for every state. */
  states?: readonly JobState[];
  queue?: string;
  /**
   * Only jobs whose id or command holds this text, as written (case
   * matters); undefined or empty for every job. See `INDEXED_TEXT_LENGTH`
   * (lib/store/rules.ts) for how each length is found.
   */
  text?: string;
  /** Only jobs listed after this place (older in enqueue order). */
  after?: JobPosition;
  /** At most this many, newest first; undefined for all. */
  limit?: number;
}

/** A named queue: whether it is paused, its limits, and its jobs by state. */
export interface QueueSummary {
  name: string;
  /** When it was paused, epoch ms; null while it is served. */
  pausedAt: number | null;
  counts: StateCounts;
  /** Its limits (lib/queue_limits.ts). */
  limits: QueueLimits;
  /** Under a rate limit, the starts in the window that ends at the `now` asked about; else 0. */
  recentStarts: number;
}

/** Which queues a worker takes jobs from; paused queues are always skipped. */
export interface QueueSelection {
  /** Only these queues; undefined for every queue. */
  queues?: readonly string[];
}

/** What `kill` asked for: the usual retry rule, or straight to the DLQ. */
export type KillMode = "retry" | "dead";

/** A kill asked for a running job. */
export interface KillRequest {
  id: string;
  /** The claim the kill is for: a later run of the same job is not killed. */
  claimToken: string;
  mode: KillMode;
  /** The run's attempt number and start, epoch ms: which run of the job the kill is for. */
  attempt: number;
  startedAt: number | null;
}

/** The newest output of a running job, as `logs --follow` reads it. */
export interface LiveOutput {
  claimToken: string;
  attempt: number;
  /** The last bytes of each stream (at most the capture limit). */
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Every byte each stream has produced so far, kept or not. */
  stdoutTotal: number;
  stderrTotal: number;
  updatedAt: number;
}

/** The output of a job's newest run: the one under way, or else the latest finished one. */
export interface NewestOutput extends AttemptOutput {
  /** False while the run is under way: its output so far, as its worker last stored it. */
  finished: boolean;
}

/**
 * A moment in the queue's history, from which {@linkcode Store.countFinishedSince}
 * counts the jobs that finished. Only the store that made it reads it.
 */
export interface HistoryMark {
  /** When it was taken, epoch ms. */
  at: number;
  /** Jobs waiting to run (now, later, or after others) or running at that moment. */
  unfinished: number;
  /** Where the record of finished runs stood: runs recorded later come after it. */
  runCursor: number;
}

/** Jobs that finished since a {@linkcode HistoryMark} and have stayed finished. */
export interface FinishedCounts {
  completed: number;
  dead: number;
}

/** The runs that ended within one minute, for the dashboard's chart. */
export interface MinuteRuns {
  /** The minute's start, epoch ms (a multiple of 60,000). */
  minute: number;
  succeeded: number;
  failed: number;
}

/** Runs that ended since some moment, for `stats` and `top`. */
export interface RunStats {
  runs: number;
  succeeded: number;
  failed: number;
  /** Runs that were a second or later attempt. */
  retries: number;
  /** Run durations in ms; null when no run has both ends recorded. */
  durationMs: { mean: number; p50: number; p95: number; max: number } | null;
}

/**
 * Every finished run of one queue ever recorded, for the metrics' counters:
 * a tally kept apart from the runs, so retention, `purge` and `delete`
 * never lower it. Runs recorded before schema version 6 count only if they
 * were still stored when the database was upgraded.
 */
export interface QueueRunTotals {
  queue: string;
  /** Runs that ended with success (no error). */
  succeeded: number;
  /** Runs that ended with an error: a non-zero exit, a signal, a kill, a timeout. */
  failed: number;
  /** Runs that were a second or later attempt. */
  retries: number;
  /** Runs with both ends recorded (a run that never started has no duration). */
  timed: number;
  /** The sum of those runs' durations, ms. */
  durationSumMs: number;
  /**
   * For each bound of `RUN_DURATION_BOUNDS_MS` (lib/store/rows.ts), how many timed runs
   * lasted at most that many ms: cumulative, in the order of the bounds.
   */
  atMostMs: number[];
}

/** Which jobs `deleteJobs` removes: these ids, or every job in some states. */
export type DeleteTarget =
  | { ids: string[] }
  | {
    states: readonly JobState[];
    /** Only jobs last changed before this moment, epoch ms. */
    changedBefore?: number;
  };

/** A job an enqueue did not add because another job holds its unique key. */
export interface UniqueKeyHeld {
  /** Its place in the batch given to `enqueue`. */
  index: number;
  /** The job holding the key: the id the enqueue answers with instead. */
  holder: string;
  holderState: JobState;
}

/**
 * What a write gave the workers to do: `jobs` that may be ready to claim
 * (enqueued, retried, revived from the DLQ, their queue resumed), or a
 * `kill` request for a running job.
 */
export type Announcement = "jobs" | "kill";

/**
 * How a backend carries news of the queue: from a writer to the worker
 * processes that should act at once, and to anyone waiting for a change.
 * Each store has its own, on its own connection.
 */
export interface Notifier {
  /**
   * Tells the workers that a write which has just committed gave them
   * something to do, so that an idle worker acts now rather than at its
   * next poll. Called by the writer after the commit. A backend whose
   * transactions can carry the news (PostgreSQL's NOTIFY) may send it within
   * the write itself and make this a no-op. Never throws: the write is
   * stored, and a lost announcement costs only the wait for the next poll.
   */
  announce(what: Announcement): Promise<void>;
  /**
   * Whether another connection may have committed a change since the
   * previous call (what this store wrote itself need not count); true at
   * the first call, which takes the baseline. Cheap enough to be asked
   * every few milliseconds.
   */
  changed(): Promise<boolean>;
  /**
   * Calls `onNews` for every announcement committed by anyone, on any host,
   * until the subscription is closed: for backends whose news reaches every
   * host (PostgreSQL's LISTEN). Left out where news goes by the host
   * instead (SQLite: the wake sockets of lib/worker/wake.ts).
   */
  listen?(onNews: (what: Announcement) => void): Promise<NewsSubscription>;
}

/** A subscription to a {@linkcode Notifier}'s news. */
export interface NewsSubscription {
  close(): Promise<void>;
}

/** What bringing a database's schema up to date did: the version found and the one left. */
export interface SchemaMigration {
  /** The schema version before; 0 for a database just created. */
  from: number;
  /** The schema version now: the one this queuectl knows. */
  to: number;
}

/** A queue's storage backend. */
export interface Store {
  /**
   * Where the data lives, for messages: the display form of its location
   * (`describeLocation` in lib/db_location.ts), never a password.
   */
  readonly location: string;
  /** Tells workers of new work, and waiters of changes (see {@linkcode Notifier}). */
  readonly notifier: Notifier;
  /**
   * The database's clock as this process best knows it, in epoch ms: the
   * `now` every caller passes in, so that hosts whose clocks disagree still
   * agree on when a job is due and whether a worker is alive. SQLite: this
   * host's clock (one host). PostgreSQL: the server's, measured when the
   * store opens and again every minute.
   */
  now(): number;

  /**
   * Adds jobs in one transaction: all of them or, on any error, none. A job
   * whose unique key is held (lib/store/rules.ts `holdsUniqueKey`; jobs
   * earlier in the batch count) is not added: the answer names it and its
   * holder, in batch order; empty when every job was added.
   */
  enqueue(jobs: NewJob[], now: number): Promise<UniqueKeyHeld[]>;
  /** One job by id, or undefined. */
  getJob(id: string): Promise<Job | undefined>;
  /**
   * Jobs newest first, optionally only those in some states, of one queue,
   * holding some text, after some place in the list.
   */
  listJobs(filter: JobFilter): Promise<Job[]>;
  /** How many jobs `listJobs(filter)` would return without a limit or a position. */
  countMatching(filter: JobFilter): Promise<number>;
  /** The jobs a job runs after (`enqueue --after`), by id, with their state: null once deleted. */
  getDependencies(id: string): Promise<Dependency[]>;
  /** How many jobs are in each state. */
  countByState(): Promise<StateCounts>;
  /** How many jobs are in these states, only those last changed before `changedBefore` if given. */
  countJobs(states: readonly JobState[], changedBefore?: number): Promise<number>;
  /**
   * How many jobs are waiting to run (now, later, or after others) or
   * running; with a selection, only in those queues and not in paused ones.
   */
  countUnfinished(selection?: QueueSelection): Promise<number>;
  /**
   * The earliest `run_at` of any job waiting to run in the selected,
   * unpaused queues, or undefined when none waits.
   */
  nextRunAt(selection?: QueueSelection): Promise<number | undefined>;
  /** The earliest `run_at` of any job waiting to run in any queue, paused or not. */
  oldestWaitingRunAt(): Promise<number | undefined>;
  /** Jobs waiting for a later `run_at` (a delay or a backoff), soonest first. */
  listScheduled(now: number, limit: number): Promise<Job[]>;
  /** Every queue that holds jobs, is paused or has limits, by name; starts counted up to `now`. */
  listQueues(now?: number): Promise<QueueSummary[]>;
  /**
   * Changes a queue's limits (only the fields `change` gives; null removes
   * one), creating the queue if need be; returns its limits now. The next
   * claim obeys them.
   */
  setQueueLimits(name: string, change: QueueLimitsChange): Promise<QueueLimits>;
  /** Stops workers claiming from a queue; returns false if it was paused already. */
  pauseQueue(name: string, now: number): Promise<boolean>;
  /** Lets workers claim from a queue again; returns false if it was not paused. */
  resumeQueue(name: string): Promise<boolean>;

  /**
   * Atomically takes the next due job (priority high first, then `run_at`,
   * then enqueue order) for `workerId`, counting the attempt. Two callers
   * never receive the same job. Its claim token is `token` when given (a
   * fresh UUID the worker made ahead, for a shell it started ahead: see
   * lib/worker/executor.ts), else a fresh UUID.
   */
  claim(
    workerId: string,
    now: ClaimTime,
    selection?: QueueSelection,
    token?: string,
  ): Promise<ClaimedJob | undefined>;
  /**
   * Records the end of a run. Takes effect only while the job is still
   * `processing` under `job.claimToken`; returns whether it did. A failed
   * run of a job killed with mode `dead` goes to the DLQ whatever retries
   * remain. Jobs that run after this one are released when it completes,
   * and follow it into the DLQ when it dies.
   */
  finishAttempt(job: ClaimedJob, outcome: AttemptOutcome): Promise<boolean>;
  /**
   * {@linkcode finishAttempt} for `job`, then {@linkcode claim} for
   * `workerId`, in one transaction: a worker that goes on to its next job
   * writes once instead of twice. The claim is made whether or not the
   * outcome was recorded (a job no longer this worker's does not stop it).
   */
  finishAndClaim(
    job: ClaimedJob,
    outcome: AttemptOutcome,
    workerId: string,
    now: ClaimTime,
    selection?: QueueSelection,
    token?: string,
  ): Promise<FinishAndClaim>;
  /** Returns a claimed job to `pending` without counting its attempt; returns whether it did. */
  releaseJob(job: ClaimedJob, now: number): Promise<boolean>;
  /**
   * Moves dead jobs back to `pending` with attempts 0. With ids, every one of
   * them must be dead or nothing changes; nothing changes either when a job
   * with a unique key would join another job holding it while waiting or
   * running (lib/store/rules.ts). Returns the ids revived.
   */
  reviveDead(ids: string[] | "all", now: number): Promise<string[]>;
  /**
   * Runs finished jobs (completed or dead) again: attempts 0, history kept.
   * A job whose dependencies have not all completed waits (`blocked`); one
   * that runs after a dead job is refused, as is one whose unique key a
   * waiting or running job holds. All ids or none. Returns the ids.
   */
  rerunJobs(ids: string[], now: number): Promise<string[]>;
  /**
   * Deletes jobs that are not running, with their history. By ids: every one
   * must exist and not be running, or nothing changes. Jobs blocked on a
   * deleted unfinished job go to the DLQ. Returns how many were deleted.
   */
  deleteJobs(target: DeleteTarget, now: number): Promise<number>;
  /**
   * Asks for a running job to be killed by the worker running it. Returns
   * the request, or throws when the job is missing or not running.
   */
  requestKill(id: string, mode: KillMode): Promise<KillRequest>;
  /** Kills asked for jobs that a `worker start` process is running. */
  listKillRequests(workerId: string): Promise<KillRequest[]>;
  /**
   * Deletes jobs in the given finished states whose run ended before
   * `finishedBefore` (epoch ms), with their output. Returns how many.
   */
  purgeJobs(states: readonly JobState[], finishedBefore: number): Promise<number>;
  /**
   * The upkeep of the whole queue, done by the elected worker process only:
   * if `workerId` holds the leader lease (see {@linkcode Store.heartbeatWorker}),
   * deletes finished jobs past the `retention` setting (as of `now`) and does
   * the backend's own upkeep (for SQLite: forgetting empty queues, folding a
   * large WAL back). Null when `workerId` is not the leader.
   */
  maintain(workerId: string, now?: number): Promise<Maintenance | null>;
  /** The output captured from the latest finished run of a job. */
  latestOutput(id: string): Promise<AttemptOutput | undefined>;
  /**
   * The output captured from a job's newest finished run numbered `attempt`
   * (numbers start again at 1 after a `retry`).
   */
  attemptOutput(id: string, attempt: number): Promise<AttemptOutput | undefined>;
  /**
   * The output of the newest run of each of these jobs, in one read: a
   * running job's output so far, else its latest finished run's. Jobs that
   * have not run (or no longer exist) are left out.
   */
  newestOutputs(ids: readonly string[]): Promise<Map<string, NewestOutput>>;
  /**
   * Stores the newest output of a running job, while it still runs under its
   * claim. Waits only briefly for another writer: throws when the database
   * stays busy, so that the caller, free again, skips this round.
   */
  recordLiveOutput(
    job: ClaimedJob,
    output: Omit<LiveOutput, "claimToken" | "attempt">,
  ): Promise<boolean>;
  /** The newest output of a job that is running, if it has recorded any. */
  liveOutput(id: string): Promise<LiveOutput | undefined>;
  /** Every finished run of a job, oldest first. */
  listAttempts(id: string): Promise<AttemptRecord[]>;
  /** The newest failed runs of any job, newest first. */
  recentFailures(limit: number): Promise<AttemptRecord[]>;
  /** The finished run that ended last, of any job. */
  lastRun(): Promise<AttemptRecord | undefined>;
  /** Marks the present moment (given as `now`), with the jobs unfinished at it, in one read. */
  markHistory(now: number): Promise<HistoryMark>;
  /**
   * How many jobs have finished (completed or dead) since `mark` and are
   * still finished: those whose latest run ended after it, and jobs that went
   * to the DLQ without running (after a job they ran after) since then.
   */
  countFinishedSince(mark: HistoryMark): Promise<FinishedCounts>;
  /** Counts and durations of the runs that ended at or after `since` (epoch ms). */
  runStats(since: number): Promise<RunStats>;
  /**
   * The runs that ended at or after `since` (epoch ms), by the minute they
   * ended in (minutes of the epoch, UTC), oldest first; minutes without a
   * run are left out.
   */
  runsByMinute(since: number): Promise<MinuteRuns[]>;
  /**
   * The tally of every finished run ever recorded, by the queue of its job,
   * sorted by queue name; queues with no run are left out. The tally is
   * kept in the transaction that records each run, and never goes down.
   */
  runTotals(): Promise<QueueRunTotals[]>;

  /**
   * Adds a schedule; with `replace`, in place of one of the same name (its
   * record of past firings starts over).
   *
   * @throws {ScheduleError} when the name is taken and `replace` is false
   */
  addSchedule(schedule: NewSchedule, replace: boolean): Promise<void>;
  /** Every schedule, by name, with the state of its last job. */
  listSchedules(): Promise<Schedule[]>;
  /** One schedule, or undefined. */
  getSchedule(name: string): Promise<Schedule | undefined>;
  /** Removes a schedule (its jobs stay); false when there was none. */
  removeSchedule(name: string): Promise<boolean>;
  /** Pauses a schedule as of `now`; false when there is none. Pausing a paused one keeps its time. */
  pauseSchedule(name: string, now: number): Promise<boolean>;
  /** Resumes a schedule, its next firing set to `nextFireAt`; false when there is none. */
  resumeSchedule(name: string, nextFireAt: number | null): Promise<boolean>;
  /**
   * The schedules that are not paused, for the firer: null when `workerId`
   * does not hold the leader lease (only the leader fires).
   */
  schedulesToFire(workerId: string): Promise<Schedule[] | null>;
  /**
   * Applies one firing in one transaction: moves the schedule's next firing
   * from `due` to `next`, only if `due` is still the stored one (so that
   * however many firers race, one applies it), then, unless the previous
   * job overlaps it under `--overlap skip` (recorded as a skip), enqueues
   * its job (whose id, unique, is a second guard) and records it as the
   * schedule's last.
   */
  fireSchedule(firing: Firing, now: number): Promise<FiringResult>;
  /**
   * `schedule run`: enqueues `job` for the schedule now, whatever its
   * overlap policy, pause or next firing (left as it is), and records it as
   * the schedule's last job. Answers the id of the job that stands for the
   * run: `job`'s, or that of the job holding its unique key (then nothing is
   * added); null when there is no such schedule.
   */
  runSchedule(name: string, job: NewJob, now: number): Promise<string | null>;

  /** The queue-wide settings, defaults filled in. */
  getConfig(): Promise<QueueConfig>;
  /** Stores one setting, already validated (the CLI maps its spellings to these fields). */
  setConfig<K extends keyof QueueConfig>(key: K, value: QueueConfig[K]): Promise<void>;

  /** Registers a `worker start` process. */
  registerWorker(worker: WorkerRecord): Promise<void>;
  /**
   * Records that a worker process is alive; re-registers it if its row went
   * missing. The beat is stamped with `clock()` read once the write lock is
   * held, so a beat that waited out another writer's lock does not land
   * already stale, and a stamp never moves back. The beat (as registration)
   * also advances the lease clock, and takes the leader lease when no live
   * worker process holds it: the leader's lease is its own heartbeat's.
   */
  heartbeatWorker(worker: WorkerRecord, clock?: () => number): Promise<Heartbeat>;
  /** Removes worker processes from the registry. */
  removeWorkers(ids: string[]): Promise<void>;
  /**
   * Removes worker processes judged dead, each only while its heartbeat is
   * still the one the judgement saw: one that has beaten since was not dead.
   * Returns the ids removed.
   */
  pruneWorkers(workers: Pick<WorkerRecord, "id" | "heartbeatAt">[]): Promise<string[]>;
  /**
   * Recovery, in one write: removes the worker processes that are dead, and
   * hands back every job left `processing` by a worker process no longer
   * registered, with the host it ran on, for the caller to settle
   * ({@linkcode Store.settleOrphans}). Dead are those in `deadWorkers` (by
   * local evidence) whose heartbeat is still the one judged, and, only when
   * `judge` holds the leader lease and its own heartbeat is fresh, those whose
   * lease expired: silent for longer than `leaseTimeoutMs` on the database's
   * lease clock, which leaves out stalls (time in which no heartbeat
   * committed). The judge itself and `aliveWorkers` (alive by local
   * evidence) are never expired.
   */
  rescue(request: RescueRequest): Promise<Rescue>;
  /**
   * Records the outcomes of orphaned runs, in one write, each fenced by its
   * claim token as {@linkcode Store.finishAttempt}; returns the jobs settled.
   */
  settleOrphans(settlements: readonly OrphanSettlement[]): Promise<ClaimedJob[]>;
  /** Every registered worker process, live or not. */
  listWorkers(): Promise<WorkerRecord[]>;
  /** Asks worker processes to finish their current jobs and exit. */
  requestWorkerStop(ids: string[]): Promise<void>;

  /**
   * Whether `location` still names the storage this connection has open:
   * false once the database file was deleted, or replaced by another file.
   * True where that cannot be told.
   */
  stillAtLocation(): Promise<boolean>;
  /** Releases the connection. */
  close(): Promise<void>;
}
