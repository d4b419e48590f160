/**
 * `queuectl logs`: the output of a job's latest run.
 *
 * @module
 */

import { JobNotFoundError } from "../../errors.ts";
import type { CommandContext } from "../commands.ts";
import { writeErr, writeOut } from "../output.ts";
import { singleId } from "./show.ts";

/** Runs `logs`: the job's stdout goes to stdout, its stderr to stderr, byte for byte. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const id = singleId(args.positionals, "logs");
  const store = await openStore();
  try {
    const job = await store.getJob(id);
    if (!job) throw new JobNotFoundError(id);
    const output = await store.latestOutput(id);
    if (!output) {
      writeErr(`queuectl: job '${id}' has no finished run yet (state: ${job.state})\n`);
      return 0;
    }
    for (
      const [name, dropped] of [["stdout", output.stdoutDropped], ["stderr", output.stderrDropped]]
    ) {
      if (dropped) {
        writeErr(
          `queuectl: the first ${dropped} bytes of ${name} were dropped; the last 64 KiB are kept\n`,
        );
      }
    }
    writeOut(output.stdout);
    writeErr(output.stderr);
    return 0;
  } finally {
    await store.close();
  }
}
