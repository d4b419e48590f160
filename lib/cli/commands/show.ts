/**
 * `queuectl show`: every field of one job.
 *
 * @module
 */

import { JobNotFoundError, UsageError } from "../../errors.ts";
import { jobToJson } from "../../job.ts";
import type { CommandContext } from "../commands.ts";
import { printJson, writeOut } from "../output.ts";

/** Reads the single `<id>` argument of a command. */
export function singleId(positionals: string[], command: string): string {
  if (positionals.length === 0) throw new UsageError(`missing job id: queuectl ${command} <id>`);
  if (positionals.length > 1) throw new UsageError(`${command} takes one job id`);
  return positionals[0];
}

/** Runs `show`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const id = singleId(args.positionals, "show");
  const store = await openStore();
  try {
    const job = await store.getJob(id);
    if (!job) throw new JobNotFoundError(id);
    const fields = jobToJson(job);
    if (args.options.json) {
      printJson(fields);
      return 0;
    }
    const width = Math.max(...Object.keys(fields).map((k) => k.length));
    const lines = Object.entries(fields).map(([key, value]) =>
      `${key.padEnd(width)}  ${value === null ? "-" : String(value)}`
    );
    writeOut(lines.join("\n") + "\n");
    return 0;
  } finally {
    await store.close();
  }
}
