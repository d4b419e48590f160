/**
 * Which functions of the release bundle a single `enqueue` runs, as V8
 * itself reports them: the bundle is run once to create a queue, then once
 * more with V8's function log on (`--log-function-events`), and every
 * function that V8 compiled is named by its file and the offset where its
 * source ends. tools/eager_compile.ts marks those for compilation with their
 * module (see there why). The profiled run compiles everything from source
 * (its V8 flags differ from those Deno's code cache was made with), so the
 * log names what was compiled with each file too: top-level code, and
 * functions already in parentheses, which need no mark.
 *
 * `enqueue` because it is the command that must start fast (issue: a single
 * enqueue within 1.5× of an empty `deno run`); the code the other commands
 * share with it (core.js: tools/bundle_merge.ts) gains as well.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** The functions that ran, by the path of their file: the offsets where each one's source ends. */
export type RunFunctions = Map<string, Set<number>>;

/** The V8 log events that report a function compiled. */
const LAZY_COMPILE_EVENTS = new Set(["parse-function", "interpreter"]);

/** A field of V8's log as written: it spells a comma `\x2C`, and other characters so too. */
function unescapeField(field: string): string {
  return field.replace(
    /\\x([0-9A-Fa-f]{2})|\\u([0-9A-Fa-f]{4})/g,
    (_, byte, unit) => String.fromCharCode(parseInt(byte ?? unit, 16)),
  );
}

/**
 * Reads V8's function log (`--log-function-events`): the functions compiled
 * in scripts whose path starts with `dir`.
 */
export function parseFunctionLog(log: string, dir: string): RunFunctions {
  const scripts = new Map<string, string>();
  const ends = new Map<string, number[]>();
  for (const line of log.split("\n")) {
    const fields = line.split(",");
    if (fields[0] === "script-details" && fields[2]?.startsWith("file://")) {
      scripts.set(fields[1], fileURLToPath(unescapeField(fields[2])));
    } else if (fields[0] === "function" && LAZY_COMPILE_EVENTS.has(fields[1])) {
      const end = Number(fields[4]);
      if (!Number.isInteger(end)) throw new Error(`unexpected line in V8's function log: ${line}`);
      ends.set(fields[2], [...ends.get(fields[2]) ?? [], end]);
    }
  }
  const run: RunFunctions = new Map();
  for (const [script, offsets] of ends) {
    const path = scripts.get(script);
    if (path === undefined || !path.startsWith(dir)) continue;
    const set = run.get(path) ?? new Set();
    for (const offset of offsets) set.add(offset);
    run.set(path, set);
  }
  return run;
}

async function runBundle(args: string[], cwd: string): Promise<void> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`profiling run exited with ${code}: ${new TextDecoder().decode(stderr)}`);
  }
}

/**
 * The functions of the bundle at `dir` (an absolute path; its `main.js`,
 * with the import map of the configuration file `config`) that a single
 * `enqueue` runs, from a queue made for the purpose and removed after.
 */
export async function profileEnqueue(dir: string, config: string): Promise<RunFunctions> {
  const work = await Deno.makeTempDir({ prefix: "queuectl-profile-" });
  try {
    const main = ["run", "-A", `--config=${config}`];
    const enqueue = [`${dir}/main.js`, "--db", `${work}/queue.db`, "enqueue", "true"];
    // The first run creates the queue: a later enqueue, the profiled one, finds it made.
    await runBundle([...main, ...enqueue], work);
    const log = `${work}/v8.log`;
    const flags = `--v8-flags=--log-function-events,--logfile=${log},--no-logfile-per-isolate`;
    await runBundle([...main, flags, ...enqueue], work);
    const run = parseFunctionLog(await Deno.readTextFile(log), `${dir}/`);
    if (!run.has(`${dir}/main.js`)) {
      throw new Error("V8's function log named no function of the bundle's main.js");
    }
    return run;
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
