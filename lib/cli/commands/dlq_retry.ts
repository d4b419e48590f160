/**
 * `queuectl dlq retry`: dead jobs start over.
 *
 * @module
 */

import { UsageError } from "../../errors.ts";
import type { CommandContext } from "../context.ts";
import { writeErr, writeOut } from "../output.ts";

/** Runs `dlq retry`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const all = args.options.all === true;
  if (all && args.positionals.length > 0) throw new UsageError("give job ids or --all, not both");
  if (!all && args.positionals.length === 0) {
    throw new UsageError("missing job id: give the ids of dead jobs, or --all");
  }
  const ids = all ? "all" : args.positionals;
  const store = await openStore();
  try {
    const revived = await store.reviveDead(ids, store.now());
    if (revived.length > 0) {
      writeOut(revived.join("\n") + "\n");
      await store.notifier.announce("jobs");
    } else writeErr("the DLQ is empty\n");
    return 0;
  } finally {
    await store.close();
  }
}
