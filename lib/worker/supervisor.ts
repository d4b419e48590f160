/**
 * The main thread of `worker start`: registers the process, starts and
 * watches its Web Workers, heartbeats, and turns signals, `worker stop`,
 * `--drain` and `--once` into an orderly shutdown.
 *
 * @module
 */

import { PURGEABLE_STATES } from "../states.ts";
import type { Store, WorkerRecord } from "../store/store.ts";
import type { FromWorker, ToWorker } from "./messages.ts";
import { probeRunCgroups } from "./containment.ts";
import { hostname, processStartTime } from "./process_info.ts";
import { prepareRunsDir, rescueOrphanedJobs } from "./rescuer.ts";
import { listenForPokes, POKE_SIGNAL, wakeSocketPath } from "./wake.ts";

/** How often a worker process records that it is alive, and looks for a stop request, in ms. */
export const HEARTBEAT_MS = 1_000;
/** How often a worker process looks for jobs that dead workers left behind, in ms. */
const RESCUE_MS = 2_000;
/** How often a worker process applies retention and compacts the database, in ms. */
const MAINTENANCE_MS = 30_000;
/** How long after a poke the process looks for kill requests, in ms. */
const KILL_CHECK_DELAY_MS = 20;
/** How often `--drain` checks whether any job is left, in ms. */
const DRAIN_CHECK_MS = 100;
/** After a forced shutdown, how long workers get to give their jobs back before they are cut off, in ms. */
const FORCED_STOP_LIMIT_MS = 5_000;

/** Options of {@linkcode runWorkers}. */
export interface SupervisorOptions {
  store: Store;
  dbPath: string;
  /** How many Web Workers run jobs. */
  count: number;
  /** Exit once no job is waiting or running. */
  drain: boolean;
  /** Run one job, then exit. */
  once: boolean;
  /** Take jobs only from these queues; undefined for all. */
  queues?: string[];
}

/**
 * Deletes finished jobs past the `retention` setting, forgets empty queues
 * and keeps the WAL small. Returns how many jobs it deleted.
 */
export async function maintainStore(store: Store, now = Date.now()): Promise<number> {
  const { retentionMs } = await store.getConfig();
  const purged = retentionMs === null
    ? 0
    : await store.purgeJobs(PURGEABLE_STATES, now - retentionMs);
  await store.forgetEmptyQueues();
  await store.checkpoint();
  return purged;
}

/**
 * Wraps a periodic task so that a failure (the database briefly unusable,
 * say) is reported in one line and the next round tries again.
 */
function reportingFailure(what: string, task: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await task();
    } catch (error) {
      console.error(`queuectl: ${what} failed: ${(error as Error).message}`);
    }
  };
}

function say(line: string): void {
  console.log(`${new Date().toISOString()} ${line}`);
}

/**
 * Runs workers until they are told to stop. Resolves with the exit code:
 * 0 after a graceful stop, 130 or 143 after a forced one (second signal).
 */
