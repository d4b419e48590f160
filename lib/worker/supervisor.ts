/**
 * The main thread of `worker start`: registers the process, starts and
 * watches its Web Workers, heartbeats, and turns signals, `worker stop`,
 * `--drain` and `--once` into an orderly shutdown.
 *
 * @module
 */

import type { DbLocation } from "../db_location.ts";
import { moduleUrl } from "../module_urls.ts";
import type { Store, WorkerRecord } from "../store/store.ts";
import { escapeLine } from "../text.ts";
import type { FromWorker, ToWorker } from "./messages.ts";
import { probeRunCgroups } from "./containment.ts";
import { hostname, processStartTime } from "./process_info.ts";
import { HEARTBEAT_MS, rescueOrphanedJobs } from "./rescuer.ts";
import {
  foreignRunsFolders,
  prepareRunsFolder,
  restoreRunsFolder,
  runsFolderUnwritable,
  wakeSocketPath,
} from "./runs_folder.ts";
import { createScheduler } from "./scheduler.ts";
import { listenForPokes, POKE_SIGNAL } from "./wake.ts";

/** How often a worker process looks for jobs that dead workers left behind, in ms. */
const RESCUE_MS = 2_000;
/** How often a worker process tries the upkeep (done only by the leader), in ms. */
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
  /** Where `store` is: the Web Workers open their own connections there. */
  location: DbLocation;
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
 * Wraps a periodic task so that a failure (the database briefly unusable,
 * say) is reported in one line and the next round tries again.
 */
function reportingFailure(what: string, task: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await task();
    } catch (error) {
      complain(`${what} failed: ${(error as Error).message}`);
    }
  };
}

const encoder = new TextEncoder();

/**
 * Writes a whole line to stdout or stderr, escaped to one line of plain
 * text. A stream that is gone (the terminal closed, and with it came the
 * SIGHUP being handled) must not end the worker in the middle of its stop.
 */
function writeLine(stream: typeof Deno.stdout | typeof Deno.stderr, line: string): void {
  const bytes = encoder.encode(`${escapeLine(line)}\n`);
  try {
    for (let offset = 0; offset < bytes.length;) {
      offset += stream.writeSync(bytes.subarray(offset));
    }
  } catch {
    // Nobody is reading any more; the database holds what matters.
  }
}

/** Prints one event line of the process, timestamped. */
function say(line: string): void {
  writeLine(Deno.stdout, `${new Date().toISOString()} ${line}`);
}

/** Prints one error line on stderr. */
function complain(line: string): void {
  writeLine(Deno.stderr, `queuectl: ${line}`);
}

/** A periodic task that never runs twice at once. */
interface Round {
  /** Runs the task, or joins the run under way (one stuck behind a lock, say). */
  run(): Promise<void>;
  /** Resolves once no run is under way. */
  settled(): Promise<void>;
}

/** Makes a {@linkcode Round} of `task`, which must not throw. */
function oneAtATime(task: () => Promise<void>): Round {
  let running: Promise<void> | undefined;
  return {
    run: () => running ??= task().finally(() => running = undefined),
    settled: () => running ?? Promise.resolve(),
  };
}

/** The exit status of a process ended by `signal` (128 + its number), for a forced stop. */
const SIGNAL_EXIT: Partial<Record<Deno.Signal, number>> = {
  SIGHUP: 129,
  SIGINT: 130,
  SIGTERM: 143,
};

/**
 * Runs workers until they are told to stop. Resolves with the exit code:
 * 0 after a graceful stop; 129, 130 or 143 after a forced one (a second
 * SIGHUP, SIGINT or SIGTERM); 1 after a worker failed or the database file
 * went away.
 */
