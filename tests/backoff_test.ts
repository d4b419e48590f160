import assert from "node:assert/strict";
import { retryDelayMs } from "../lib/backoff.ts";

const HOUR = 3_600_000;

Deno.test("retryDelayMs() waits base to the power of attempts seconds", () => {
  assert.equal(retryDelayMs(2, 1, HOUR), 2_000);
  assert.equal(retryDelayMs(2, 2, HOUR), 4_000);
  assert.equal(retryDelayMs(2, 3, HOUR), 8_000);
  assert.equal(retryDelayMs(3, 4, HOUR), 81_000);
});

Deno.test("retryDelayMs() grows with each attempt until the cap", () => {
  let previous = 0;
  for (let attempts = 1; attempts <= 11; attempts++) {
    const delay = retryDelayMs(2, attempts, HOUR);
    assert.ok(delay > previous, `attempt ${attempts}: ${delay} after ${previous}`);
    previous = delay;
  }
});

Deno.test("retryDelayMs() never waits longer than the cap", () => {
  assert.equal(retryDelayMs(2, 12, HOUR), HOUR);
  assert.equal(retryDelayMs(2, 20, 60_000), 60_000);
  assert.equal(retryDelayMs(10, 3, 5_000), 5_000);
});

Deno.test("retryDelayMs() returns the cap when the delay equals it exactly", () => {
  assert.equal(retryDelayMs(2, 3, 8_000), 8_000);
});

Deno.test("retryDelayMs() with base 1 always waits one second", () => {
  for (const attempts of [1, 2, 10, 1_000]) assert.equal(retryDelayMs(1, attempts, HOUR), 1_000);
});

Deno.test("retryDelayMs() caps huge attempt counts instead of returning Infinity or NaN", () => {
  for (const attempts of [1_024, 5_000, 1_000_000, Number.MAX_SAFE_INTEGER]) {
    const delay = retryDelayMs(2, attempts, HOUR);
    assert.ok(Number.isFinite(delay), `attempt ${attempts} gave ${delay}`);
    assert.equal(delay, HOUR);
  }
});

Deno.test("retryDelayMs() accepts a fractional base", () => {
  assert.equal(retryDelayMs(1.5, 1, HOUR), 1_500);
  assert.equal(retryDelayMs(1.5, 2, HOUR), 2_250);
});

Deno.test("retryDelayMs() returns whole milliseconds", () => {
  // 1.1^3 = 1.331 seconds, and 1.7^5 = 14.19857 seconds.
  assert.equal(retryDelayMs(1.1, 3, HOUR), 1_331);
  assert.equal(retryDelayMs(1.7, 5, HOUR), 14_199);
  for (let attempts = 1; attempts <= 30; attempts++) {
    assert.ok(Number.isInteger(retryDelayMs(1.3, attempts, HOUR)), `attempt ${attempts}`);
  }
});
