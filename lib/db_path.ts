/**
 * Where the queue database lives when `--db` is not given.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

/**
 * The database path: `--db`, else `$QUEUECTL_DB`, else
 * `$XDG_DATA_HOME/queuectl/queue.db`, else `~/.local/share/queuectl/queue.db`.
 * A relative path is resolved against the current directory, so that Web
 * Workers and later commands agree on the file.
 *
 * @throws {UsageError} for an empty `--db`: most likely `--db "$DB"` with
 * `DB` unset, so neither the current directory nor the default queue is meant
 */
export function resolveDbPath(flag: string | undefined): string {
  if (flag === "") throw new UsageError("--db: the path is empty");
  const env = (name: string) => {
    const value = Deno.env.get(name);
    return value === undefined || value === "" ? undefined : value;
  };
  let path = flag ?? env("QUEUECTL_DB");
  if (path === undefined) {
    const dataHome = env("XDG_DATA_HOME") ??
      `${env("HOME") ?? env("USERPROFILE") ?? "."}/.local/share`;
    path = `${dataHome}/queuectl/queue.db`;
  }
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
}
