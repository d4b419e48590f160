/**
 * The launch path alone: runs `true` N times with P lanes and no queue at
 * all, and prints the elapsed ms and the CPU used per run as JSON. Modes:
 *
 * - `executor`: the workers' own executor (sh with the status wrapper in
 *   its own session, through posix_spawn or Deno.Command as
 *   QUEUECTL_LAUNCH and the system choose, output captured, each run in a
 *   cgroup of its own where the system allows): the ceiling the launch
 *   path puts on throughput.
 * - `setsid`: `setsid sh -c true` through `Deno.Command(…).output()`: the
 *   price of the job's own session and process group alone.
 * - `bare`: `Deno.Command("sh", {args: ["-c", "true"]}).output()`, the
 *   cheapest spawn Deno offers, with no process group and no status file.
 * - `spawn`: the fast launcher alone (libc_spawn.ts): `sh -c true` in its
 *   own session, output piped, no status wrapper, no cgroup.
 * - `executor-no-cgroup`: `executor` without the runs' cgroups (as with
 *   QUEUECTL_NO_CGROUPS=1).
 * - `store`: no command at all: N jobs enqueued in RUNS_DIR/store.db are
 *   claimed, then each outcome recorded together with the next claim, as a
 *   worker's lane does, in this process; the CPU that costs per job.
 *
 * Usage: deno run -A bench/launch_floor.ts N P RUNS_DIR MODE
 *
 * @module
 */

import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import type { AttemptOutcome } from "../lib/store/store.ts";
import { probeRunCgroups } from "../lib/worker/containment.ts";
import { findExecutable, startCommand } from "../lib/worker/executor.ts";
import { libcSpawner } from "../lib/worker/libc_spawn.ts";
import { readCpuTimes } from "./util.ts";

/** The ways of running the same N commands (or, for `store`, none). */
export const FLOOR_MODES = ["executor", "executor-no-cgroup", "spawn", "setsid", "bare"] as const;
/** One of {@linkcode FLOOR_MODES}, or `store`. */
export type FloorMode = typeof FLOOR_MODES[number] | "store";

/** What one launch floor run prints. */
export interface LaunchFloor {
  ms: number;
  /** CPU of this process over all runs (its start-up left out), in clock ticks. */
  ownTicks: number;
  /** CPU of the processes it started, over all runs, in clock ticks. */
  childTicks: number;
}

const [n, lanes] = Deno.args.slice(0, 2).map(Number);
const runsDir = Deno.args[2];
const mode = Deno.args[3];
const shell_ = findExecutable("sh") ?? "sh";
const environment = Deno.env.toObject();
const setsid = findExecutable("setsid") ?? "setsid";
const cgroups = mode === "executor" ? probeRunCgroups().folder : null;

/** The fast launcher's `sh -c true`, nothing more. */
async function spawnOnce(index: number): Promise<void> {
  const { spawner, problem } = libcSpawner();
  if (spawner === null) throw new Error(`no fast launcher: ${problem}`);
  const shell = spawner.spawn({
    program: shell_,
    args: ["-c", "true"],
    cwd: runsDir,
    env: environment,
    onStdout() {},
    onStderr() {},
  });
  const { code } = await shell.status;
  await shell.reading;
  if (code !== 0) throw new Error(`run ${index} exited with ${code}`);
}

async function runOnce(lane: number, index: number): Promise<void> {
  if (mode === "spawn") return await spawnOnce(index);
  if (mode === "bare" || mode === "setsid") {
    const [program, args] = mode === "bare"
      ? [shell_, ["-c", "true"]]
      : [setsid, [shell_, "-c", "true"]];
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
    cgroups,
  }).done;
  if (result.exitCode !== 0) throw new Error(`run ${index} exited with ${result.exitCode}`);
  Deno.removeSync(statusFile);
}

/**
 * A lane's work in the store for N jobs, with no command run: the claim of
 * the first, then each outcome recorded with the next claim in one write.
 */
async function storeOnly(): Promise<void> {
  const store = await openSqliteStore(`${runsDir}/store.db`);
  let job = await store.claim("floor", Date.now());
  for (let done = 0; done < n; done++) {
    if (job === undefined) throw new Error(`only ${done} of ${n} jobs claimed`);
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
  await store.close();
}

if (import.meta.main) {
  if (![...FLOOR_MODES, "store"].includes(mode)) throw new Error(`unknown mode ${mode}`);
  let next = 0;
  const before = readCpuTimes(Deno.pid);
  const started = performance.now();
  if (mode === "store") {
    await storeOnly();
  } else {
    await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        while (next < n) await runOnce(lane, next++);
      }),
    );
  }
  const ms = performance.now() - started;
  const cpu = readCpuTimes(Deno.pid);
  const floor: LaunchFloor = {
    ms,
    ownTicks: cpu.own - before.own,
    childTicks: cpu.children - before.children,
  };
  console.log(JSON.stringify(floor));
}
