/**
 * `queuectl retry`: runs finished jobs (completed or dead) again. Their
 * attempts start over; the runs they already had stay in their history.
 *
 * @module
 */

import { UsageError } from "../../errors.ts";
import type { CommandContext } from "../context.ts";
import { writeErr, writeOut } from "../output.ts";

/** Runs `retry`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  if (args.positionals.length === 0) {
    throw new UsageError("missing job id: give the ids of completed or dead jobs");
  }
  const store = await openStore();
  try {
    const ids = await store.rerunJobs(args.positionals, store.now());
    writeOut(ids.join("\n") + "\n");
    for (const id of ids) {
      if ((await store.getJob(id))?.state !== "blocked") continue;
      const after = (await store.getDependencies(id))
        .filter((dependency) => dependency.state !== "completed" && dependency.state !== null)
        .map((dependency) => `'${dependency.id}'`).join(", ");
      writeErr(`job '${id}' is blocked: it runs after ${after}, not yet completed\n`);
    }
    await store.notifier.announce("jobs");
    return 0;
  } finally {
    await store.close();
  }
}
