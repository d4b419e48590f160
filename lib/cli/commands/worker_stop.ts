/**
 * `queuectl worker stop`: asks every live worker process to finish its
 * current job and exit, and waits until they have.
 *
 * @module
 */

import { parseDuration } from "../../duration.ts";
import { QueueError } from "../../errors.ts";
import { isWorkerAlive, pruneDeadWorkers } from "../../worker/rescuer.ts";
import { runsDirOf } from "../../worker/wake.ts";
import type { CommandContext } from "../commands.ts";
import { writeErr } from "../output.ts";

const POLL_MS = 100;

/** Runs `worker stop`. */
export async function run({ args, openStore, dbPath }: CommandContext): Promise<number> {
  const timeoutMs = args.options.timeout === undefined
    ? undefined
    : parseDuration(args.options.timeout as string, "--timeout");
  const store = await openStore();
  try {
    const live = await pruneDeadWorkers(store, runsDirOf(dbPath));
    if (live.length === 0) {
      writeErr("no workers are running\n");
      return 0;
    }
    const ids = live.map((w) => w.id);
    const { leaseTimeoutMs } = await store.getConfig();
    await store.requestWorkerStop(ids);
    writeErr(
      `asked ${ids.length} worker process${
        ids.length === 1 ? "" : "es"
      } to stop; waiting for running jobs to finish\n`,
    );
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    while (true) {
      const now = Date.now();
      const remaining = (await store.listWorkers()).filter((w) =>
        ids.includes(w.id) && isWorkerAlive(w, now, leaseTimeoutMs)
      );
      if (remaining.length === 0) break;
      if (now >= deadline) {
        throw new QueueError(
          `${remaining.length} worker process${
            remaining.length === 1 ? " is" : "es are"
          } still running after the timeout; they will stop after their current jobs`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    writeErr("all workers stopped\n");
    return 0;
  } finally {
    await store.close();
  }
}
