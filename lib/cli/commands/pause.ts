/**
 * `queuectl pause` and `queuectl resume`: stop and restart the claiming of
 * jobs from one queue. Jobs already running are left to finish.
 *
 * @module
 */

import { UsageError } from "../../errors.ts";
import { checkQueueName, DEFAULT_QUEUE } from "../../spec.ts";
import type { CommandContext } from "../context.ts";
import { humanTime, writeErr, writeOut } from "../output.ts";

/** Runs `pause` or `resume` (or `queue pause`, `queue resume`), whichever `path` names. */
export async function run({ path, args, openStore }: CommandContext): Promise<number> {
  const verb = path[path.length - 1];
  if (args.positionals.length > 1) {
    throw new UsageError(`${verb} takes one queue name (got ${args.positionals.length})`);
  }
  const name = checkQueueName(args.positionals[0] ?? DEFAULT_QUEUE, "queue");
  const store = await openStore();
  try {
    if (verb === "pause") {
      if (await store.pauseQueue(name, store.now())) {
        const running = (await store.listQueues()).find((q) => q.name === name)?.counts
          .processing ?? 0;
        const finishing = running === 0
          ? ""
          : `; ${running} running job${running === 1 ? "" : "s"} will finish`;
        writeOut(`paused queue '${name}': workers take no new jobs from it${finishing}\n`);
      } else {
        const since = (await store.listQueues()).find((q) => q.name === name)?.pausedAt ?? null;
        writeErr(`queue '${name}' is already paused (since ${humanTime(since)})\n`);
      }
      return 0;
    }
    if (await store.resumeQueue(name)) {
      writeOut(`resumed queue '${name}': workers take jobs from it again\n`);
      await store.notifier.announce("jobs");
    } else {
      writeErr(`queue '${name}' is not paused\n`);
    }
    return 0;
  } finally {
    await store.close();
  }
}
