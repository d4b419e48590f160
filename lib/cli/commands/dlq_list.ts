/**
 * `queuectl dlq list`: the dead-letter queue.
 *
 * @module
 */

import { UsageError } from "../../errors.ts";
import type { CommandContext } from "../commands.ts";
import { limitOption, printJobs } from "./list.ts";

/** Runs `dlq list`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  if (args.positionals.length > 0) {
    throw new UsageError(`dlq list takes no arguments (got '${args.positionals[0]}')`);
  }
  const limit = limitOption(args.options.limit);
  const store = await openStore();
  try {
    const jobs = await store.listJobs({ state: "dead", limit });
    await printJobs(store, jobs, { json: args.options.json === true, limit, state: "dead" });
    return 0;
  } finally {
    await store.close();
  }
}
