/**
 * queuectl: a durable background job queue for shell commands.
 *
 * Run `deno run -A main.ts --help` from a checkout, or `./queuectl --help`
 * once compiled.
 *
 * @module
 */

import { runCli } from "./lib/cli/main.ts";
import { QueueError, UsageError } from "./lib/errors.ts";

/** Runs the CLI and maps every error to one line on stderr and an exit code. */
async function main(): Promise<number> {
  try {
    return await runCli(Deno.args);
  } catch (error) {
    if (error instanceof Deno.errors.BrokenPipe) return 0;
    const message = error instanceof Error ? error.message : String(error);
    const firstLine = message.split("\n")[0];
    if (error instanceof UsageError) {
      console.error(`queuectl: ${firstLine}`);
      return 2;
    }
    console.error(`queuectl: ${error instanceof QueueError ? "" : "error: "}${firstLine}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main());
