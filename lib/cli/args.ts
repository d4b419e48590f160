/**
 * A small command-line parser: long options with values (`--db x`,
 * `--db=x`), boolean flags, a few short aliases, `--` to end options.
 * Written here rather than taken from `node:util` to keep start-up fast.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { isJobState, JOB_STATES, type JobState } from "../states.ts";

/** One option a command accepts. */
export interface OptionSpec {
  /** `boolean` flags take no value; `string` options take exactly one. */
  type: "boolean" | "string";
  /** A one-letter alias, without the dash. */
  short?: string;
  /** What the value is, for help text, e.g. `N` or `DUR`. */
  value?: string;
  /** One line for help text. */
  description: string;
  /** A `string` option that may be given again and again: its values come as a list. */
  multiple?: boolean;
}

/** A command's options by long name (without dashes). */
export type OptionSpecs = Record<string, OptionSpec>;

/** What {@linkcode parseArgs} found. */
export interface ParsedArgs {
  options: Record<string, string | boolean | undefined>;
  positionals: string[];
  /** Every value of each {@linkcode OptionSpec.multiple} option given, in order; absent if none. */
  lists?: Record<string, string[]>;
}

/**
 * An option the command does not take. It carries the option as typed, so
 * that the CLI can suggest the one meant without slowing down valid commands.
 */
export class UnknownOptionError extends UsageError {
  override name = "UnknownOptionError";
  /** @param option the option as typed, without any `=value`, e.g. `--timout` or `-z` */
  constructor(readonly option: string) {
    super(`unknown option '${option}'`);
  }
}

/**
 * Parses `argv` against `specs`. Options may come before, between or after
 * positionals. An option given twice keeps its last value in `options`;
 * `lists` has every value of one that takes several
 * ({@linkcode OptionSpec.multiple}).
 *
 * @throws {UsageError} for an unknown option, a missing value, or a value given to a flag
 */
export function parseArgs(argv: readonly string[], specs: OptionSpecs): ParsedArgs {
  const options: ParsedArgs["options"] = {};
  const positionals: string[] = [];
  let lists: Record<string, string[]> | undefined;
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(specs)) if (spec.short) byShort.set(spec.short, name);

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let inlineValue: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      inlineValue = eq === -1 ? undefined : arg.slice(eq + 1);
      if (!Object.hasOwn(specs, name)) throw new UnknownOptionError(`--${name}`);
    } else if (/^-[A-Za-z]$/.test(arg)) {
      name = byShort.get(arg[1]);
      if (!name) throw new UnknownOptionError(arg);
    } else {
      positionals.push(arg);
      continue;
    }
    const spec = specs[name];
    if (spec.type === "boolean") {
      if (inlineValue !== undefined) throw new UsageError(`option '--${name}' takes no value`);
      options[name] = true;
      continue;
    }
    if (inlineValue === undefined) {
      const next = argv[i + 1];
      // A value may begin with one dash (so that "-1" reaches the number check), never two.
      if (next === undefined || next.startsWith("--")) {
        throw new UsageError(`option '--${name}' needs a value`);
      }
      inlineValue = next;
      i++;
    }
    options[name] = inlineValue;
    if (spec.multiple) ((lists ??= {})[name] ??= []).push(inlineValue);
  }
  return lists === undefined ? { options, positionals } : { options, positionals, lists };
}

/**
 * Reads a `--state` list such as `completed,dead`: each one of `allowed`,
 * duplicates dropped. Every command that takes `--state` reads it here.
 *
 * @param verb what the command does to the jobs, for the error message
 * @throws {UsageError} naming the first state that is unknown or not allowed
 */
export function parseStateList(
  value: string,
  allowed: readonly JobState[],
  verb: string,
): JobState[] {
  const states = value.split(",").map((s) => s.trim());
  for (const state of states) {
    if (!isJobState(state)) {
      throw new UsageError(
        `--state: unknown state '${state}' (known: ${JOB_STATES.join(", ")}; several: S1,S2)`,
      );
    }
    if (!allowed.includes(state)) {
      throw new UsageError(`--state: cannot ${verb} '${state}' jobs (only ${allowed.join(", ")})`);
    }
  }
  return [...new Set(states)] as JobState[];
}
