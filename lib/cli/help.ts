/**
 * Help and usage text, all of it made from the command table (and, for
 * settings, from lib/config.ts). Loaded only when help is asked for or a
 * command line stops short, so a command that runs never pays for it.
 *
 * @module
 */

import { describeConfigKeys } from "../config.ts";
import type { OptionSpecs } from "./args.ts";
import {
  type CommandDefinition,
  COMMANDS,
  GLOBAL_OPTIONS,
  GROUP_SUMMARIES,
  type HelpTopic,
  LEADING_OPTIONS,
  SECTIONS,
} from "./commands.ts";

/** Rows of cells as lines: every column but the last padded to its widest cell. */
function columns(rows: readonly (readonly string[])[], indent = "  "): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) =>
    indent + row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i])).join("  ")
  );
}

function optionLines(specs: OptionSpecs): string[] {
  return columns(
    Object.entries(specs).map(([name, spec]) => [
      `${spec.short ? `-${spec.short}, ` : "    "}--${name}${spec.value ? ` ${spec.value}` : ""}`,
      spec.description,
    ]),
  );
}

function sentence(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1) + ".";
}

function usageName(def: CommandDefinition): string {
  return `${def.path.join(" ")} ${def.args}`.trim();
}

const TOPICS: Record<HelpTopic, () => string[]> = {
  "config-keys": () => [
    "Keys:",
    ...columns([
      ["KEY", "VALUE", "DEFAULT", "MEANING"],
      ...describeConfigKeys().map((key) => [key.key, key.value, key.default, key.description]),
    ]),
    "A key may be written with '_' for '-', as in the JSON job spec: max_retries.",
  ],
};

/** The help of one command: usage, what it does, every option it takes. */
export function commandHelp(def: CommandDefinition): string {
  const topics = (def.topics ?? []).flatMap((topic) => ["", ...TOPICS[topic]()]);
  return [
    `Usage: queuectl ${usageName(def)} [options]`,
    "",
    sentence(def.summary),
    ...(def.details ?? []),
    "",
    "Options:",
    ...optionLines({ ...def.options, ...GLOBAL_OPTIONS }),
    ...topics,
  ].join("\n");
}

/** The help of a command group such as `worker`: its subcommands, each with its summary. */
export function groupHelp(group: string): string {
  const family = COMMANDS.filter((def) => def.path[0] === group);
  return [
    `Usage: queuectl ${group} <command> [options]`,
    "",
    sentence(GROUP_SUMMARIES[group]),
    "",
    "Commands:",
    ...columns(family.map((def) => [`${def.path[1]} ${def.args}`.trim(), def.summary])),
    "",
    "Options:",
    ...optionLines(GLOBAL_OPTIONS),
    "",
    `Run 'queuectl ${group} <command> --help' (or 'queuectl help ${group} <command>') for its options.`,
  ].join("\n");
}

/** The top-level help: every command with its summary, by section, and the global options. */
export function topHelp(version: string): string {
  const rows = COMMANDS.map((def) => [usageName(def), def.summary]);
  // One set of columns for every section, so that the summaries line up from top to bottom.
  const lines = columns(rows);
  const sections = (Object.keys(SECTIONS) as (keyof typeof SECTIONS)[]).flatMap((section) => {
    const members = lines.filter((_, i) => COMMANDS[i].section === section);
    return members.length === 0 ? [] : ["", `${SECTIONS[section]}:`, ...members];
  });
  return [
    `queuectl ${version}: a durable background job queue for shell commands`,
    "",
    "Usage: queuectl <command> [<arguments>] [options]",
    ...sections,
    "",
    "Global options:",
    ...optionLines(LEADING_OPTIONS),
    "",
    "Run 'queuectl <command> --help' (or 'queuectl help <command>') for its arguments and options.",
  ].join("\n");
}
