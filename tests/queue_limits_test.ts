/**
 * lib/queue_limits.ts: the spellings `queue set` takes for its limits, and
 * how they read back.
 *
 * @module
 */

import assert from "node:assert/strict";
import { UsageError } from "../lib/errors.ts";
import {
  formatRate,
  limitsUsage,
  parseConcurrency,
  parseRate,
  rateOpensAt,
} from "../lib/queue_limits.ts";

Deno.test("parseConcurrency takes a count from 1, or none", () => {
  assert.equal(parseConcurrency("3"), 3);
  assert.equal(parseConcurrency("none"), null);
  for (const bad of ["0", "-1", "1.5", "x", "", "1000001"]) {
    assert.throws(() => parseConcurrency(bad), UsageError, bad);
  }
});

Deno.test("parseRate takes N/DUR (a bare unit is one of it), or none", () => {
  assert.deepEqual(parseRate("10/1m"), { starts: 10, periodMs: 60_000 });
  assert.deepEqual(parseRate("5/s"), { starts: 5, periodMs: 1_000 });
  assert.deepEqual(parseRate("2/500ms"), { starts: 2, periodMs: 500 });
  assert.equal(parseRate("none"), null);
  for (const bad of ["10", "0/1m", "x/1m", "10/", "10/0", "10/xyz", "/1m"]) {
    assert.throws(() => parseRate(bad), UsageError, bad);
  }
});

Deno.test("rates and usage read back as queue set and status write them", () => {
  assert.equal(formatRate({ starts: 10, periodMs: 60_000 }), "10/1m");
  assert.equal(
    limitsUsage({ concurrency: 3, rate: { starts: 10, periodMs: 60_000 } }, 2, 5),
    "2/3 running, 5/10 per 1m",
  );
  assert.equal(limitsUsage({ concurrency: null, rate: null }, 2, 0), "");
  assert.equal(rateOpensAt(1_000, 60_000), 61_000);
});
