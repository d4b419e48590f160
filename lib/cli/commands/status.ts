/**
 * `queuectl status`: jobs by state and the live workers.
 *
 * @module
 */

import { isoTime } from "../../job.ts";
import { JOB_STATES } from "../../states.ts";
import { isWorkerAlive } from "../../worker/rescuer.ts";
import type { CommandContext } from "../commands.ts";
import { humanTime, printJson, writeOut } from "../output.ts";

/** Runs `status`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const store = await openStore();
  try {
    const counts = await store.countByState();
    const now = Date.now();
    const { leaseTimeoutMs } = await store.getConfig();
    const workers = (await store.listWorkers()).filter((w) =>
      isWorkerAlive(w, now, leaseTimeoutMs)
    );
    if (args.options.json) {
      printJson({
        jobs: counts,
        workers: workers.map((w) => ({
          id: w.id,
          pid: w.pid,
          host: w.host,
          threads: w.threads,
          started_at: isoTime(w.startedAt),
          heartbeat_at: isoTime(w.heartbeatAt),
          stopping: w.stopRequested,
        })),
      });
      return 0;
    }
    const width = Math.max(...JOB_STATES.map((s) => s.length));
    const lines = ["Jobs:", ...JOB_STATES.map((s) => `  ${s.padEnd(width)}  ${counts[s]}`)];
    const threads = workers.reduce((sum, w) => sum + w.threads, 0);
    lines.push(
      "",
      `Workers: ${workers.length} process${
        workers.length === 1 ? "" : "es"
      }, ${threads} running jobs at most`,
    );
    for (const w of workers) {
      lines.push(
        `  ${w.id}  pid ${w.pid} on ${w.host}, ${w.threads} worker${
          w.threads === 1 ? "" : "s"
        }, since ${humanTime(w.startedAt)}${w.stopRequested ? " (stopping)" : ""}`,
      );
    }
    writeOut(lines.join("\n") + "\n");
    return 0;
  } finally {
    await store.close();
  }
}
