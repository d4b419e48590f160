/**
 * Whole numbers as the CLI and job specs take them.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

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
  return checkCount(Number(trimmed), what);
}

/**
 * Checks that a number (from JSON, say) is a whole number of 0 or more.
 *
 * @throws {UsageError} when it is not
 */
export function checkCount(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new UsageError(`${what}: ${JSON.stringify(value)} is not a whole number of 0 or more`);
  }
  if (!Number.isSafeInteger(value)) throw new UsageError(`${what}: ${value} is too large`);
  return value;
}
