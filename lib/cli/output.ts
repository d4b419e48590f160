/**
 * Printing for people and for scripts. Tables are laid out here, with no
 * table package: the first npm (or Node-compat) import costs a table command
 * more start-up time than all of its own work.
 *
 * Tables follow one policy (see {@linkcode printTable}): on a terminal they
 * are fitted to its width and coloured (unless `NO_COLOR` is set); anywhere
 * else they are plain text with no width limit, only long values (commands,
 * errors) cut at a fixed length, so that piped output is stable. Ids and
 * names are never cut, so that they can always be copied.
 *
 * @module
 */

import { isJobState, type JobState } from "../states.ts";
import { sanitize } from "../text.ts";

import { writeOut } from "./write.ts";

export { sanitize } from "../text.ts";
export { writeErr, writeOut } from "./write.ts";

/** Prints a value as indented JSON on stdout. */
export function printJson(value: unknown): void {
  writeOut(JSON.stringify(value, null, 2) + "\n");
}

const ESC = "\x1b";
const RESET = `${ESC}[0m`;
const BOLD = `${ESC}[1m`;
const DIM = `${ESC}[2m`;

/** An SGR sequence (colours and weights), the only escape that output puts into lines. */
// deno-lint-ignore no-control-regex
const SGR_AT_START = /^\x1b\[[0-9;]*m/;

let segmenter: Intl.Segmenter | undefined;

/** What a cut text ends with. */
const ELLIPSIS = "\u2026";

/**
 * Text of printable ASCII and `…` only: each character is a grapheme of its
 * own, one column wide (none of them joins with a neighbour).
 */
const SIMPLE_TEXT = /^[\x20-\x7e\u2026]*$/;

/** The user-perceived characters of a text (an emoji family or a flag is one). */
function graphemes(text: string): Iterable<string> {
  // Making the first Intl.Segmenter loads ICU data (~10 ms): most tables never need it.
  if (SIMPLE_TEXT.test(text)) return text;
  segmenter ??= new Intl.Segmenter();
  const segments = segmenter.segment(text);
  return {
    *[Symbol.iterator]() {
      for (const { segment } of segments) yield segment;
    },
  };
}

/** Whether a code point takes two columns: East Asian wide and fullwidth forms. */
function isWideCodePoint(code: number): boolean {
  return (code >= 0x1100 && code <= 0x115f) || code === 0x2329 || code === 0x232a ||
    (code >= 0x2e80 && code <= 0x3247 && code !== 0x303f) ||
    (code >= 0x3250 && code <= 0x4dbf) || (code >= 0x4e00 && code <= 0xa4c6) ||
    (code >= 0xa960 && code <= 0xa97c) || (code >= 0xac00 && code <= 0xd7a3) ||
    (code >= 0xf900 && code <= 0xfaff) || (code >= 0xfe10 && code <= 0xfe19) ||
    (code >= 0xfe30 && code <= 0xfe6b) || (code >= 0xff01 && code <= 0xff60) ||
    (code >= 0xffe0 && code <= 0xffe6) || (code >= 0x1b000 && code <= 0x1b001) ||
    (code >= 0x1f200 && code <= 0x1f251) || (code >= 0x20000 && code <= 0x3fffd);
}

/** Columns one grapheme takes on a terminal. */
function graphemeWidth(grapheme: string): number {
  const code = grapheme.codePointAt(0)!;
  if (grapheme.length === 1 && SIMPLE_TEXT.test(grapheme)) return 1;
  if (code < 0x20 || (code >= 0x7f && code < 0xa0)) return 0;
  if (/^[\p{M}\u200b-\u200f\u2060\ufeff]+$/u.test(grapheme)) return 0;
  // Emoji drawn as pictures (by default, or asked for with VS16), flags and keycaps take two.
  if (
    /\p{Emoji_Presentation}|\p{Regional_Indicator}|\u20e3/u.test(grapheme) ||
    (/\p{Extended_Pictographic}/u.test(grapheme) && grapheme.includes("\ufe0f"))
  ) {
    return 2;
  }
  return isWideCodePoint(code) ? 2 : 1;
}

/** Splits text into colour sequences and graphemes, in order. */
function* tokens(text: string): Generator<{ sgr: boolean; text: string }> {
  let plain = "";
  for (let i = 0; i < text.length;) {
    const sgr = text[i] === ESC ? SGR_AT_START.exec(text.slice(i)) : null;
    if (sgr) {
      if (plain) yield* [...graphemes(plain)].map((g) => ({ sgr: false, text: g }));
      plain = "";
      yield { sgr: true, text: sgr[0] };
      i += sgr[0].length;
    } else {
      plain += text[i];
      i++;
    }
  }
  if (plain) yield* [...graphemes(plain)].map((g) => ({ sgr: false, text: g }));
}

/**
 * Columns a text takes on a terminal: colour sequences take none, East Asian
 * wide characters and emoji two, combining marks none. Tables pad their
 * cells by it, so their columns stay aligned.
 */
export function displayWidth(text: string): number {
  let width = 0;
  for (const token of tokens(text)) if (!token.sgr) width += graphemeWidth(token.text);
  return width;
}

/**
 * Cuts text to at most `width` columns, ending it with `…` when cut. Colour
 * sequences are kept, and reset after a cut so that no colour leaks on.
 */
export function fitWidth(text: string, width: number): string {
  if (displayWidth(text) <= width) return text;
  if (width <= 0) return "";
  let out = "";
  let used = 0;
  let coloured = false;
  for (const token of tokens(text)) {
    if (token.sgr) {
      out += token.text;
      coloured = true;
      continue;
    }
    const w = graphemeWidth(token.text);
    if (used + w > width - 1) break;
    out += token.text;
    used += w;
  }
  return `${out}${ELLIPSIS}${coloured ? RESET : ""}`;
}

/**
 * Makes text one line (line breaks become spaces, control characters `?`)
 * and cuts it to at most `max` columns, ending with `…` when cut.
 */
export function truncate(text: string, max: number): string {
  return fitWidth(sanitize(text), max);
}

/** One column of a table printed by {@linkcode printTable}. */
export interface TableColumn {
  header: string;
  /** Where cells (and the header) sit in the column. @default "left" */
  align?: "left" | "right";
  /**
   * A column of long values (commands, errors) that is cut with `…` to fit a
   * terminal: columns with a lower number are cut first. Columns without it
   * (ids, names, states, counts, times) are never cut.
   */
  cut?: number;
  /** The narrowest a `cut` column is made before other columns are left out. @default 20 */
  minWidth?: number;
  /** Off a terminal, where there is no width to fit, cells are still cut at this many columns. */
  pipedMax?: number;
  /**
   * A column that may be left out on a terminal too narrow for the table
   * even with its `cut` columns at their `minWidth`: lower numbers go first.
   */
  drop?: number;
  /** Colours a (fitted) cell on a terminal, e.g. {@linkcode paintState}. */
  paint?: (cell: string) => string;
}

/** How {@linkcode formatTable} lays a table out. */
export interface TableOptions {
  /** The widest a line may be; null for no limit. @default the terminal's columns, else null */
  width?: number | null;
  /** Whether to colour. @default {@linkcode useColour} */
  colour?: boolean;
}

/** Columns between two table columns. */
const GAP = 2;

/**
 * The columns kept and their widths, so that the table fits `limit` where
 * it can. Each step is taken only if the table is still too wide after the
 * one before: `cut` columns are cut down to their `minWidth` (lowest `cut`
 * first); `drop` columns are left out one by one (lowest first); `cut`
 * columns are cut down to their headers; and then they are left out too
 * (lowest `cut` first), as a few characters of a command tell nothing.
 * Other columns are never cut: a table that still does not fit (an id
 * wider than the terminal) has lines longer than `limit`, which the
 * terminal wraps, rather than a value nobody can copy.
 */
function fitColumns(
  columns: readonly TableColumn[],
  natural: readonly number[],
  limit: number,
): { keep: number[]; widths: number[] } {
  const byRank = (set: readonly number[], rank: "cut" | "drop") =>
    set.filter((i) => columns[i][rank] !== undefined)
      .sort((a, b) => columns[a][rank]! - columns[b][rank]!);
  const headerWidth = (i: number) => displayWidth(columns[i].header);
  const floors = [
    (i: number) => Math.max(columns[i].minWidth ?? 20, headerWidth(i)),
    (i: number) => Math.max(1, headerWidth(i)),
  ];
  /** Cuts the `cut` columns of `keep` down to the first `steps` floors, as far as needed. */
  const squeeze = (keep: readonly number[], steps: number) => {
    const widths = [...natural];
    let excess = keep.reduce((sum, i) => sum + widths[i], 0) + GAP * (keep.length - 1) - limit;
    for (const floor of floors.slice(0, steps)) {
      for (const i of byRank(keep, "cut")) {
        if (excess <= 0) break;
        const take = Math.min(excess, Math.max(0, widths[i] - floor(i)));
        widths[i] -= take;
        excess -= take;
      }
    }
    return { widths, fits: excess <= 0 };
  };

  let keep = columns.map((_, i) => i);
  while (true) {
    const { widths, fits } = squeeze(keep, 1);
    const next = byRank(keep, "drop")[0];
    if (fits) return { keep, widths };
    if (next === undefined) break;
    keep = keep.filter((i) => i !== next);
  }
  while (true) {
    const { widths, fits } = squeeze(keep, 2);
    const next = byRank(keep, "cut")[0];
    if (fits || next === undefined) return { keep, widths };
    keep = keep.filter((i) => i !== next);
  }
}

/** `text` padded with spaces to `width` columns, on the side `align` says. */
function pad(text: string, width: number, align: TableColumn["align"]): string {
  const room = " ".repeat(Math.max(0, width - displayWidth(text)));
  return align === "right" ? room + text : text + room;
}

/**
 * Lays rows out as a plain table with a header row (columns two spaces
 * apart, no borders) and returns its text, each line ending in `\n`.
 *
 * With a width (a terminal's), the table is fitted to it as
 * {@linkcode fitColumns} says: long values (`cut` columns) are cut with `…`,
 * less useful columns (`drop`) are left out, and ids, names and the other
 * plain columns are never cut. Without one (output piped or redirected),
 * only `pipedMax` cuts cells. Cells are plain text: they are made one line
 * and cleaned of control characters (escapes included); with colour on,
 * headers are bold and each column's `paint` colours its fitted cells.
 */
export function formatTable(
  head: ReadonlyArray<string | TableColumn>,
  rows: ReadonlyArray<ReadonlyArray<string>>,
  options: TableOptions = {},
): string {
  const limit = options.width === undefined ? terminalColumns() ?? null : options.width;
  const colour = options.colour ?? useColour();
  const columns = head.map((h) => typeof h === "string" ? { header: h } : h);
  const cells = rows.map((row) =>
    columns.map((column, i) => {
      const cell = sanitize(row[i] ?? "");
      return limit === null && column.pipedMax !== undefined
        ? fitWidth(cell, column.pipedMax)
        : cell;
    })
  );
  const natural = columns.map((column, i) =>
    Math.max(displayWidth(column.header), ...cells.map((row) => displayWidth(row[i])))
  );
  const { keep, widths } = limit === null
    ? { keep: columns.map((_, i) => i), widths: natural }
    : fitColumns(columns, natural, limit);

  const line = (cellOf: (i: number) => string) =>
    keep.map((i) => pad(cellOf(i), widths[i], columns[i].align)).join(" ".repeat(GAP))
      .replace(/ +$/, "") + "\n";
  const header = line((i) => colour ? `${BOLD}${columns[i].header}${RESET}` : columns[i].header);
  return header + cells.map((row) =>
    line((i) => {
      const fitted = fitWidth(row[i], widths[i]);
      const paint = columns[i].paint;
      return colour && paint ? paint(fitted) : fitted;
    })
  ).join("");
}

/**
 * Prints rows as a table on stdout, laid out by {@linkcode formatTable}:
 * fitted to the terminal and coloured there, plain and unlimited in width
 * when piped. Plain string headers give plain columns that are never cut.
 */
export function printTable(
  head: ReadonlyArray<string | TableColumn>,
  rows: ReadonlyArray<ReadonlyArray<string>>,
  options: TableOptions = {},
): void {
  writeOut(formatTable(head, rows, options));
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
  return colour ? `${STATE_COLOURS[state]}${state}${RESET}` : state;
}

/** A table cell painter that colours job state names (and leaves anything else as it is). */
export function paintStateCell(cell: string): string {
  return isJobState(cell) ? paintState(cell, true) : cell;
}

/** Text in yellow when `colour` is on: for warnings such as a paused queue. */
export function paintWarning(text: string, colour: boolean): string {
  return colour ? `\x1b[33m${text}${RESET}` : text;
}

/** Text dimmed when `colour` is on: for secondary details. */
export function paintDim(text: string, colour: boolean): string {
  return colour ? `${DIM}${text}${RESET}` : text;
}

/** Columns of the terminal on stdout, or undefined when stdout is not one. */
export function terminalColumns(): number | undefined {
  if (!Deno.stdout.isTerminal()) return undefined;
  try {
    const { columns } = Deno.consoleSize();
    return columns > 0 ? columns : undefined;
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

/** A moment for people in a detail view: exact (ISO 8601 UTC to the second) and relative. */
export function exactAndRelative(ms: number | null, now: number): string {
  return ms === null ? "-" : `${humanTime(ms)} (${relativeTime(ms, now)})`;
}

/** A length of time for people: "850ms", "12.3s", "4m 05s", "2h 10m". */
export function humanDuration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(Math.floor(ms / 100) / 10).toFixed(1)}s`;
  const s = Math.floor(ms / 1_000);
  if (s < 3_600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  const m = Math.floor(s / 60);
  if (m < 1_440) return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(m / 1_440)}d ${String(Math.floor(m / 60) % 24).padStart(2, "0")}h`;
}
