/**
 * `queuectl dlq list`: the dead-letter queue, with why each job died.
 *
 * @module
 */

import type { CommandContext } from "../context.ts";
import { limitOption, printJobs } from "./list.ts";

/** Runs `dlq list`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const limit = limitOption(args.options.limit);
  const store = await openStore();
  try {
    const jobs = await store.listJobs({ states: ["dead"], limit });
    await printJobs(store, jobs, {
      json: args.options.json === true,
      limit,
      states: ["dead"],
      view: "dlq",
    });
    return 0;
  } finally {
    await store.close();
  }
}
