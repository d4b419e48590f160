/**
 * The Web Worker that claims and runs jobs, one at a time, on its own
 * database connection. Started by the supervisor with a `start` message.
 *
 * @module
 */

import type { QueueConfig } from "../config.ts";
import { formatDuration } from "../duration.ts";
import type { ClaimedJob } from "../job.ts";
import { openStore } from "../store/mod.ts";
import type { AttemptOutcome, KillMode, QueueSelection, Store } from "../store/store.ts";
import { escapeLine } from "../text.ts";
import { type CommandResult, type RunningCommand, startCommand } from "./executor.ts";
import type { FromWorker, ToWorker } from "./messages.ts";
import { decideOutcome } from "./outcome.ts";

/**
 * How often an idle worker looks for a change in the database, in ms, when
 * nothing pokes it. Polling `PRAGMA data_version` is cheap. Deno.watchFs is
 * not an option: its thread opens and closes the watched files, and closing
 * any descriptor of a SQLite file drops every POSIX lock this process holds
 * on it.
 */
const UNPOKED_POLL_MS = 50;
/** The same when enqueues on this host poke the workers: polling only catches other hosts' work. */
const POKED_POLL_MS = 250;
/** The longest an idle worker waits before trying a claim anyway, in ms. */
const IDLE_MAX_MS = 1_000;
/** The longest wait between two tries to record an outcome while the database fails, in ms. */
const RECORD_RETRY_MAX_MS = 5_000;
/**
 * How often a running job's new output is stored for `logs --follow`, in
 * ms. Runs that end sooner never write it: their output is stored once, at
 * the end, so short jobs cost nothing more.
 */
const LIVE_OUTPUT_MS = 100;

interface WorkerScope {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;

let stopping = false;
let killing = false;
let running: RunningCommand | undefined;
/** The claimed job, from claim to recorded outcome. */
let current: ClaimedJob | undefined;
/** What `queuectl kill` asked for the current job, if it did. */
let killMode: KillMode | undefined;
/** The run a forced shutdown killed while its shell still ran: only that one goes back uncounted. */
let killedRun: RunningCommand | undefined;
let wake: (() => void) | undefined;
/** A poke that came while no pause was under way (during a claim, say): the next pause ends at once. */
let poked = false;
let label = "worker";
let pollMs = UNPOKED_POLL_MS;
let runsDir: string | null = null;
/** Where each run gets a cgroup of its own; null where runs cannot have one. */
let cgroups: string | null = null;

/** Sleeps up to `ms`, or less when a poke, stop or kill arrives. */
function pause(ms: number): Promise<void> {
  if (poked) {
    poked = false;
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      wake = undefined;
      resolve();
    }
    wake = done;
  });
}

const encoder = new TextEncoder();

/**
 * Prints one event line, job text in it (commands, errors) escaped so that it
 * can neither act on the terminal nor break the line. A direct write:
 * console.log in a Web Worker costs more than a job's claim.
 */
function log(line: string): void {
  const bytes = encoder.encode(`${new Date().toISOString()} ${label} ${escapeLine(line)}\n`);
  try {
    for (let offset = 0; offset < bytes.length;) {
      offset += Deno.stdout.writeSync(bytes.subarray(offset));
    }
  } catch {
    // A closed stdout must not stop the worker: the database holds the outcome anyway.
  }
}

scope.onmessage = (event) => {
  const message = event.data;
  if (message.type === "start") {
    label = `[${message.processId}/${message.index}]`;
    pollMs = message.pokable ? POKED_POLL_MS : UNPOKED_POLL_MS;
    runsDir = message.runsDir;
    cgroups = message.cgroups;
    work(message).catch((error) => {
      scope.postMessage({ type: "fatal", message: (error as Error).message });
    });
  } else if (message.type === "poke") {
    if (wake) wake();
    else poked = true;
  } else if (message.type === "stop") {
    stopping = true;
    wake?.();
  } else if (message.type === "kill") {
    stopping = true;
    killing = true;
    if (running && !running.exited) {
      killedRun = running;
      running.signalAll("SIGKILL");
    }
    wake?.();
  } else if (message.type === "killJob") {
    if (current?.claimToken !== message.claimToken || killMode !== undefined) return;
    // A run whose shell has already exited ended on its own: its exit code decides.
    if (running === undefined || running.exited) return;
    killMode = message.mode;
    running.terminate();
  }
};

async function work(start: Extract<ToWorker, { type: "start" }>): Promise<void> {
  const store = await openStore(start.location);
  const selection: QueueSelection = { queues: start.queues };
  await store.notifier.changed();
  while (!stopping) {
    let job: ClaimedJob | undefined;
    // The claim itself answers every poke so far; one that comes during it ends the next pause.
    poked = false;
    try {
      job = await store.claim(start.processId, Date.now(), selection);
    } catch (error) {
      log(`cannot claim a job: ${(error as Error).message}; retrying`);
      await pause(IDLE_MAX_MS);
      continue;
    }
    if (!job) {
      await idle(store, selection);
      continue;
    }
    if (stopping) {
      // The stop came while the claim waited for the database: give the job back untouched.
      await store.releaseJob(job, Date.now()).catch(() => false);
      break;
    }
    await runJob(store, job, start.index);
    if (start.once) {
      scope.postMessage({ type: "done" });
      break;
    }
  }
  await store.close();
  scope.postMessage({ type: "stopped" });
  scope.close();
}

/** The shortest idle wait, in ms: a due job that the claim missed (another worker took it) is looked at again soon, not in a busy loop. */
const IDLE_MIN_MS = 10;

