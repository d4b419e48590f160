/**
 * Printing for people and for scripts. Tables load `cli-table3` lazily, so
 * commands that print none (like `enqueue`) do not pay for it at start-up.
 *
 * @module
 */

import type { JobState } from "../states.ts";

const encoder = new TextEncoder();

/** Writes text to stdout as is, all of it. */
export function writeOut(text: string | Uint8Array): void {
  writeAll(Deno.stdout, typeof text === "string" ? encoder.encode(text) : text);
}

/** Writes text to stderr as is, all of it. */
export function writeErr(text: string | Uint8Array): void {
  writeAll(Deno.stderr, typeof text === "string" ? encoder.encode(text) : text);
}

function writeAll(target: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += target.writeSync(bytes.subarray(offset));
}

/** Prints a value as indented JSON on stdout. */
export function printJson(value: unknown): void {
  writeOut(JSON.stringify(value, null, 2) + "\n");
}

/** Cuts text to `max` characters, ending with `…` when cut, and flattens newlines. */
export function truncate(text: string, max: number): string {
  const flat = text.replace(/\s*\n\s*/g, " ");
  return flat.length <= max ? flat : `${flat.slice(0, Math.max(0, max - 1))}…`;
}

/** Prints rows as a plain table with a header row. */
export async function printTable(head: string[], rows: string[][]): Promise<void> {
  const { default: Table } = await import("cli-table3");
  // Colours off: cli-table3 writes ANSI codes even into pipes and under NO_COLOR.
  const table = new Table({
    head,
    style: { head: [], border: [], compact: true, "padding-left": 0, "padding-right": 2 },
    chars: {
      top: "",
      "top-mid": "",
      "top-left": "",
      "top-right": "",
      bottom: "",
      "bottom-mid": "",
      "bottom-left": "",
      "bottom-right": "",
      left: "",
      "left-mid": "",
      mid: "",
      "mid-mid": "",
      right: "",
      "right-mid": "",
      middle: "",
    },
  });
  table.push(...rows);
  writeOut(table.toString().split("\n").map((line: string) => line.trimEnd()).join("\n") + "\n");
}

/** Formats epoch ms for people: ISO 8601 UTC to the second, or `-`. */
export function humanTime(ms: number | null): string {
  return ms === null ? "-" : new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * Whether to colour what goes to stdout: only on a terminal, and never when
 * `NO_COLOR` is set to anything non-empty (https://no-color.org).
 */
export function useColour(): boolean {
  const noColour = Deno.env.get("NO_COLOR");
  return (noColour === undefined || noColour === "") && Deno.stdout.isTerminal();
}

/** The ANSI colour of each job state on a terminal. */
const STATE_COLOURS: Record<JobState, string> = {
  blocked: "\x1b[35m", // magenta
  pending: "\x1b[36m", // cyan
  processing: "\x1b[34m", // blue
  completed: "\x1b[32m", // green
  failed: "\x1b[33m", // yellow
  dead: "\x1b[31m", // red
};

/** A state name, coloured when `colour` is on. */
export function paintState(state: JobState, colour: boolean): string {
  return colour ? `${STATE_COLOURS[state]}${state}\x1b[0m` : state;
}

/** Columns of the terminal on stdout, or undefined when stdout is not one. */
export function terminalColumns(): number | undefined {
  if (!Deno.stdout.isTerminal()) return undefined;
  try {
    return Deno.consoleSize().columns;
  } catch {
    return undefined;
  }
}

/**
 * A moment relative to `now` for people: "3s ago", "in 2m", "just now".
 * One unit, rounded down, so that columns stay short.
 */
export function relativeTime(ms: number | null, now: number): string {
  if (ms === null) return "-";
  const diff = ms - now;
  const abs = Math.abs(diff);
  if (abs < 1_000) return "just now";
  const units: [number, string][] = [[86_400_000, "d"], [3_600_000, "h"], [60_000, "m"], [
    1_000,
    "s",
  ]];
  const [size, unit] = units.find(([size]) => abs >= size)!;
  const amount = `${Math.floor(abs / size)}${unit}`;
  return diff < 0 ? `${amount} ago` : `in ${amount}`;
}
