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
 *
 * Usage: deno run -A bench/launch_floor.ts N P RUNS_DIR MODE
 *
 * @module
 */

import { probeRunCgroups } from "../lib/worker/containment.ts";
import { findExecutable, startCommand } from "../lib/worker/executor.ts";
import { readCpuTimes } from "./util.ts";

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
const shell = findExecutable("sh") ?? "sh";
const setsid = findExecutable("setsid") ?? "setsid";
const cgroups = mode === "executor" ? probeRunCgroups().folder : null;

async function runOnce(lane: number, index: number): Promise<void> {
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
    cgroups,
  }).done;
  if (result.exitCode !== 0) throw new Error(`run ${index} exited with ${result.exitCode}`);
  Deno.removeSync(statusFile);
}

if (import.meta.main) {
  if (!["executor", "setsid", "bare"].includes(mode)) throw new Error(`unknown mode ${mode}`);
  let next = 0;
  const before = readCpuTimes(Deno.pid);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      while (next < n) await runOnce(lane, next++);
    }),
  );
  const ms = performance.now() - started;
  const cpu = readCpuTimes(Deno.pid);
  const floor: LaunchFloor = {
    ms,
    ownTicks: cpu.own - before.own,
    childTicks: cpu.children - before.children,
  };
  console.log(JSON.stringify(floor));
}
