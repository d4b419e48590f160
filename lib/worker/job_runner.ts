/**
 * One worker's loop: claim a job, run it, record its outcome, and wait for
 * work when there is none, until told to stop. The Web Worker (runner.ts)
 * turns the supervisor's messages into calls of its methods; what it runs
 * commands with, reads the time from and logs to are given to it, so that
 * the interplay of stops, kills and runs can be tested with a fake clock and
 * a fake executor.
 *
 * @module
 */

import { removeStatusFile, statusFilePath } from "./runs_folder.ts";
import type { QueueConfig } from "../config.ts";
import { formatDuration } from "../duration.ts";
import type { ClaimedJob } from "../job.ts";
import type { AttemptOutcome, KillMode, QueueSelection, Store } from "../store/store.ts";
import { escapeLine } from "../text.ts";
import { type Clock, retryWithBackoff, SYSTEM_CLOCK } from "../timing.ts";
import {
  type CommandResult,
  type CommandSpec,
  type RunningCommand,
  startCommand,
} from "./executor.ts";
import { libcSpawner } from "./libc_spawn.ts";
import { decideOutcome } from "./outcome.ts";
import { type StandbyShell, startStandby } from "./standby.ts";

/**
 * How often an idle worker looks for a change in the database, in ms, when
 * nothing wakes it. Polling `PRAGMA data_version` is cheap. Deno.watchFs is
 * not an option: its thread opens and closes the watched files, and closing
 * any descriptor of a SQLite file drops every POSIX lock this process holds
 * on it.
 */
const UNWOKEN_POLL_MS = 50;
/** The same when enqueues on this host wake the workers: polling only catches other hosts' work. */
const WAKEABLE_POLL_MS = 250;
/** The longest an idle worker waits before trying a claim anyway, in ms. */
const IDLE_MAX_MS = 1_000;
/** The shortest idle wait, in ms: a due job that the claim missed (another worker took it) is looked at again soon, not in a busy loop. */
const IDLE_MIN_MS = 10;
/** The first wait before recording an outcome again while the database fails, in ms. */
const RECORD_RETRY_FIRST_MS = 100;
/** The longest wait between two tries to record an outcome while the database fails, in ms. */
const RECORD_RETRY_MAX_MS = 5_000;
/**
 * How often a running job's new output is stored for `logs --follow`, in
 * ms. Runs that end sooner never write it: their output is stored once, at
 * the end, so short jobs cost nothing more.
 */
const LIVE_OUTPUT_MS = 100;
/**
 * How long the start of each run's wait may hold this thread, in ms (see
 * libc_spawn.ts): a runner runs nothing else on its Web Worker meanwhile,
 * and a kill, stop or timeout then waits at most this long.
 */
export const BLOCKING_WAIT_MS = 10;
/** How long a worker reuses the settings it read, in ms: a `config set` reaches it within this. */
const CONFIG_TTL_MS = 1_000;

/** What a {@linkcode JobRunner} is and what it works with. */
export interface JobRunnerOptions {
  /** The registry id of the `worker start` process, recorded on claimed jobs. */
  processId: string;
  /** This worker's number within the process, from 1. */
  index: number;
  /** Run one job, then stop. */
  once: boolean;
  /** Whether enqueues on this host wake the workers, so that polling can be slow. */
  wakeable: boolean;
  /** The folder where runs leave their exit status (see rescuer.ts); none where unsupported. */
  runsDir: string | null;
  /** Where each run gets a cgroup of its own (see containment.ts); null where runs cannot. */
  cgroups: string | null;
  /** The queues to take jobs from; undefined for all. */
  queues?: string[];
  /** Starts a run: {@linkcode startCommand} unless a test gives another. */
  launch?: (spec: CommandSpec) => RunningCommand;
  /**
   * Where the time comes from and pauses are taken: the store's clock (see
   * `Store.now`) and real pauses unless a test gives another.
   */
  clock?: Clock;
  /** Takes each event line (time, worker, escaped text; no line break): stdout by default. */
  log?: (line: string) => void;
}