/** Waits until the database changes, a scheduled job comes due, or a stop arrives. */
async function idle(store: Store, selection: QueueSelection): Promise<void> {
  const next = await store.nextRunAt(selection).catch(() => undefined);
  const now = Date.now();
  const deadline = Math.max(Math.min(next ?? Infinity, now + IDLE_MAX_MS), now + IDLE_MIN_MS);
  while (!stopping && Date.now() < deadline) {
    await pause(Math.min(pollMs, deadline - Date.now()));
    if (await store.notifier.changed().catch(() => true)) return;
  }
}

async function runJob(store: Store, job: ClaimedJob, index: number): Promise<void> {
  const runs = job.maxRetries + 1;
  log(`${job.id} started (attempt ${job.attempts} of ${runs}, worker ${index}): ${job.command}`);
  const startedAt = Date.now();
  const statusFile = runsDir === null ? undefined : `${runsDir}/${job.claimToken}`;
  current = job;
  killMode = undefined;
  running = startCommand({
    command: job.command,
    cwd: job.cwd,
    env: { QUEUECTL_JOB_ID: job.id, QUEUECTL_ATTEMPT: String(job.attempts) },
    timeoutMs: job.timeoutMs,
    statusFile,
    runId: job.claimToken,
    cgroups,
  });
  // A kill that arrived between the claim and the start still applies.
  if (killing) {
    killedRun = running;
    running.signalAll("SIGKILL");
  }
  const run = running;
  const live = streamLiveOutput(store, job, run);
  const result = await running.done;
  // The run ends now, however long its outcome then waits to be stored (a locked or full database).
  const finishedAt = Date.now();
  running = undefined;
  await live.stop();

  // Only a run killed while its shell still ran goes back uncounted; one whose
  // shell had already exited (its output still draining) is recorded as usual.
  if (killedRun === run) {
    const released = await store.releaseJob(job, Date.now()).catch(() => false);
    log(`${job.id} ${released ? "killed and returned to the queue" : "killed"} (forced shutdown)`);
  } else {
    await recordOutcome(store, job, result, startedAt, finishedAt, killMode);
  }
  current = undefined;
  // The outcome is stored (or was never this worker's to store): the status file has served.
  if (statusFile !== undefined) {
    try {
      Deno.removeSync(statusFile);
    } catch {
      // The run left none (it was killed), or a rescuer took it.
    }
  }
}

/**
 * Stores a running job's output every {@linkcode LIVE_OUTPUT_MS} while new
 * output arrives, for `logs --follow`. `stop` waits for a write under way:
 * the final outcome must land after it.
 */
function streamLiveOutput(store: Store, job: ClaimedJob, run: RunningCommand) {
  let stored = 0;
  let writing: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    if (run.outputBytes === stored) return;
    stored = run.outputBytes;
    writing = writing.then(() =>
      store.recordLiveOutput(job, { ...run.snapshot(), updatedAt: Date.now() })
    ).catch(() => {
      // Live output is a convenience (the run's output is stored at its end
      // regardless), and never waits long for a busy database: next round.
      stored = -1;
    });
  }, LIVE_OUTPUT_MS);
  return {
    async stop() {
      clearInterval(timer);
      await writing;
    },
  };
}

/** How long a worker reuses the settings it read, in ms: a `config set` reaches it within this. */
const CONFIG_TTL_MS = 1_000;
let cachedConfig: { value: QueueConfig; readAt: number } | undefined;

/** The queue's settings, read at most once per {@linkcode CONFIG_TTL_MS}: runs are frequent, changes rare. */
async function currentConfig(store: Store): Promise<QueueConfig> {
  const now = Date.now();
  if (!cachedConfig || now - cachedConfig.readAt > CONFIG_TTL_MS) {
    cachedConfig = { value: await store.getConfig(), readAt: now };
  }
  return cachedConfig.value;
}

/**
 * Records a run's outcome, retrying with backoff while the database fails:
 * the outcome must not be lost, and no new job is claimed until it is stored.
 * `finishedAt` is when the run ended, not when its outcome got stored.
 */
async function recordOutcome(
  store: Store,
  job: ClaimedJob,
  result: CommandResult,
  startedAt: number,
  finishedAt: number,
  killed: KillMode | undefined,
): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      const config = await currentConfig(store);
      const outcome = decideOutcome(job, result, config, finishedAt, killed);
      const recorded = await store.finishAttempt(job, outcome);
      logOutcome(job, outcome, recorded, finishedAt - startedAt);
      return;
    } catch (error) {
      const waitMs = Math.min(100 * 2 ** attempt, RECORD_RETRY_MAX_MS);
      log(`${job.id} cannot record its outcome: ${(error as Error).message}; retrying`);
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}

function logOutcome(job: ClaimedJob, outcome: AttemptOutcome, recorded: boolean, ms: number) {
  const took = `in ${formatDuration(ms)}`;
  if (!recorded) {
    log(`${job.id} finished ${took}, but it is no longer this worker's; outcome discarded`);
  } else if (outcome.state === "completed") {
    log(`${job.id} succeeded ${took}`);
  } else if (outcome.state === "failed") {
    const retryAt = new Date(outcome.retryAt!).toISOString();
    const waitMs = outcome.retryAt! - outcome.finishedAt;
    log(
      `${job.id} failed ${took} (${outcome.error}); retry ${job.attempts + 1} of ${
        job.maxRetries + 1
      } at ${retryAt} (in ${formatDuration(waitMs)})`,
    );
  } else {
    log(
      `${job.id} failed ${took} (${outcome.error}); moved to the DLQ after ${job.attempts} attempt${
        job.attempts === 1 ? "" : "s"
      }`,
    );
  }
}
