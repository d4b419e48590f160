/**
 * The launch path alone: runs `true` N times with P lanes and no queue at
 * all, and prints the elapsed ms and the CPU used per run as JSON. Modes:
 *
 * - `executor`: the workers' own executor (sh with the status wrapper in
 *   its own session, through posix_spawn or Deno.Command as
 *   QUEUECTL_LAUNCH and the system choose, output captured, each run in a
 *   cgroup of its own where the system allows): the ceiling the launch
 *   path puts on throughput.
 * - `executor-no-cgroup`: the same without the runs' cgroups (as with
 *   QUEUECTL_NO_CGROUPS=1).
 * - `spawn`: the fast launcher alone (libc_spawn.ts): `sh -c true` in its
 *   own session, output piped, no status wrapper, no cgroup.
 * - `setsid`: `setsid sh -c true` through `Deno.Command(…).output()`: the
 *   price of the job's own session and process group alone.
 * - `bare`: `Deno.Command("sh", {args: ["-c", "true"]}).output()`, the
 *   cheapest spawn Deno offers, with no process group and no status file.
 * - `store`: no command at all: N jobs enqueued in RUNS_DIR/store.db are
 *   claimed, then each outcome recorded together with the next claim, as
 *   one lane of a worker does; the CPU that costs per job, on one lane.
 *
 * The first three run each lane on a Web Worker of its own, with the wait
 * a worker's lane has (job_runner.ts's BLOCKING_WAIT_MS), as a worker
 * process does; the last three in this thread. CPU is counted from when
 * every lane is ready, so start-up is left out.
 *
 * Usage: deno run -A bench/launch_floor.ts N P RUNS_DIR MODE
 *
 * @module
 */

import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import type { AttemptOutcome } from "../lib/store/store.ts";
import { probeRunCgroups } from "../lib/worker/containment.ts";
import { findExecutable, startCommand, workerEnvironment } from "../lib/worker/executor.ts";
import { BLOCKING_WAIT_MS } from "../lib/worker/job_runner.ts";
import { libcSpawner } from "../lib/worker/libc_spawn.ts";
import { readCpuTimes } from "./util.ts";

/** The ways of running the same N commands (or, for `store`, none). */
export const FLOOR_MODES = ["executor", "executor-no-cgroup", "spawn", "setsid", "bare"] as const;
/** One of {@linkcode FLOOR_MODES}, or `store`. */
export type FloorMode = typeof FLOOR_MODES[number] | "store";

/** Modes whose lanes run on Web Workers, as a worker process's do. */
const LANE_MODES: readonly string[] = ["executor", "executor-no-cgroup", "spawn"];

/** What one launch floor run prints. */
export interface LaunchFloor {
  ms: number;
  /** CPU of this process over all runs (its start-up left out), in clock ticks. */
  ownTicks: number;
  /** CPU of the processes it started, over all runs, in clock ticks. */
  childTicks: number;
}

/** What a lane's Web Worker is told. */
interface LaneOrder {
  n: number;
  lane: number;
  runsDir: string;
  mode: string;
  /** Int32Array over it: [0] the next run's index, shared by the lanes. */
  next: SharedArrayBuffer;
}

const shell = findExecutable("sh") ?? "sh";
const setsid = findExecutable("setsid") ?? "setsid";

/** One run of `true` the way `mode` says. */
async function runOnce(mode: string, runsDir: string, lane: number, index: number): Promise<void> {
  if (mode === "spawn") {
    const { spawner, problem } = libcSpawner();
    if (spawner === null) throw new Error(`no fast launcher: ${problem}`);
    const started = spawner.spawn({
      program: shell,
      args: ["-c", "true"],
      cwd: runsDir,
      env: workerEnvironment(),
      onStdout() {},
      onStderr() {},
      blockingWaitMs: BLOCKING_WAIT_MS,
    });
    const { code } = await started.status;
    await started.reading;
    if (code !== 0) throw new Error(`run ${index} exited with ${code}`);
    return;
  }
  if (mode === "bare" || mode === "setsid") {
    const [program, args] = mode === "bare"
      ? [shell, ["-c", "true"]]
      : [setsid, [shell, "-c", "true"]];
    const { code } = await new Deno.Command(program, { args, stdin: "null" }).output();
    if (code !== 0) throw new Error(`run ${index} exited with ${code}`);
    return;
  }
  const statusFile = `${runsDir}/floor-${lane}-${index}`;
  const result = await startCommand({
    command: "true",
    cwd: runsDir,
    env: { QUEUECTL_JOB_ID: `floor-${index}`, QUEUECTL_ATTEMPT: "1" },
    timeoutMs: null,
    statusFile,
    runId: crypto.randomUUID(),
    cgroups: mode === "executor" ? runCgroups() : null,
    blockingWaitMs: BLOCKING_WAIT_MS,
  }).done;
  if (result.exitCode !== 0) throw new Error(`run ${index} exited with ${result.exitCode}`);
  Deno.removeSync(statusFile);
}