/** Why {@linkcode JobRunner.start} ended: told to stop, or its one job (`once`) is done. */
export type RunnerEnd = "stopped" | "done";

const encoder = new TextEncoder();

/**
 * Why live output stops: the run ended. Given to abort() because without a
 * reason it builds a DOMException, stack trace and all: two thirds of the
 * ~10 µs that live output costs a job that ends before its first write.
 */
const RUN_ENDED = "run ended";

/**
 * Writes one event line to stdout. A direct write: console.log in a Web
 * Worker costs more than a job's claim.
 */
function writeToStdout(line: string): void {
  const bytes = encoder.encode(`${line}\n`);
  try {
    for (let offset = 0; offset < bytes.length;) {
      offset += Deno.stdout.writeSync(bytes.subarray(offset));
    }
  } catch {
    // A closed stdout must not stop the worker: the database holds the outcome anyway.
  }
}

/** Claims and runs jobs one at a time until stopped; see the module's documentation. */
export class JobRunner {
  readonly #options: JobRunnerOptions;
  readonly #launch: (spec: CommandSpec) => RunningCommand;
  /**
   * Whether runs start from a shell started ahead (standby.ts): with the
   * real executor, not for one job (`once`), and while the system allows.
   */
  #startsAhead: boolean;
  /** The shell started ahead for this worker's next run, if any. */
  #standby: StandbyShell | undefined;
  #clock: Clock;
  readonly #sink: (line: string) => void;
  readonly #label: string;
  readonly #pollMs: number;

  #stopping = false;
  #killing = false;
  #running: RunningCommand | undefined;
  /** The claimed job, from claim to recorded outcome. */
  #current: ClaimedJob | undefined;
  /** What `queuectl kill` asked for the current job, if it did. */
  #killMode: KillMode | undefined;
  /** The run a forced shutdown killed while its shell still ran: only that one goes back uncounted. */
  #killedRun: RunningCommand | undefined;
  /** Ends the pause under way, if one is. */
  #endPause: (() => void) | undefined;
  /** A wake that came while no pause was under way (during a claim, say): the next pause ends at once. */
  #wakePending = false;
  /** A wake came since the last claim began: an idle wait ends without asking the database. */
  #woken = false;
  /**
   * Whether an idle wait asks the store whether the database changed. Not
   * where news reaches every host (PostgreSQL): the wakes carry it, and the
   * question would keep a listening connection per worker that hears of
   * every write to the queue (every claim too), which costs more than the
   * claims it could spare.
   */
  #asksForChanges = true;
  #cachedConfig: { value: QueueConfig; readAt: number } | undefined;

  constructor(options: JobRunnerOptions) {
    this.#options = options;
    this.#launch = options.launch ?? startCommand;
    this.#startsAhead = options.launch === undefined && !options.once;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    this.#sink = options.log ?? writeToStdout;
    this.#label = `[${options.processId}/${options.index}]`;
    this.#pollMs = options.wakeable ? WAKEABLE_POLL_MS : UNWOKEN_POLL_MS;
  }

