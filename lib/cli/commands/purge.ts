/**
 * `queuectl purge`: deletes finished jobs to keep the database small.
 *
 * @module
 */

import { parseDuration } from "../../duration.ts";
import { UsageError } from "../../errors.ts";
import { PURGEABLE_STATES } from "../../states.ts";
import { parseStateList } from "../args.ts";
import type { CommandContext } from "../context.ts";
import { writeOut } from "../output.ts";

/** Runs `purge`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const states = args.options.state === undefined
    ? [...PURGEABLE_STATES]
    : parseStateList(args.options.state as string, PURGEABLE_STATES, "purge");
  if (args.options["older-than"] === undefined) {
    throw new UsageError("missing --older-than DUR (use --older-than 0 to purge them all)");
  }
  const olderThanMs = parseDuration(args.options["older-than"] as string, "--older-than");
  const store = await openStore();
  try {
    const purged = await store.purgeJobs(states, store.now() - olderThanMs);
    writeOut(`purged ${purged} job${purged === 1 ? "" : "s"}\n`);
    return 0;
  } finally {
    await store.close();
  }
}
