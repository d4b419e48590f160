import assert from "node:assert/strict";
import { UsageError } from "../lib/errors.ts";
import { checkCount, parseCount } from "../lib/numbers.ts";

/** Asserts that `fn` throws a UsageError with exactly `message`. */
function refusedWith(fn: () => unknown, message: string) {
  assert.throws(fn, (error) => error instanceof UsageError && error.message === message, message);
}

Deno.test("parseCount() reads whole numbers of 0 or more, up to 2^53 - 1", () => {
  assert.equal(parseCount("0", "--priority"), 0);
  assert.equal(parseCount(" 42 ", "--priority"), 42);
  assert.equal(parseCount("007", "--priority"), 7);
  assert.equal(parseCount("9007199254740991", "--priority"), Number.MAX_SAFE_INTEGER);
});

Deno.test("parseCount() quotes a number too large as it was typed, not as it rounds", () => {
  for (
    const text of ["9007199254740992", "9007199254740993", "1" + "0".repeat(30), "9".repeat(400)]
  ) {
    refusedWith(
      () => parseCount(text, "--priority"),
      `--priority: '${text}' is too large (at most 9007199254740991)`,
    );
  }
});

Deno.test("parseCount() quotes anything else as typed", () => {
  for (const text of ["-1", "1.5", "", "1e3", "0x10", "+3", "three"]) {
    refusedWith(
      () => parseCount(text, "--limit"),
      `--limit: '${text}' is not a whole number of 0 or more`,
    );
  }
});

Deno.test("checkCount() never quotes a JSON number that JSON.parse had already changed", () => {
  // 9007199254740993 parses to ...992, and 1e400 to Infinity (which JSON.stringify prints as null).
  for (const text of ["9007199254740993", "9007199254740992", "1e400", "1e20"]) {
    const value = JSON.parse(text);
    refusedWith(
      () => checkCount(value, "priority"),
      "priority: the number is too large (at most 9007199254740991)",
    );
  }
  refusedWith(
    () => checkCount(JSON.parse("-1e400"), "priority"),
    "priority: the number is not a whole number of 0 or more",
  );
  refusedWith(() => checkCount(-1, "priority"), "priority: -1 is not a whole number of 0 or more");
  refusedWith(
    () => checkCount("3", "priority"),
    'priority: "3" is not a whole number of 0 or more',
  );
  assert.equal(checkCount(Number.MAX_SAFE_INTEGER, "priority"), Number.MAX_SAFE_INTEGER);
});
