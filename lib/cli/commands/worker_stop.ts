/**
 * `queuectl worker stop`: asks every live worker process to finish its
 * current job and exit, and waits until they have.
 *
 * @module
 */

import { parseDuration } from "../../duration.ts";
import { QueueError } from "../../errors.ts";
import { clearGoneWorkers, listLiveWorkers, runsHere } from "../../live_workers.ts";
import type { WorkerRecord } from "../../store/store.ts";
import { pollUntil } from "../../timing.ts";
import type { CommandContext } from "../context.ts";
import { writeErr } from "../output.ts";

const POLL_MS = 100;

/** Runs `worker stop`. */
export async function run({ args, openStore, location }: CommandContext): Promise<number> {
  const timeoutMs = args.options.timeout === undefined
    ? undefined
    : parseDuration(args.options.timeout as string, "--timeout");
  const store = await openStore();
  try {
    const live = await clearGoneWorkers(store, location);
    if (live.length === 0) {
      writeErr("no workers are running\n");
      return 0;
    }
    const ids = live.map((w) => w.id);
    await store.requestWorkerStop(ids);
    writeErr(
      `asked ${ids.length} worker process${
        ids.length === 1 ? "" : "es"
      } to stop; waiting for running jobs to finish\n`,
    );
    let remaining: WorkerRecord[] = live;
    const stopped = await pollUntil(async () => {
      const registered = new Set((await listLiveWorkers(store, store.now())).map((w) => w.id));
      // Gone from the registry, a process of this host may still be closing its connections.
      remaining = live.filter((w) => registered.has(w.id) || runsHere(w));
      return remaining.length === 0;
    }, {
      intervalMs: POLL_MS,
      deadline: timeoutMs === undefined ? undefined : Date.now() + timeoutMs,
    });
    if (!stopped) {
      throw new QueueError(
        `${remaining.length} worker process${
          remaining.length === 1 ? " is" : "es are"
        } still running after the timeout; they will stop after their current jobs`,
      );
    }
    writeErr("all workers stopped\n");
    return 0;
  } finally {
    await store.close();
  }
}
