/**
 * Builds the release bundle, and with `--compile` the release binary from it.
 *
 *     deno task bundle                    # bundle/: main.js, core.js, an entry per module loaded when needed, chunks
 *     deno task compile [--target T] [--output PATH]   # the bundle, then ./queuectl (or PATH) from it
 *
 * `--outdir DIR` writes the bundle into DIR instead of bundle/ (tests build their own).
 *
 * Why a bundle: under `deno run` or in a binary, each module costs start-up
 * time of its own (about 0.1 ms here), and queuectl's source is split into
 * small modules for its readers; `enqueue` reaches 40 of them. The bundle
 * keeps the modules that load only when needed apart (each command, help,
 * the PostgreSQL backend, the Web Worker: lib/module_urls.ts), with the code
 * they share in chunks; then the chunks that start-up and `enqueue` load are
 * folded into one file, core.js (tools/bundle_merge.ts), and the functions a
 * single `enqueue` runs (tools/startup_profile.ts runs the bundle once to
 * learn them) are marked for V8 to compile with their file, so that Deno's
 * code cache keeps them (tools/eager_compile.ts). `enqueue` then runs three
 * files of ours instead of thirty and compiles next to nothing. The npm
 * packages stay outside (deno.json's import map resolves them, and the
 * binary embeds them): bundled, their CommonJS shim would load Node's module
 * system at every start.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { COMMANDS_FOLDER, ON_DEMAND_MODULES } from "../lib/module_urls.ts";
import { markEagerFunctions } from "./eager_compile.ts";
import { findImportCycle, mergeStartupChunks } from "./bundle_merge.ts";
import { profileEnqueue } from "./startup_profile.ts";

// A path of this system's own form (a URL's pathname is not one on Windows).
const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** The bundle's entry points, relative to the project: main.ts and every module loaded when needed. */
export function bundleEntries(): string[] {
  const commands = [...Deno.readDirSync(`${ROOT}${COMMANDS_FOLDER}`)]
    .filter((entry) => entry.isFile && entry.name.endsWith(".ts"))
    .map((entry) => `${COMMANDS_FOLDER}/${entry.name}`)
    .sort();
  return ["main.ts", ...commands, ...ON_DEMAND_MODULES.map((path) => `${path}.ts`)];
}

async function deno(args: string[]): Promise<void> {
  const { code } = await new Deno.Command(Deno.execPath(), { args, cwd: ROOT }).spawn().status;
  if (code !== 0) throw new Error(`deno ${args[0]} exited with ${code}`);
}

/** Writes the bundle into `outdir` (emptied first, so no stale chunk is left in it). */
export async function bundle(outdir: string): Promise<void> {
  await Deno.remove(outdir, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const external = Object.keys(config.imports ?? {}).flatMap((name) => ["--external", name]);
  await deno([
    "bundle",
    "--quiet",
    "--platform=deno",
    "--code-splitting",
    ...external,
    `--outdir=${outdir}`,
    ...bundleEntries(),
  ]);
  await finish(outdir);
}

/** The paths of the JavaScript files under `dir`. */
function scriptsUnder(dir: string): string[] {
  return [...Deno.readDirSync(dir)].flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) return scriptsUnder(path);
    return entry.isFile && entry.name.endsWith(".js") ? [path] : [];
  });
}

/** The files whose imports start-up loads: folded into one (tools/bundle_merge.ts). */
const STARTUP_ROOTS = ["main.js", `${COMMANDS_FOLDER}/enqueue.js`];

/**
 * Folds the chunks that start-up loads into one file (tools/bundle_merge.ts),
 * then marks the functions a single `enqueue` runs for V8 to compile with
 * their module (tools/startup_profile.ts, tools/eager_compile.ts), after
 * checking that no import cycle could call a function before its new place
 * assigns it.
 */
async function finish(outdir: string): Promise<void> {
  const dir = await Deno.realPath(outdir);
  const before = new Map<string, string>();
  for (const path of scriptsUnder(dir)) before.set(path, await Deno.readTextFile(path));
  const files = mergeStartupChunks(dir, before, STARTUP_ROOTS.map((path) => `${dir}/${path}`));
  const cycle = findImportCycle(files);
  if (cycle) throw new Error(`the bundle's imports go round in a cycle: ${cycle.join(" -> ")}`);
  for (const path of before.keys()) if (!files.has(path)) await Deno.remove(path);
  for (const [path, code] of files) await Deno.writeTextFile(path, code);
  const run = await profileEnqueue(dir, `${ROOT}deno.json`);
  for (const [path, ends] of run) {
    await Deno.writeTextFile(path, markEagerFunctions(files.get(path)!, ends));
  }
}

if (import.meta.main) {
  const args = [...Deno.args];
  let outdir = `${ROOT}bundle`;
  const at = args.indexOf("--outdir");
  if (at !== -1) [, outdir] = args.splice(at, 2);
  const compile = args[0] === "--compile";
  if (compile) args.shift();
  else if (args.length > 0) throw new Error(`unexpected arguments: ${args.join(" ")}`);
  await bundle(outdir);
  if (compile) {
    const output = args.includes("--output") ? [] : ["--output", `${ROOT}queuectl`];
    // The configuration named, for a bundle outside the project too: its import map resolves the
    // npm packages, which the binary embeds.
    await deno([
      "compile",
      "-A",
      // Only the npm packages the program imports: deno.lock also holds those of the tests.
      "--exclude-unused-npm",
      `--config=${ROOT}deno.json`,
      `--include=${outdir}`,
      ...output,
      ...args,
      `${outdir}/main.js`,
    ]);
  }
}
