/**
 * `queuectl logs`: the output of a job's latest run, or with `--follow` the
 * output of its runs as they happen.
 *
 * @module
 */

import { JobNotFoundError } from "../../errors.ts";
import type { CommandContext } from "../commands.ts";
import { followJob, interruptOnSignals, isFinished, printFinishedOutput } from "../follow.ts";
import { writeErr } from "../output.ts";
import { singleId } from "./show.ts";

/** Runs `logs`: the job's stdout goes to stdout, its stderr to stderr, byte for byte. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const id = singleId(args.positionals, "logs");
  const store = await openStore();
  try {
    const job = await store.getJob(id);
    if (!job) throw new JobNotFoundError(id);
    if (args.options.follow && !isFinished(job)) {
      if (job.state !== "processing") {
        writeErr(`queuectl: job '${id}' is ${job.state}; waiting for it to run\n`);
      }
      const interrupt = interruptOnSignals();
      try {
        const finished = await followJob(store, id, { signal: interrupt.signal });
        return finished ? 0 : interrupt.exitCode();
      } finally {
        interrupt.dispose();
      }
    }
    const output = await store.latestOutput(id);
    if (!output) {
      writeErr(`queuectl: job '${id}' has no finished run yet (state: ${job.state})\n`);
      return 0;
    }
    printFinishedOutput(output);
    return 0;
  } finally {
    await store.close();
  }
}
