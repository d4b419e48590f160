/**
 * `queuectl worker start`: runs workers in the foreground.
 *
 * @module
 */

import { UsageError } from "../../errors.ts";
import { parseCount } from "../../numbers.ts";
import { checkQueueName } from "../../spec.ts";
import { runWorkers } from "../../worker/supervisor.ts";
import type { CommandContext } from "../commands.ts";

/** The most Web Workers one process runs: each costs about 10 MB and a thread. */
export const MAX_WORKER_COUNT = 256;

/** Runs `worker start`. */
export async function run({ args, dbPath, openStore }: CommandContext): Promise<number> {
  const count = args.options.count === undefined
    ? 1
    : parseCount(args.options.count as string, "--count");
  if (count < 1 || count > MAX_WORKER_COUNT) {
    throw new UsageError(`--count: must be from 1 to ${MAX_WORKER_COUNT}`);
  }
  const once = args.options.once === true;
  if (once && count > 1) {
    throw new UsageError("--once runs one job: it cannot take --count above 1");
  }
  const queueList = args.options.queue as string | undefined;
  const queues = queueList === undefined
    ? undefined
    : [...new Set(queueList.split(",").map((name) => checkQueueName(name, "--queue")))];
  const store = await openStore();
  try {
    return await runWorkers({
      store,
      dbPath,
      count,
      drain: args.options.drain === true,
      once,
      queues,
    });
  } finally {
    await store.close();
  }
}
