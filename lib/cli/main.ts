/**
 * The command-line front door: finds the command, parses its options, and
 * runs it. Errors are turned into exit codes by `main.ts`.
 *
 * @module
 */

import { resolveDbLocation } from "../db_location.ts";
import { UsageError } from "../errors.ts";
import { moduleUrl } from "../module_urls.ts";
import { openStore } from "../store/mod.ts";
import { type OptionSpecs, parseArgs, type ParsedArgs, UnknownOptionError } from "./args.ts";
import { type CommandDefinition, COMMANDS, GLOBAL_OPTIONS, LEADING_OPTIONS } from "./commands.ts";

/**
 * This queuectl's version: deno.json's `version`, the one place it is set.
 * Read only by `--version` and the help, so that other commands do not load
 * deno.json as a module at start-up (about 0.1 ms); a literal specifier, so
 * that `deno compile` embeds it.
 */
async function version(): Promise<string> {
  return (await import("../../deno.json", { with: { type: "json" } })).default.version;
}

/**
 * What `--version` prints: queuectl's version, then the Deno runtime and the
 * target it runs as, which tell a compiled binary's build apart from another.
 */
export async function versionLine(): Promise<string> {
  return `queuectl ${await version()} (deno ${Deno.version.deno}, ${Deno.build.target})`;
}

/**
 * Loads the help text (lib/cli/help.ts) or the suggestions for refused words
 * (lib/cli/suggest.ts): only help and error paths need them, so they are
 * loaded by URLs built at run time (see lib/module_urls.ts).
 */
function loadHelp(): Promise<typeof import("./help.ts")> {
  return import(moduleUrl("lib/cli/help"));
}

function loadSuggest(): Promise<typeof import("./suggest.ts")> {
  return import(moduleUrl("lib/cli/suggest"));
}

/** Adds a suggestion to an unknown-option error; returns any other error as it is. */
async function explained(error: unknown, specs: OptionSpecs, help: string): Promise<unknown> {
  if (!(error instanceof UnknownOptionError)) return error;
  return (await loadSuggest()).unknownOptionError(error.option, Object.keys(specs), help);
}

/** A shell command given to `enqueue` as several words: say how to quote it, with the user's own words. */
function unquotedCommand(words: readonly string[]): UsageError {
  const command = words.join(" ");
  const quoted = command.includes("'") ? JSON.stringify(command) : `'${command}'`;
  return new UsageError(
    `enqueue takes one spec: quote the whole command, e.g. ${`queuectl enqueue ${quoted}`}`,
  );
}

/** Splits off the options that may come before the command word. */
function leadingOptions(argv: readonly string[]) {
  let db: string | undefined;
  let help = false;
  let version = false;
  let i = 0;
  for (; i < argv.length && argv[i].startsWith("-"); i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") help = true;
    else if (arg === "--version" || arg === "-V") version = true;
    else if (arg.startsWith("--db=")) db = arg.slice(5);
    else if (arg === "--db") {
      db = argv[++i];
      if (db === undefined) throw new UsageError("option '--db' needs a value");
    } else throw new UnknownOptionError(arg.split("=")[0]);
  }
  return { db, help, version, rest: argv.slice(i) };
}

/** Finds the command named at the start of `words`: a command, a group, or nothing. */
function findCommand(
  words: readonly string[],
): { def: CommandDefinition; rest: string[] } | { group: string } | undefined {
  const [first, second] = words;
  const family = COMMANDS.filter((def) => def.path[0] === first);
  if (family.length === 0) return undefined;
  const single = family.find((def) => def.path.length === 1);
  if (single) return { def: single, rest: words.slice(1) };
  if (second === undefined || second.startsWith("-")) return { group: first };
  const def = family.find((d) => d.path[1] === second);
  return def && { def, rest: words.slice(2) };
}

/** Runs the CLI with `argv` (without the program name); resolves with the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  let leading: ReturnType<typeof leadingOptions>;
  try {
    leading = leadingOptions(argv);
  } catch (error) {
    throw await explained(error, LEADING_OPTIONS, "queuectl --help");
  }
  if (leading.version) {
    console.log(await versionLine());
    return 0;
  }
  let words = leading.rest;
  let help = leading.help;
  if (words[0] === "help") {
    help = true;
    words = words.slice(1);
  }
  if (words.length === 0) {
    // Bare `queuectl` lists what there is to run, as git and cargo do; on stderr with exit 2, as
    // a usage error, so that a script that forgot its command does not read help as output.
    const text = (await loadHelp()).topHelp(await version());
    if (help) console.log(text);
    else console.error(text);
    return help ? 0 : 2;
  }
  const found = findCommand(words);
  if (found === undefined) throw (await loadSuggest()).unknownCommandError(words, COMMANDS);
  if ("group" in found) {
    // A group without its subcommand (`queuectl worker`) shows the subcommands, as bare queuectl does.
    let groupArgs: ParsedArgs;
    try {
      groupArgs = parseArgs(words.slice(1), GLOBAL_OPTIONS);
    } catch (error) {
      throw await explained(error, GLOBAL_OPTIONS, `queuectl ${found.group} --help`);
    }
    const wantsHelp = help || groupArgs.options.help === true;
    // `queuectl worker --db q.db stop`: a subcommand after an option is still the one meant, not
    // a reason to print the usage as if none had been given.
    const [sub] = groupArgs.positionals;
    if (sub !== undefined) {
      const def = COMMANDS.find((d) => d.path[0] === found.group && d.path[1] === sub);
      if (def === undefined) {
        throw (await loadSuggest()).unknownCommandError([found.group, sub], COMMANDS);
      }
      if (wantsHelp) {
        console.log((await loadHelp()).commandHelp(def));
        return 0;
      }
      throw new UsageError(
        `the subcommand comes before its options: queuectl ${def.path.join(" ")} [options]`,
      );
    }
    const text = (await loadHelp()).groupHelp(found.group);
    if (wantsHelp) console.log(text);
    else console.error(text);
    return wantsHelp ? 0 : 2;
  }
  const { def, rest } = found;
  const specs = { ...def.options, ...GLOBAL_OPTIONS };
  let args: ParsedArgs;
  try {
    args = parseArgs(rest, specs);
  } catch (error) {
    // `queuectl enqueue ls -l`, as task-spooler and pueue take it: the option is the command's.
    if (error instanceof UnknownOptionError && def.path[0] === "enqueue" && rest[0] !== undefined) {
      if (!rest[0].startsWith("-")) throw unquotedCommand(rest);
    }
    throw await explained(error, specs, `queuectl ${def.path.join(" ")} --help`);
  }
  if (def.path[0] === "enqueue" && args.positionals.length > 1) {
    throw unquotedCommand(args.positionals);
  }
  if (help || args.options.help) {
    console.log((await loadHelp()).commandHelp(def));
    return 0;
  }
  if (def.args === "" && args.positionals.length > 0) {
    throw new UsageError(
      `${def.path.join(" ")} takes no arguments (got '${args.positionals[0]}')`,
    );
  }
  const location = resolveDbLocation((args.options.db as string | undefined) ?? leading.db);
  const module = await def.load();
  return await module.run({
    path: def.path,
    args,
    location,
    openStore: () => openStore(location),
  });
}