  /**
   * Claims and runs jobs from `store` until {@linkcode stop} or
   * {@linkcode kill} (or, with `once`, until one job is done). The store is
   * the caller's to close. A stop that came before this call is obeyed.
   */
  async start(store: Store): Promise<RunnerEnd> {
    if (this.#options.clock === undefined) {
      this.#clock = { now: () => store.now(), sleep: SYSTEM_CLOCK.sleep };
    }
    const selection: QueueSelection = { queues: this.#options.queues };
    this.#asksForChanges = store.notifier.listen === undefined;
    if (this.#asksForChanges) await store.notifier.changed();
    /** A job claimed together with the previous job's outcome. */
    let claimedNext: ClaimedJob | undefined;
    while (!this.#stopping) {
      let job = claimedNext;
      claimedNext = undefined;
      if (!job) {
        // The claim itself answers every wake so far; one that comes during it ends the next pause.
        this.#wakePending = false;
        this.#woken = false;
        try {
          job = await store.claim(
            this.#options.processId,
            () => this.#clock.now(),
            selection,
            this.#standby?.runId,
          );
        } catch (error) {
          this.#log(`cannot claim a job: ${(error as Error).message}; retrying`);
          await this.#pause(IDLE_MAX_MS);
          continue;
        }
      }
      if (!job) {
        // Idle: the next job's shell is started now, to be ready when that job comes.
        this.#prepareStandby();
        await this.#idle(store, selection);
        continue;
      }
      if (this.#stopping) {
        claimedNext = job;
        break;
      }
      claimedNext = await this.#runJob(store, job, selection);
      if (this.#options.once) return "done";
    }
    // The stop came while a claim waited for the database: give the job back untouched.
    if (claimedNext) await store.releaseJob(claimedNext, this.#clock.now()).catch(() => false);
    const standby = this.#standby;
    this.#standby = undefined;
    await standby?.discard();
    return "stopped";
  }

  /**
   * Starts the shell for the next run ahead of its job, if there is none
   * and runs start that way here: the next claim is made under its run id.
   * Only when the worker goes idle: back to back, a job's shell starts as
   * soon as it is claimed anyway, and a shell started ahead costs a few
   * system calls more (the script's pipe, its reading) on a busy machine.
   */
  #prepareStandby(): void {
    if (!this.#startsAhead || this.#stopping) return;
    if (this.#standby === undefined) {
      const runId = crypto.randomUUID();
      const { runsDir, cgroups } = this.#options;
      this.#standby = startStandby({
        runId,
        cgroups,
        statusFile: runsDir === null ? undefined : statusFilePath(runsDir, runId),
      });
      // No fast launch path here (or no shell would start): every run starts the usual way.
      if (this.#standby === undefined) this.#startsAhead = false;
    }
  }

  /** A job may have been added: an idle worker looks now. */
  wake(): void {
    this.#woken = true;
    if (this.#endPause) this.#endPause();
    else this.#wakePending = true;
  }

  /** Finishes the current job, claims nothing more, then stops. */
  stop(): void {
    this.#stopping = true;
    this.#endPause?.();
  }

  /**
   * Kills every process of the current run and stops; the job goes back
   * uncounted, unless its shell had already exited (then its outcome is recorded).
   */
  kill(): void {
    this.#stopping = true;
    this.#killing = true;
    const run = this.#running;
    if (run && !run.exited) {
      this.#killedRun = run;
      run.signalAll("SIGKILL");
    }
    this.#endPause?.();
  }

  /** `queuectl kill`: ends the run under `claimToken`, if it is this worker's, as a failed attempt. */
  killJob(claimToken: string, mode: KillMode): void {
    if (this.#current?.claimToken !== claimToken || this.#killMode !== undefined) return;
    // A run whose shell has already exited ended on its own: its exit code decides.
    const run = this.#running;
    if (run === undefined || run.exited) return;
    this.#killMode = mode;
    run.terminate();
  }

  /** Sleeps up to `ms`, or less when a wake, stop or kill arrives. */
  #pause(ms: number): Promise<void> {
    if (this.#wakePending) {
      this.#wakePending = false;
      return Promise.resolve();
    }
    const controller = new AbortController();
    const end = () => {
      if (this.#endPause === end) this.#endPause = undefined;
      controller.abort();
    };
    this.#endPause = end;
    return this.#clock.sleep(ms, controller.signal).then(() => {
      if (this.#endPause === end) this.#endPause = undefined;
    });
  }

  /**
   * Prints one event line, job text in it (commands, errors) escaped so that
   * it can neither act on the terminal nor break the line.
   */
  #log(line: string): void {
    const at = new Date(this.#clock.now()).toISOString();
    this.#sink(`${at} ${this.#label} ${escapeLine(line)}`);
  }

  /** Waits until the database changes, a scheduled job comes due, or a stop arrives. */
  async #idle(store: Store, selection: QueueSelection): Promise<void> {
    const next = await store.nextRunAt(selection).catch(() => undefined);
    const now = this.#clock.now();
    const deadline = Math.max(Math.min(next ?? Infinity, now + IDLE_MAX_MS), now + IDLE_MIN_MS);
    while (!this.#stopping && this.#clock.now() < deadline) {
      await this.#pause(Math.min(this.#pollMs, deadline - this.#clock.now()));
      // A wake is news in itself: asking the database whether it changed would only delay the claim.
      if (this.#woken || !this.#asksForChanges) return;
      if (await store.notifier.changed().catch(() => true)) return;
    }
  }

  /**
   * Runs `job` and records its outcome; returns the next job, claimed in
   * the same transaction as that outcome unless this worker stops (or runs
   * `once`).
   */
  async #runJob(
    store: Store,
    job: ClaimedJob,
    selection: QueueSelection,
  ): Promise<ClaimedJob | undefined> {
    const { runsDir, cgroups, index } = this.#options;
    const runs = job.maxRetries + 1;
    this.#log(
      `${job.id} started (attempt ${job.attempts} of ${runs}, worker ${index}): ${job.command}`,
    );
    const startedAt = this.#clock.now();
    const statusFile = runsDir === null ? undefined : statusFilePath(runsDir, job.claimToken);
    this.#current = job;
    this.#killMode = undefined;
    const spec: CommandSpec = {
      command: job.command,
      cwd: job.cwd,
      // On top of the worker's own environment; the job's names cannot be these (lib/job_env.ts).
      env: { ...job.env, QUEUECTL_JOB_ID: job.id, QUEUECTL_ATTEMPT: String(job.attempts) },
      timeoutMs: job.timeoutMs,
      statusFile,
      runId: job.claimToken,
      cgroups,
      blockingWaitMs: BLOCKING_WAIT_MS,
    };
    let run: RunningCommand | undefined;
    const standby = this.#standby;
    if (standby?.runId === job.claimToken) {
      // Claimed under the shell started ahead for it.
      this.#standby = undefined;
      run = standby.start(spec);
      // It could not take this job: gone, or it needs a fresh shell. Its cgroup goes before the new one comes.
      if (run === undefined) await standby.discard();
    }
    run ??= this.#launch(spec);
    this.#running = run;
    // A kill that arrived between the claim and the start still applies.
    if (this.#killing) {
      this.#killedRun = run;
      run.signalAll("SIGKILL");
    }
    const live = this.#streamLiveOutput(store, job, run);
    const result = await run.done;
    // The run ends now, however long its outcome then waits to be stored (a locked or full database).
    const finishedAt = this.#clock.now();
    this.#running = undefined;
    await live.stop();

    let next: ClaimedJob | undefined;
    // Only a run killed while its shell still ran goes back uncounted; one whose
    // shell had already exited (its output still draining) is recorded as usual.
    if (this.#killedRun === run) {
      const released = await store.releaseJob(job, this.#clock.now()).catch(() => false);
      this.#log(
        `${job.id} ${released ? "killed and returned to the queue" : "killed"} (forced shutdown)`,
      );
    } else {
      next = await this.#recordOutcome(store, job, result, startedAt, finishedAt, selection);
    }
    this.#current = undefined;
    // The outcome is stored (or was never this worker's to store): the status file has served.
    if (statusFile !== undefined) removeStatusFile(statusFile, libcSpawner().spawner?.unlink);
    return next;
  }

  /**
   * Stores a running job's output every {@linkcode LIVE_OUTPUT_MS} while new
   * output arrives, for `logs --follow`. `stop` waits for a write under way:
   * the final outcome must land after it.
   */
  #streamLiveOutput(store: Store, job: ClaimedJob, run: RunningCommand) {
    const stopped = new AbortController();
    const streaming = (async () => {
      let stored = 0;
      while (true) {
        await this.#clock.sleep(LIVE_OUTPUT_MS, stopped.signal);
        if (stopped.signal.aborted) return;
        if (run.outputBytes === stored) continue;
        stored = run.outputBytes;
        try {
          await store.recordLiveOutput(job, { ...run.snapshot(), updatedAt: this.#clock.now() });
        } catch {
          // Live output is a convenience (the run's output is stored at its end
          // regardless), and never waits long for a busy database: next round.
          stored = -1;
        }
      }
    })();
    return {
      async stop() {
        stopped.abort(RUN_ENDED);
        await streaming;
      },
    };
  }

  /** The queue's settings, read at most once per {@linkcode CONFIG_TTL_MS}: runs are frequent, changes rare. */
  async #currentConfig(store: Store): Promise<QueueConfig> {
    const now = this.#clock.now();
    if (!this.#cachedConfig || now - this.#cachedConfig.readAt > CONFIG_TTL_MS) {
      this.#cachedConfig = { value: await store.getConfig(), readAt: now };
    }
    return this.#cachedConfig.value;
  }

  /**
   * Records a run's outcome, retrying with backoff while the database fails:
   * the outcome must not be lost, and no new job is claimed until it is stored.
   * `finishedAt` is when the run ended, not when its outcome got stored.
   * Unless this worker is stopping or runs `once`, the next job of
   * `selection` is claimed in the same transaction (one write instead of
   * two) and returned.
   */
  #recordOutcome(
    store: Store,
    job: ClaimedJob,
    result: CommandResult,
    startedAt: number,
    finishedAt: number,
    selection: QueueSelection,
  ): Promise<ClaimedJob | undefined> {
    const killed = this.#killMode;
    return retryWithBackoff(async () => {
      const config = await this.#currentConfig(store);
      const outcome = decideOutcome(job, result, config, finishedAt, killed);
      let recorded: boolean;
      let next: ClaimedJob | undefined;
      if (this.#stopping || this.#options.once) {
        recorded = await store.finishAttempt(job, outcome);
      } else {
        // The claim answers every wake so far, as in the loop.
        this.#wakePending = false;
        ({ recorded, next } = await store.finishAndClaim(
          job,
          outcome,
          this.#options.processId,
          () => this.#clock.now(),
          selection,
          this.#standby?.runId,
        ));
      }
      this.#logOutcome(job, outcome, recorded, finishedAt - startedAt);
      return next;
    }, {
      firstMs: RECORD_RETRY_FIRST_MS,
      maxMs: RECORD_RETRY_MAX_MS,
      clock: this.#clock,
      onRetry: (error) => {
        this.#log(`${job.id} cannot record its outcome: ${(error as Error).message}; retrying`);
      },
    });
  }

  #logOutcome(job: ClaimedJob, outcome: AttemptOutcome, recorded: boolean, ms: number): void {
    const took = `in ${formatDuration(ms)}`;
    if (!recorded) {
      this.#log(`${job.id} finished ${took}, but it is no longer this worker's; outcome discarded`);
    } else if (outcome.state === "completed") {
      this.#log(`${job.id} succeeded ${took}`);
    } else if (outcome.state === "failed") {
      const retryAt = new Date(outcome.retryAt!).toISOString();
      const waitMs = outcome.retryAt! - outcome.finishedAt;
      this.#log(
        `${job.id} failed ${took} (${outcome.error}); retry ${job.attempts + 1} of ${
          job.maxRetries + 1
        } at ${retryAt} (in ${formatDuration(waitMs)})`,
      );
    } else {
      this.#log(
        `${job.id} failed ${took} (${outcome.error}); moved to the DLQ after ${job.attempts} attempt${
          job.attempts === 1 ? "" : "s"
        }`,
      );
    }
  }
}
