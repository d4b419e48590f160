/**
 * Whole numbers as the CLI and job specs take them.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

const TOO_LARGE = `is too large (at most ${Number.MAX_SAFE_INTEGER})`;

/**
 * Parses text that must be a whole number of 0 or more.
 *
 * @param text the text to parse, e.g. `"3"`
 * @param what names the value in the error message, e.g. `"--max-retries"`
 * @throws {UsageError} for anything else, negatives and fractions included
 */
export function parseCount(text: string, what: string): number {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) {
    throw new UsageError(`${what}: '${text}' is not a whole number of 0 or more`);
  }
  const value = Number(trimmed);
  // Quoted as typed: past 2^53 the parsed number is already a different one.
  if (!Number.isSafeInteger(value)) throw new UsageError(`${what}: '${text}' ${TOO_LARGE}`);
  return value;
}

/**
 * Checks that a number (from JSON, say) is a whole number of 0 or more.
 *
 * @throws {UsageError} when it is not
 */
export function checkCount(value: unknown, what: string): number {
  // JSON.parse has already rounded a number this large (or made it Infinity), so
  // the message cannot quote it as it was written and does not pretend to.
  if (typeof value === "number" && value > Number.MAX_SAFE_INTEGER) {
    throw new UsageError(`${what}: the number ${TOO_LARGE}`);
  }
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    const shown = typeof value === "number" && !Number.isFinite(value)
      ? "the number"
      : JSON.stringify(value);
    throw new UsageError(`${what}: ${shown} is not a whole number of 0 or more`);
  }
  return value;
}
