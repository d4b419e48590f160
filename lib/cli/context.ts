/**
 * What a command's `run` receives, apart from the command table
 * (commands.ts) so that command modules, which the table loads, do not
 * import the table back.
 *
 * @module
 */

import type { DbLocation } from "../db_location.ts";
import type { Store } from "../store/store.ts";
import type { ParsedArgs } from "./args.ts";

/** What a command's `run` receives. */
export interface CommandContext {
  /** The words that named the command, e.g. `["config", "get"]`. */
  path: readonly string[];
  args: ParsedArgs;
  /** Where the queue database is: `--db`, `QUEUECTL_DB` or the default, parsed once. */
  location: DbLocation;
  /** Opens the queue database at `location` (created on first use). */
  openStore(): Promise<Store>;
}

/** A command module: `run` returns the exit code. */
export interface CommandModule {
  run(context: CommandContext): Promise<number>;
}
