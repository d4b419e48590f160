/**
 * Durations as people write them on the command line: `500ms`, `10s`, `5m`,
 * `2h`, `1d`, or a bare number of seconds.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;

/** The longest duration accepted: 100 years, far beyond any sane delay but safe in a timer. */
export const MAX_DURATION_MS = 100 * 365 * UNIT_MS.d;

/**
 * Parses a duration into whole milliseconds.
 *
 * @param text the duration, e.g. `"1.5s"` or `"90"` (seconds)
 * @param what names the value in the error message, e.g. `"--delay"`
 * @throws {UsageError} when the text is not a non-negative duration
 */
export function parseDuration(text: string, what = "duration"): number {
  const match = DURATION_PATTERN.exec(text.trim());
  if (!match) {
    throw new UsageError(
      `${what}: '${text}' is not a duration (use e.g. 500ms, 10s, 5m, 2h, 1d, or seconds)`,
    );
  }
  const ms = Math.round(Number(match[1]) * UNIT_MS[match[2] ?? "s"]);
  if (ms > MAX_DURATION_MS) throw new UsageError(`${what}: '${text}' is too long`);
  return ms;
}

/** Formats milliseconds compactly, using the largest unit that divides them exactly. */
export function formatDuration(ms: number): string {
  for (const unit of ["d", "h", "m", "s"]) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return ms >= 1000 ? `${ms / 1000}s` : `${ms}ms`;
}
