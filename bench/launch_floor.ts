/**
 * The launch path alone: runs `true` N times through the workers' own
 * executor (setsid sh with the status wrapper, output captured), with P
 * lanes and no queue at all. Prints the elapsed ms. This is the ceiling the
 * design's "jobs run through Deno.Command" puts on throughput.
 *
 * With `bare` as a fourth argument it runs plain
 * `new Deno.Command("sh", {args: ["-c", "true"]}).output()` instead: the
 * cheapest spawn Deno offers, with no process group and no status file.
 *
 * Usage: deno run -A bench/launch_floor.ts N P RUNS_DIR [bare]
 *
 * @module
 */

import { startCommand } from "../lib/worker/executor.ts";

const [n, lanes] = Deno.args.slice(0, 2).map(Number);
const runsDir = Deno.args[2];
const bare = Deno.args[3] === "bare";
let next = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: lanes }, async (_, lane) => {
    while (next < n) {
      const index = next++;
      if (bare) {
        const { code } = await new Deno.Command("sh", { args: ["-c", "true"], stdin: "null" })
          .output();
        if (code !== 0) throw new Error(`run ${index} exited with ${code}`);
        continue;
      }
      const statusFile = `${runsDir}/floor-${lane}-${index}`;
      const result = await startCommand({
        command: "true",
        cwd: runsDir,
        env: { QUEUECTL_JOB_ID: `floor-${index}`, QUEUECTL_ATTEMPT: "1" },
        timeoutMs: null,
        statusFile,
      }).done;
      if (result.exitCode !== 0) throw new Error(`run ${index} exited with ${result.exitCode}`);
      Deno.removeSync(statusFile);
    }
  }),
);
console.log((performance.now() - started).toFixed(1));
