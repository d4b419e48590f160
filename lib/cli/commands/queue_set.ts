/**
 * `queuectl queue set <name> [--concurrency N|none] [--rate N/DUR|none]`:
 * a queue's limits (lib/queue_limits.ts), which every worker's next claim
 * obeys.
 *
 * @module
 */

import { UsageError } from "../../errors.ts";
import {
  formatRate,
  parseConcurrency,
  parseRate,
  type QueueLimits,
  type QueueLimitsChange,
} from "../../queue_limits.ts";
import { checkQueueName } from "../../spec.ts";
import type { CommandContext } from "../context.ts";
import { writeOut } from "../output.ts";

/** A queue's limits in words, e.g. `concurrency 3, rate 10/1m`. */
export function describeLimits(limits: QueueLimits): string {
  return [
    `concurrency ${limits.concurrency ?? "none"}`,
    `rate ${limits.rate === null ? "none" : formatRate(limits.rate)}`,
  ].join(", ");
}

/** Runs `queue set`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  if (args.positionals.length !== 1) {
    throw new UsageError(
      `queue set takes one queue name (got ${args.positionals.length})`,
    );
  }
  const name = checkQueueName(args.positionals[0], "queue");
  const change: QueueLimitsChange = {};
  const { concurrency, rate } = args.options;
  if (typeof concurrency === "string") change.concurrency = parseConcurrency(concurrency);
  if (typeof rate === "string") change.rate = parseRate(rate);
  if (Object.keys(change).length === 0) {
    throw new UsageError("queue set: give --concurrency N|none, --rate N/DUR|none, or both");
  }
  const store = await openStore();
  try {
    const limits = await store.setQueueLimits(name, change);
    writeOut(`queue '${name}': ${describeLimits(limits)}\n`);
    // A limit raised or removed may let idle workers take jobs now.
    await store.notifier.announce("jobs");
    return 0;
  } finally {
    await store.close();
  }
}
