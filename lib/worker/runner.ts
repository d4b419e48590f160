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
import type { AttemptOutcome, Store } from "../store/store.ts";
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

interface WorkerScope {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;

let stopping = false;
let killing = false;
let running: RunningCommand | undefined;
/** The run a forced shutdown killed while its shell still ran: only that one goes back uncounted. */
let killedRun: RunningCommand | undefined;
let wake: (() => void) | undefined;
let label = "worker";
let pollMs = UNPOKED_POLL_MS;
let runsDir: string | null = null;

/** Sleeps up to `ms`, or less when a stop or kill arrives. */
function pause(ms: number): Promise<void> {
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

/** Prints one event line. A direct write: console.log in a Web Worker costs more than a job's claim. */
function log(line: string): void {
  const bytes = encoder.encode(`${new Date().toISOString()} ${label} ${line}\n`);
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
    work(message).catch((error) => {
      scope.postMessage({ type: "fatal", message: (error as Error).message });
    });
  } else if (message.type === "poke") {
    wake?.();
  } else if (message.type === "stop") {
    stopping = true;
    wake?.();
  } else if (message.type === "kill") {
    stopping = true;
    killing = true;
    if (running && !running.exited) {
      killedRun = running;
      running.signalGroup("SIGKILL");
    }
    wake?.();
  }
};

async function work(start: Extract<ToWorker, { type: "start" }>): Promise<void> {
  const store = await openStore(start.dbPath);
  await store.hasChanged();
  while (!stopping) {
    let job: ClaimedJob | undefined;
    try {
      job = await store.claim(start.processId, Date.now());
    } catch (error) {
      log(`cannot claim a job: ${(error as Error).message}; retrying`);
      await pause(IDLE_MAX_MS);
      continue;
    }
    if (!job) {
      await idle(store);
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

/** Waits until the database changes, a scheduled job comes due, or a stop arrives. */
async function idle(store: Store): Promise<void> {
  const next = await store.nextRunAt().catch(() => undefined);
  const deadline = Math.min(next ?? Infinity, Date.now() + IDLE_MAX_MS);
  while (!stopping && Date.now() < deadline) {
    await pause(Math.min(pollMs, deadline - Date.now()));
    if (await store.hasChanged().catch(() => true)) return;
  }
}

async function runJob(store: Store, job: ClaimedJob, index: number): Promise<void> {
  const runs = job.maxRetries + 1;
  log(`${job.id} started (attempt ${job.attempts} of ${runs}, worker ${index}): ${job.command}`);
  const startedAt = Date.now();
  const statusFile = runsDir === null ? undefined : `${runsDir}/${job.claimToken}`;
  running = startCommand({
    command: job.command,
    cwd: job.cwd,
    env: { QUEUECTL_JOB_ID: job.id, QUEUECTL_ATTEMPT: String(job.attempts) },
    timeoutMs: job.timeoutMs,
    statusFile,
  });
  // A kill that arrived between the claim and the start still applies.
  if (killing) {
    killedRun = running;
    running.signalGroup("SIGKILL");
  }
  const run = running;
  const result = await running.done;
  running = undefined;

  // Only a run killed while its shell still ran goes back uncounted; one whose
  // shell had already exited (its output still draining) is recorded as usual.
  if (killedRun === run) {
    const released = await store.releaseJob(job, Date.now()).catch(() => false);
    log(`${job.id} ${released ? "killed and returned to the queue" : "killed"} (forced shutdown)`);
  } else {
    await recordOutcome(store, job, result, startedAt);
  }
  // The outcome is stored (or was never this worker's to store): the status file has served.
  if (statusFile !== undefined) {
    try {
      Deno.removeSync(statusFile);
    } catch {
      // The run left none (it was killed), or a rescuer took it.
    }
  }
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
 */
async function recordOutcome(
  store: Store,
  job: ClaimedJob,
  result: CommandResult,
  startedAt: number,
): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      const finishedAt = Date.now();
      const config = await currentConfig(store);
      const outcome = decideOutcome(job, result, config, finishedAt);
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
      `${job.id} failed ${took} (${outcome.error}); moved to the DLQ after ${job.attempts} attempts`,
    );
  }
}