export async function runWorkers(options: SupervisorOptions): Promise<number> {
  const { store, count } = options;
  const startedAt = store.now();
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
  // A database that is no file on this host has no runs folder yet.
  const runs = prepareRunsFolder(options.location);
  const runsDir = runs.dir;
  const cgroups = probeRunCgroups().folder;
  const live = new Set<Worker>();
  const scheduler = createScheduler(store, record.id, say, complain);
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
    for (const worker of live) worker.postMessage({ type: "wake" } satisfies ToWorker);
    // A poke may also announce a schedule added or resumed.
    scheduler.poke();
    // Later, not at once: most pokes announce new jobs, and on a small machine this
    // read would compete with the claim it is meant to speed up.
    setTimeout(checkKillsReporting, KILL_CHECK_DELAY_MS);
  };
  // A backend whose news reaches every host (PostgreSQL) carries it; otherwise
  // enqueues on this host poke this process through its wake socket.
  const news = store.notifier.listen === undefined ? null : await store.notifier.listen(
    (what) => what === "kill" ? checkKillsReporting() : onPoke(),
  );
  const wakeSocket = news === null && pokable && runsDir !== null
    ? listenForPokes(wakeSocketPath(runsDir, record), onPoke, say)
    : null;
  if (pokable) Deno.addSignalListener(POKE_SIGNAL, onPoke);
  try {
    await store.registerWorker(record);
  } catch (error) {
    wakeSocket?.close();
    await news?.close();
    throw error;
  }
  // Said only once the database took this worker: a worker that cannot run says nothing else.
  if (runs.dir === null && runs.problem !== null) {
    say(`${runs.problem}: runs leave no exit status for crash recovery, and pokes come by signal`);
  }
  let databaseLost = false;
  const rescue = oneAtATime(reportingFailure("recovery", async () => {
    if (databaseLost) return;
    for (const job of await rescueOrphanedJobs(store, runsDir, record.id)) {
      say(`${job.id} recovered: its worker process was lost`);
    }
  }));
  await rescue.run();
  // Another live worker of this database on this host whose environment puts
  // the runs folder elsewhere (another XDG_RUNTIME_DIR) cannot share exit
  // statuses with this one: said once, at start, by the later of the two.
  const sayForeignRunsFolders = async (runsDir: string) => {
    const others = (await store.listWorkers()).filter((worker) =>
      worker.id !== record.id && worker.host === record.host && worker.procStart !== null &&
      processStartTime(worker.pid) === worker.procStart
    );
    for (const { pid, dir } of foreignRunsFolders(options.location, runsDir, others)) {
      say(
        `worker process ${pid} keeps the runs folder of this database in ${dir ?? "none"}, ` +
          `this one in ${runsDir} (they started with different XDG_RUNTIME_DIR): a run lost ` +
          "with one of them runs again even if it had finished; start every worker of a " +
          "database with the same XDG_RUNTIME_DIR",
      );
    }
  };
  if (runsDir !== null) {
    await reportingFailure("runs folder check", () => sayForeignRunsFolders(runsDir))();
  }

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
  // Recorded so that `status` shows this process stopping, as after `worker stop`.
  const recordStop = oneAtATime(reportingFailure("recording the stop", async () => {
    if (!databaseLost) await store.requestWorkerStop([record.id]);
  }));
  const stop = (why: string, recorded = false) => {
    if (stopRequested) return;
    stopRequested = true;
    say(`stopping (${why}): running jobs finish, no new job is claimed`);
    send({ type: "stop" });
    if (!recorded) void recordStop.run();
  };
  const killRunning = () => {
    send({ type: "kill" });
    setTimeout(() => [...live].forEach(gone), FORCED_STOP_LIMIT_MS);
  };
  const forceStop = (signal: Deno.Signal) => {
    if (forced) return;
    forced = true;
    exitCode = SIGNAL_EXIT[signal] ?? 1;
    say(`${signal} again: killing running jobs and returning them to the queue`);
    killRunning();
  };
  // The file this process serves is no longer the one its path names (deleted, or
  // replaced): nothing it records can reach the queue any more, and no one can see or
  // stop its runs. So it stops at once, and its running jobs are killed rather than
  // left to run on unrecorded; a new worker serves whatever file the path names now.
  const loseDatabase = () => {
    if (databaseLost) return;
    databaseLost = true;
    stopRequested = true;
    forced = true;
    exitCode = 1;
    complain(
      `database ${store.location} was deleted or replaced while this worker ran; ` +
        "stopping, and killing its running jobs (their outcome could no longer be recorded)",
    );
    say("stopping (the database file is gone): killing running jobs");
    killRunning();
  };
  // Only a second signal forces: a stop begun by `worker stop`, --drain or
  // --once is still ended gracefully by the first Ctrl+C. A SIGHUP (its
  // terminal closed) is a request to stop like any other.
  let signalled = false;
  const onSignal = (signal: Deno.Signal) => () => {
    if (signalled) return forceStop(signal);
    signalled = true;
    if (stopRequested) say(`${signal}: already stopping; send it again to kill running jobs`);
    else stop(`${signal}; send it again to kill running jobs`);
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM", "SIGHUP"];
  const handlers = signals.map((signal) => [signal, onSignal(signal)] as const);
  for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);

  const serving = options.queues === undefined ? "" : `, queues ${options.queues.join(",")}`;
  say(
    `worker ${record.id} started ${count} worker${
      count === 1 ? "" : "s"
    } (pid ${Deno.pid}, database ${store.location}${serving})`,
  );
  const writeTurns = new SharedArrayBuffer(4);
  for (let index = 1; index <= count; index++) {
    const worker = new Worker(moduleUrl("lib/worker/runner"), { type: "module" });
    live.add(worker);
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      if (message.type === "stopped") gone(worker);
      else if (message.type === "done") stop("--once: one job done");
      else if (message.type === "fatal") {
        complain(`worker ${index} failed: ${message.message}`);
        exitCode = 1;
        gone(worker);
        stop("a worker failed");
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      complain(`worker ${index} crashed: ${event.message}`);
      exitCode = 1;
      gone(worker);
      stop("a worker crashed");
    };
    worker.postMessage(
      {
        type: "start",
        location: options.location,
        processId: record.id,
        index,
        once: options.once,
        wakeable: pokable || news !== null,
        runsDir,
        cgroups,
        queues: options.queues,
        writeTurns,
      } satisfies ToWorker,
    );
  }

  // Said once per absence of the runs folder, however many heartbeats cannot make it again;
  // the same for a folder that takes no file (a full disk, no inodes left).
  let runsDirFailureSaid = false;
  let runsDirUnwritableSaid = false;
  const keepRunsDir = () => {
    if (runsDir === null) return;
    const again = restoreRunsFolder(options.location, runsDir);
    if (again === undefined) {
      const problem = runsFolderUnwritable(runsDir);
      if (problem !== null && !runsDirUnwritableSaid) {
        say(
          `cannot write in ${runsDir} (${problem}): runs leave no exit status for crash recovery`,
        );
      } else if (problem === null && runsDirUnwritableSaid) {
        say(`${runsDir} takes files again: runs leave their exit status`);
      }
      runsDirUnwritableSaid = problem !== null;
    } else if (again.dir !== null) {
      runsDirFailureSaid = false;
      say(`${runsDir} was gone: made it again (runs meanwhile left no exit status)`);
    } else if (!runsDirFailureSaid) {
      runsDirFailureSaid = true;
      say(
        `the runs folder is gone; ${again.problem}: runs leave no exit status for crash recovery`,
      );
    }
  };
  const beat = oneAtATime(reportingFailure("heartbeat", async () => {
    if (databaseLost) return;
    // First: it needs no database, and a failing one must not skip it.
    keepRunsDir();
    if (!await store.stillAtLocation()) return loseDatabase();
    // The beat also renews (or takes) the leader lease: see Store.heartbeatWorker.
    const { stopRequested: stopAsked } = await store.heartbeatWorker(record);
    if (stopAsked) stop("worker stop", true);
    // A rescuer that took this process for dead (an older queuectl) removed its socket.
    await wakeSocket?.renew();
    await checkKills();
  }));
  const heartbeat = setInterval(beat.run, HEARTBEAT_MS);
  const maintain = reportingFailure("maintenance", async () => {
    if (databaseLost) return;
    // Done by the elected leader only: the others get null.
    const purged = (await store.maintain(record.id))?.purged ?? 0;
    if (purged > 0) say(`retention: deleted ${purged} finished job${purged === 1 ? "" : "s"}`);
  });
  const maintenance = setInterval(maintain, MAINTENANCE_MS);
  // Firings must come on time (within a second): the leader's own timer, not the upkeep's.
  scheduler.start();
  const rescuer = setInterval(rescue.run, RESCUE_MS);
  void maintain();
  const drainCheck = options.drain
    ? setInterval(
      reportingFailure("drain check", async () => {
        if (databaseLost) return;
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
  await scheduler.stop();
  // A beat that landed after the removal would register this process again.
  await Promise.all([beat.settled(), rescue.settled(), recordStop.settled()]);
  if (!databaseLost) await store.removeWorkers([record.id]);
  wakeSocket?.close();
  await news?.close();
  for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  say(`worker ${record.id} stopped`);
  return exitCode;
}