let cgroups: string | null | undefined;
/** Where runs get their cgroups, probed once per thread as a worker does once per process. */
function runCgroups(): string | null {
  if (cgroups === undefined) cgroups = probeRunCgroups().folder;
  return cgroups;
}

/** The store's work for N jobs on one lane: a claim, then N outcomes each recorded with the next claim. */
async function storeOnly(n: number, runsDir: string): Promise<LaunchFloor> {
  const store = await openSqliteStore(`${runsDir}/store.db`);
  // The first claim loads and compiles the store's code: before the count starts.
  let job = await store.claim("floor", Date.now());
  const before = readCpuTimes(Deno.pid);
  const started = performance.now();
  for (let done = 0; done < n - 1; done++) {
    if (job === undefined) throw new Error(`only ${done + 1} of ${n} jobs claimed`);
    const outcome: AttemptOutcome = {
      state: "completed",
      exitCode: 0,
      error: null,
      finishedAt: Date.now(),
      output: {
        stdout: new Uint8Array(),
        stderr: new Uint8Array(),
        stdoutDropped: 0,
        stderrDropped: 0,
      },
    };
    job = (await store.finishAndClaim(job, outcome, "floor", () => Date.now())).next;
  }
  const ms = performance.now() - started;
  const cpu = readCpuTimes(Deno.pid);
  await store.close();
  // n − 1 writes were timed; per job, scaled to n.
  const scale = n / Math.max(1, n - 1);
  return {
    ms: ms * scale,
    ownTicks: (cpu.own - before.own) * scale,
    childTicks: (cpu.children - before.children) * scale,
  };
}

/** Runs lanes on Web Workers; see the module's documentation. */
async function onLanes(n: number, lanes: number, runsDir: string, mode: string) {
  const next = new SharedArrayBuffer(4);
  const workers = Array.from(
    { length: lanes },
    () => new Worker(import.meta.url, { type: "module" }),
  );
  const messages = (worker: Worker) =>
    new Promise<string>((resolve, reject) => {
      worker.onmessage = (event) => resolve(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(event.message));
      };
    });
  const ready = workers.map(messages);
  workers.forEach((worker, lane) => {
    const order: LaneOrder = { n, lane, runsDir, mode, next };
    worker.postMessage(order);
  });
  await Promise.all(ready);
  const before = readCpuTimes(Deno.pid);
  const started = performance.now();
  const done = workers.map(messages);
  workers.forEach((worker) => worker.postMessage("go"));
  await Promise.all(done);
  const ms = performance.now() - started;
  const cpu = readCpuTimes(Deno.pid);
  workers.forEach((worker) => worker.terminate());
  return { ms, ownTicks: cpu.own - before.own, childTicks: cpu.children - before.children };
}

/** A lane's Web Worker: told its order, says ready, runs on "go", says done. */
function serveLane(): void {
  const scope = globalThis as unknown as {
    onmessage: ((event: MessageEvent) => void) | null;
    postMessage(message: unknown): void;
  };
  let order: LaneOrder | undefined;
  scope.onmessage = async (event) => {
    if (order === undefined) {
      order = event.data as LaneOrder;
      // Loads the launcher (and the C library) and finds the cgroups before the count starts.
      libcSpawner();
      if (order.mode === "executor") runCgroups();
      scope.postMessage("ready");
      return;
    }
    const { n, lane, runsDir, mode } = order;
    const next = new Int32Array(order.next);
    for (let index = Atomics.add(next, 0, 1); index < n; index = Atomics.add(next, 0, 1)) {
      await runOnce(mode, runsDir, lane, index);
    }
    scope.postMessage("done");
  };
}

/** Runs lanes in this thread: Deno.Command's ways. */
async function inThisThread(n: number, lanes: number, runsDir: string, mode: string) {
  let next = 0;
  const before = readCpuTimes(Deno.pid);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      while (next < n) await runOnce(mode, runsDir, lane, next++);
    }),
  );
  const ms = performance.now() - started;
  const cpu = readCpuTimes(Deno.pid);
  return { ms, ownTicks: cpu.own - before.own, childTicks: cpu.children - before.children };
}

// A lane's Web Worker runs this module too, and is its own main module there.
if ("WorkerGlobalScope" in globalThis) {
  serveLane();
} else if (import.meta.main) {
  const [n, lanes] = Deno.args.slice(0, 2).map(Number);
  const [runsDir, mode] = Deno.args.slice(2, 4);
  if (![...FLOOR_MODES, "store"].includes(mode)) throw new Error(`unknown mode ${mode}`);
  const floor: LaunchFloor = mode === "store"
    ? await storeOnly(n, runsDir)
    : LANE_MODES.includes(mode)
    ? await onLanes(n, lanes, runsDir, mode)
    : await inThisThread(n, lanes, runsDir, mode);
  console.log(JSON.stringify(floor));
}