export async function runWorkers(options: SupervisorOptions): Promise<number> {
  const { store, count } = options;
  const startedAt = Date.now();
  const record: WorkerRecord = {
    id: `${hostname()}-${Deno.pid}-${startedAt.toString(36)}`.replace(/[^A-Za-z0-9._:-]/g, "_"),
    pid: Deno.pid,
    host: hostname(),
    threads: count,
    startedAt,
    heartbeatAt: startedAt,
    stopRequested: false,
    procStart: processStartTime(Deno.pid),
  };
  // Listen before registering: enqueues poke registered workers, and the
  // signal's default action would end this process. The signal listener
  // stays until the process exits, for the same reason.
  const pokable = record.procStart !== null && Deno.build.os !== "windows";
  const runs = prepareRunsDir(options.dbPath);
  const runsDir = runs.dir;
  const cgroups = probeRunCgroups().folder;
  const live = new Set<Worker>();
  // `queuectl kill` records its request, then pokes: a poke may also mean a kill.
  let checkingKills = false;
  const checkKills = async () => {
    if (checkingKills) return;
    checkingKills = true;
    try {
      for (const request of await store.listKillRequests(record.id)) {
        const message: ToWorker = { type: "killJob", ...request };
        for (const worker of live) worker.postMessage(message);
      }
    } finally {
      checkingKills = false;
    }
  };
  const checkKillsReporting = reportingFailure("kill check", checkKills);
  const onPoke = () => {
    for (const worker of live) worker.postMessage({ type: "poke" } satisfies ToWorker);
    // Later, not at once: most pokes announce new jobs, and on a small machine this
    // read would compete with the claim it is meant to speed up.
    setTimeout(checkKillsReporting, KILL_CHECK_DELAY_MS);
  };
  const wakeSocket = pokable && runsDir !== null
    ? listenForPokes(wakeSocketPath(runsDir, record), onPoke, say)
    : null;
  if (pokable) Deno.addSignalListener(POKE_SIGNAL, onPoke);
  try {
    await store.registerWorker(record);
  } catch (error) {
    wakeSocket?.close();
    throw error;
  }
  // Said only once the database took this worker: a worker that cannot run says nothing else.
  if (runs.dir === null && runs.problem !== null) {
    say(`${runs.problem}: runs leave no exit status for crash recovery, and pokes come by signal`);
  }
  const rescue = reportingFailure("recovery", async () => {
    for (const job of await rescueOrphanedJobs(store, runsDir)) {
      say(`${job.id} recovered: its worker process was lost`);
    }
  });
  await rescue();

  let exitCode = 0;
  let stopRequested = false;
  let forced = false;
  let allStopped!: () => void;
  const finished = new Promise<void>((resolve) => allStopped = resolve);

  const send = (message: ToWorker) => {
    for (const worker of live) worker.postMessage(message);
  };
  const gone = (worker: Worker) => {
    if (!live.delete(worker)) return;
    worker.terminate();
    if (live.size === 0) allStopped();
  };
  const stop = (why: string) => {
    if (stopRequested) return;
    stopRequested = true;
    say(`stopping (${why}): running jobs finish, no new job is claimed`);
    send({ type: "stop" });
  };
  const forceStop = (signal: Deno.Signal) => {
    if (forced) return;
    forced = true;
    exitCode = signal === "SIGINT" ? 130 : 143;
    say(`${signal} again: killing running jobs and returning them to the queue`);
    send({ type: "kill" });
    setTimeout(() => [...live].forEach(gone), FORCED_STOP_LIMIT_MS);
  };
  // Only a second signal forces: a stop begun by `worker stop`, --drain or
  // --once is still ended gracefully by the first Ctrl+C.
  let signalled = false;
  const onSignal = (signal: Deno.Signal) => () => {
    if (signalled) forceStop(signal);
    signalled = true;
    if (stopRequested) say(`${signal}: already stopping; send it again to kill running jobs`);
    else stop(`${signal}; send it again to kill running jobs`);
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const handlers = signals.map((signal) => [signal, onSignal(signal)] as const);
  for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);

  const serving = options.queues === undefined ? "" : `, queues ${options.queues.join(",")}`;
  say(
    `worker ${record.id} started ${count} worker${
      count === 1 ? "" : "s"
    } (pid ${Deno.pid}, database ${store.location}${serving})`,
  );
  for (let index = 1; index <= count; index++) {
    const worker = new Worker(new URL("./runner.ts", import.meta.url), { type: "module" });
    live.add(worker);
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      if (message.type === "stopped") gone(worker);
      else if (message.type === "done") stop("--once: one job done");
      else if (message.type === "fatal") {
        console.error(`queuectl: worker ${index} failed: ${message.message}`);
        exitCode = 1;
        gone(worker);
        stop("a worker failed");
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      console.error(`queuectl: worker ${index} crashed: ${event.message}`);
      exitCode = 1;
      gone(worker);
      stop("a worker crashed");
    };
    worker.postMessage(
      {
        type: "start",
        dbPath: options.dbPath,
        processId: record.id,
        index,
        once: options.once,
        pokable,
        runsDir,
        cgroups,
        queues: options.queues,
      } satisfies ToWorker,
    );
  }

  const heartbeat = setInterval(
    reportingFailure("heartbeat", async () => {
      if (await store.heartbeatWorker(record, Date.now())) stop("worker stop");
      // A rescuer that took this process for dead (its heartbeat late) removed its socket.
      await wakeSocket?.renew();
      await checkKills();
    }),
    HEARTBEAT_MS,
  );
  const maintain = reportingFailure("maintenance", async () => {
    const purged = await maintainStore(store);
    if (purged > 0) say(`retention: deleted ${purged} finished job${purged === 1 ? "" : "s"}`);
  });
  const maintenance = setInterval(maintain, MAINTENANCE_MS);
  const rescuer = setInterval(rescue, RESCUE_MS);
  void maintain();
  const drainCheck = options.drain
    ? setInterval(
      reportingFailure("drain check", async () => {
        const left = await store.countUnfinished({ queues: options.queues });
        if (!stopRequested && left === 0) stop("--drain: queue is empty");
      }),
      DRAIN_CHECK_MS,
    )
    : undefined;

  await finished;
  clearInterval(heartbeat);
  clearInterval(maintenance);
  clearInterval(rescuer);
  clearInterval(drainCheck);
  await store.removeWorkers([record.id]);
  wakeSocket?.close();
  for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  say(`worker ${record.id} stopped`);
  return exitCode;
}
