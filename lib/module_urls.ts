/**
 * Where the modules that queuectl loads only when needed are (a command's
 * logic, help, the PostgreSQL backend, the Web Worker), whether it runs from
 * a checkout or from the release bundle.
 *
 * They are loaded by URLs built at run time rather than by literal
 * `import()`s: `deno run` reads the target of every literal dynamic import
 * with the program, so that each command would pay for all the others at
 * start-up (about 2 ms).
 *
 * In a checkout they are the TypeScript files beside this one. The release
 * bundle (`deno task bundle`, tools/bundle.ts), from which the release binary
 * is compiled, holds one JavaScript entry file per such module at the same
 * path under its root (lib/cli/help.js), and puts code that several entries
 * share, this module's among them, in chunks at that root: so the root is
 * this file's own folder there. tests/bundle_test.ts runs the bundle.
 *
 * @module
 */

const BUNDLED = import.meta.url.endsWith(".js");
// By string, not by `new URL`: the first URL a process parses costs `enqueue` 0.15 ms of start-up.
// This module's URL is a plain file URL ending in /lib/module_urls.ts, or in a chunk's name.
const HERE = import.meta.url.slice(0, import.meta.url.lastIndexOf("/") + 1);
const ROOT = BUNDLED ? HERE : HERE.slice(0, HERE.lastIndexOf("/", HERE.length - 2) + 1);

/** Modules loaded when needed besides the commands (lib/cli/commands/), by their path from the root. */
export const ON_DEMAND_MODULES = [
  "lib/worker/runner",
  "lib/cli/help",
  "lib/cli/suggest",
  "lib/cli/follow",
  "lib/store/pg_store",
  "lib/cron",
] as const;

/** Where the folder of command modules is, by its path from the root. */
export const COMMANDS_FOLDER = "lib/cli/commands";

/**
 * The URL of the module at `path` from the project's root, without its
 * extension: `moduleUrl("lib/cli/help")`.
 */
export function moduleUrl(path: string): string {
  return `${ROOT}${path}.${BUNDLED ? "js" : "ts"}`;
}
