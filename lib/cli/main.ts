/**
 * The command-line front door: finds the command, parses its options, and
 * runs it. Errors are turned into exit codes by `main.ts`.
 *
 * @module
 */

import { resolveDbPath } from "../db_path.ts";
import { UsageError } from "../errors.ts";
import { openStore } from "../store/mod.ts";
import { type OptionSpecs, parseArgs } from "./args.ts";
import { type CommandDefinition, COMMANDS, GLOBAL_OPTIONS } from "./commands.ts";

/** The version `--version` prints. */
export const VERSION = "0.1.0";

function optionLines(specs: OptionSpecs): string[] {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : "    "}--${name}${
      spec.value ? ` ${spec.value}` : ""
    }`;
    return [flag, spec.description];
  });
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`);
}

function commandHelp(def: CommandDefinition): string {
  const usage = `Usage: queuectl ${def.path.join(" ")}${def.args ? ` ${def.args}` : ""} [options]`;
  return [
    usage,
    "",
    def.summary.charAt(0).toUpperCase() + def.summary.slice(1) + ".",
    ...(def.details ?? []),
    "",
    "Options:",
    ...optionLines({ ...def.options, ...GLOBAL_OPTIONS }),
  ].join("\n");
}

function topHelp(commands = COMMANDS, title?: string): string {
  const rows = commands.map((def) => [`${def.path.join(" ")} ${def.args}`.trim(), def.summary]);
  const width = Math.max(...rows.map(([name]) => name.length));
  return [
    title ?? `queuectl ${VERSION}: a durable background job queue for shell commands`,
    "",
    "Usage: queuectl <command> [options]",
    "",
    "Commands:",
    ...rows.map(([name, summary]) => `  ${name.padEnd(width)}  ${summary}`),
    "",
    "Global options:",
    ...optionLines({
      ...GLOBAL_OPTIONS,
      version: { type: "boolean", short: "V", description: "print the version" },
    }),
    "",
    "Run 'queuectl <command> --help' for a command's options.",
  ].join("\n");
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
    } else throw new UsageError(`unknown option '${arg}'`);
  }
  return { db, help, version, rest: argv.slice(i) };
}

/** Finds the command named at the start of `words`, or explains what is missing. */
function findCommand(words: readonly string[]): { def: CommandDefinition; rest: string[] } | {
  group: string;
} {
  const [first, second] = words;
  const family = COMMANDS.filter((def) => def.path[0] === first);
  if (family.length === 0) {
    throw new UsageError(`unknown command '${first}' (run 'queuectl --help' for the list)`);
  }
  const single = family.find((def) => def.path.length === 1);
  if (single) return { def: single, rest: words.slice(1) };
  if (second === undefined || second.startsWith("-")) return { group: first };
  const def = family.find((d) => d.path[1] === second);
  if (!def) {
    const known = family.map((d) => d.path[1]).join(", ");
    throw new UsageError(`unknown command '${first} ${second}' (known: ${known})`);
  }
  return { def, rest: words.slice(2) };
}

/** Runs the CLI with `argv` (without the program name); resolves with the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const leading = leadingOptions(argv);
  if (leading.version) {
    console.log(`queuectl ${VERSION}`);
    return 0;
  }
  let words = leading.rest;
  let help = leading.help;
  if (words[0] === "help") {
    help = true;
    words = words.slice(1);
  }
  if (words.length === 0) {
    if (help) {
      console.log(topHelp());
      return 0;
    }
    throw new UsageError("missing command (run 'queuectl --help' for the list)");
  }
  const found = findCommand(words);
  if ("group" in found) {
    const family = COMMANDS.filter((def) => def.path[0] === found.group);
    const wantsHelp = help || words.slice(1).some((w) => w === "--help" || w === "-h");
    if (wantsHelp) {
      console.log(
        topHelp(family, `queuectl ${found.group}: ${family.map((d) => d.path[1]).join(", ")}`),
      );
      return 0;
    }
    throw new UsageError(
      `'${found.group}' needs a subcommand: ${family.map((d) => d.path[1]).join(", ")}`,
    );
  }
  const { def, rest } = found;
  const args = parseArgs(rest, { ...def.options, ...GLOBAL_OPTIONS });
  if (help || args.options.help) {
    console.log(commandHelp(def));
    return 0;
  }
  if (def.args === "" && args.positionals.length > 0) {
    throw new UsageError(
      `${def.path.join(" ")} takes no arguments (got '${args.positionals[0]}')`,
    );
  }
  const dbPath = resolveDbPath((args.options.db as string | undefined) ?? leading.db);
  const module = await def.load();
  return await module.run({
    path: def.path,
    args,
    dbPath,
    openStore: () => openStore(dbPath),
  });
}
