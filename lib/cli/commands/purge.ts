/**
 * `queuectl purge`: deletes finished jobs to keep the database small.
 *
 * @module
 */

import { parseDuration } from "../../duration.ts";
import { UsageError } from "../../errors.ts";
import { type JobState, PURGEABLE_STATES } from "../../states.ts";
import type { CommandContext } from "../commands.ts";
import { writeOut } from "../output.ts";

function statesOption(value: string | boolean | undefined): JobState[] {
  if (value === undefined) return [...PURGEABLE_STATES];
  const states = String(value).split(",").map((s) => s.trim());
  for (const state of states) {
    if (!(PURGEABLE_STATES as readonly string[]).includes(state)) {
      throw new UsageError(
        `--state: cannot purge '${state}' jobs (only ${PURGEABLE_STATES.join(" or ")})`,
      );
    }
  }
  return [...new Set(states)] as JobState[];
}

/** Runs `purge`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const states = statesOption(args.options.state);
  if (args.options["older-than"] === undefined) {
    throw new UsageError("missing --older-than DUR (use --older-than 0 to purge them all)");
  }
  const olderThanMs = parseDuration(args.options["older-than"] as string, "--older-than");
  const store = await openStore();
  try {
    const purged = await store.purgeJobs(states, Date.now() - olderThanMs);
    writeOut(`purged ${purged} job${purged === 1 ? "" : "s"}\n`);
    return 0;
  } finally {
    await store.close();
  }
}
