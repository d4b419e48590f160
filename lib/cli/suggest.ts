/**
 * "Did you mean …?" for a mistyped command, subcommand or option. Loaded only
 * once a word has been refused, so a valid command never pays for it.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import type { CommandDefinition } from "./commands.ts";

/**
 * The edit distance between two words, counting an insertion, a deletion, a
 * substitution or a swap of two neighbouring letters as one edit (the
 * "optimal string alignment" form of Damerau-Levenshtein): `stauts` is one
 * edit from `status`, as `strat` is from `start`.
 */
export function editDistance(a: string, b: string): number {
  // rows[i][j]: the distance between the first i letters of a and the first j of b.
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[0].push(j);
        continue;
      }
      const substitution = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(
        rows[i - 1][j] + 1,
        rows[i][j - 1] + 1,
        rows[i - 1][j - 1] + substitution,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, rows[i - 2][j - 2] + 1);
      }
      rows[i].push(best);
    }
  }
  return rows[a.length][b.length];
}

/**
 * The most edits a word of this length may be from a candidate to be
 * suggested: one for short words, about a third of the letters for longer
 * ones, so that a typo finds its word while a different word finds nothing.
 */
function allowedEdits(length: number): number {
  return Math.max(1, Math.floor(length / 3));
}

/** At most this many candidates sharing a typed prefix are offered at once. */
const MAX_PREFIX_MATCHES = 3;

/**
 * The candidates `word` was most likely meant to be; empty when nothing is
 * close. A word of two letters or more that begins one to three candidates'
 * names offers those names. Otherwise the candidates with the fewest edits,
 * if within {@linkcode allowedEdits}; among equally close ones, those of the
 * word's own length win (`stauts` is `status`, a swap, rather than `stats`).
 * Case is ignored.
 */
export function closestWords(word: string, candidates: readonly string[]): string[] {
  const typed = word.toLowerCase();
  const unique = [...new Set(candidates)].filter((candidate) => candidate.length > 0);
  if (typed.length >= 2) {
    const byPrefix = unique.filter((candidate) => candidate.toLowerCase().startsWith(typed));
    if (byPrefix.length > 0 && byPrefix.length <= MAX_PREFIX_MATCHES) return byPrefix;
  }
  const allowed = allowedEdits(typed.length);
  const scored = unique
    // Two words differ by at least their difference in length: skip the long sums for those.
    .filter((candidate) => Math.abs(candidate.length - typed.length) <= allowed)
    .map((candidate) => ({
      candidate,
      edits: editDistance(typed, candidate.toLowerCase()),
      lengthGap: Math.abs(candidate.length - typed.length),
    }))
    .filter(({ edits }) => edits <= allowed);
  const fewestEdits = Math.min(...scored.map(({ edits }) => edits));
  const closest = scored.filter(({ edits }) => edits === fewestEdits);
  const smallestGap = Math.min(...closest.map(({ lengthGap }) => lengthGap));
  return closest.filter(({ lengthGap }) => lengthGap === smallestGap).map(({ candidate }) =>
    candidate
  );
}

/** Joins quoted words as a hint lists them: `'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`. */
function alternatives(words: readonly string[]): string {
  const quoted = words.map((word) => `'${word}'`);
  return quoted.length === 1
    ? quoted[0]
    : `${quoted.slice(0, -1).join(", ")} or ${quoted[quoted.length - 1]}`;
}

/**
 * The error for command words that name no command: a suggestion when one is
 * close, else where to find the list. Nothing runs in either case.
 *
 * @param words the command words as typed, e.g. `["stauts"]` or `["worker", "strat"]`
 */
export function unknownCommandError(
  words: readonly string[],
  commands: readonly CommandDefinition[],
): UsageError {
  const [first, second] = words;
  const family = commands.filter((def) => def.path[0] === first);
  if (family.length === 0) {
    // `queuectl stop` for `queuectl worker stop`: a subcommand typed without its group is named
    // first, before any command it is merely close to (`top`).
    const asSubcommand = commands.filter((def) => def.path[1] === first).map((def) =>
      def.path.join(" ")
    );
    const close = [
      ...asSubcommand,
      ...closestWords(first, ["help", ...commands.map((def) => def.path[0])]),
    ];
    const hint = close.length > 0
      ? `did you mean ${alternatives(close)}?`
      : "run 'queuectl --help' for the list";
    return new UsageError(`unknown command '${first}' (${hint})`);
  }
  const subcommands = family.map((def) => def.path[1]);
  const close = closestWords(second, subcommands).map((sub) => `${first} ${sub}`);
  const hint = close.length > 0
    ? `did you mean ${alternatives(close)}?`
    : `known: ${subcommands.join(", ")}`;
  return new UsageError(`unknown command '${first} ${second}' (${hint})`);
}

/**
 * The error for an option the command does not take: a suggestion when one
 * of its options is close, else where to find them.
 *
 * @param option the option as typed, without any `=value`, e.g. `--timout`
 * @param names the long names of the options the command takes, without dashes
 * @param help the command line that lists them, e.g. `queuectl enqueue --help`
 */
export function unknownOptionError(
  option: string,
  names: readonly string[],
  help: string,
): UsageError {
  const close = option.startsWith("--")
    ? closestWords(option.slice(2), names).map((name) => `--${name}`)
    : [];
  const hint = close.length > 0
    ? `did you mean ${alternatives(close)}?`
    : `run '${help}' for the options`;
  return new UsageError(`unknown option '${option}' (${hint})`);
}
