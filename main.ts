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

/**
 * The arguments exactly as given. Deno drops a trailing carriage return from
 * each argument (meant for CRLF shebang lines), which would silently change
 * an id or a command; on Linux the untouched arguments are read back from
 * /proc and used wherever they differ from Deno.args only by that.
 */
function exactArgs(): string[] {
  const args = Deno.args;
  if (Deno.build.os !== "linux" || args.length === 0) return args;
  try {
    const raw = Deno.readTextFileSync("/proc/self/cmdline").split("\0").slice(0, -1);
    const tail = raw.slice(-args.length);
    const matches = tail.length === args.length &&
      tail.every((arg, i) => arg === args[i] || arg.replace(/\r+$/, "") === args[i]);
    return matches ? tail : args;
  } catch {
    return args;
  }
}

/** Runs the CLI and maps every error to one line on stderr and an exit code. */
async function main(): Promise<number> {
  try {
    return await runCli(exactArgs());
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
