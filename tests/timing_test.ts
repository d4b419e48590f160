/**
 * Waiting (lib/timing.ts): `sleep` cut short by a signal, and `pollUntil`
 * with its deadline and its signal, on real timers with generous bounds;
 * `retryWithBackoff` on a clock whose pauses pass at once.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Clock, pollUntil, retryWithBackoff, sleep } from "../lib/timing.ts";

Deno.test("sleep() waits its time, or ends when its signal aborts", async () => {
  let started = Date.now();
  await sleep(50);
  assert.ok(Date.now() - started >= 45, "waited its time");

  const controller = new AbortController();
  started = Date.now();
  setTimeout(() => controller.abort(), 20);
  await sleep(10_000, controller.signal);
  assert.ok(Date.now() - started < 5_000, "the abort ended it");

  started = Date.now();
  await sleep(10_000, controller.signal);
  assert.ok(Date.now() - started < 5_000, "an aborted signal ends it at once");
});

Deno.test("pollUntil() checks at once, then every interval, until the check says true", async () => {
  let checks = 0;
  assert.equal(await pollUntil(() => ++checks === 1, { intervalMs: 10_000 }), true);
  assert.equal(checks, 1, "the first check comes at once");

  checks = 0;
  const started = Date.now();
  assert.equal(await pollUntil(() => Promise.resolve(++checks === 3), { intervalMs: 20 }), true);
  assert.equal(checks, 3);
  assert.ok(Date.now() - started >= 35, "paused between checks");
});

Deno.test("pollUntil() gives up at its deadline, with a last check on it", async () => {
  const checkedAt: number[] = [];
  const started = Date.now();
  const deadline = started + 120;
  const done = await pollUntil(() => {
    checkedAt.push(Date.now());
    return false;
  }, { intervalMs: 50, deadline });
  assert.equal(done, false);
  // On it, give or take a timer's rounding; not a whole interval early.
  assert.ok(checkedAt.at(-1)! >= deadline - 10, "the last check falls on the deadline");
  assert.ok(checkedAt.length >= 3, `checked every interval (${checkedAt.length} checks)`);
  assert.ok(Date.now() - started < 5_000);
  // A deadline already past: one check, then false.
  let checks = 0;
  assert.equal(await pollUntil(() => (checks++, false), { intervalMs: 50, deadline: 0 }), false);
  assert.equal(checks, 1);
});

Deno.test("pollUntil() stops when its signal aborts, with no check after it", async () => {
  const controller = new AbortController();
  let checks = 0;
  const started = Date.now();
  setTimeout(() => controller.abort(), 30);
  const done = await pollUntil(() => {
    checks++;
    return false;
  }, { intervalMs: 10_000, signal: controller.signal });
  assert.equal(done, false);
  assert.equal(checks, 1, "no check after the abort");
  assert.ok(Date.now() - started < 5_000, "the abort cut the pause short");
});

Deno.test("pollUntil() rejects with the error of a check", async () => {
  await assert.rejects(
    () => pollUntil(() => Promise.reject(new Error("database gone")), { intervalMs: 10 }),
    /database gone/,
  );
});

/** A clock whose pauses pass at once, moving its time on; it keeps their lengths. */
function instantClock(start = 0): Clock & { waits: number[] } {
  let now = start;
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    sleep(ms: number) {
      waits.push(ms);
      now += ms;
      return Promise.resolve();
    },
  };
}

/** A step that fails `failures` times, then returns "done". */
function failing(failures: number, error = new Error("busy")) {
  let calls = 0;
  const step = () => {
    if (++calls <= failures) throw error;
    return Promise.resolve("done");
  };
  return { step, calls: () => calls };
}

Deno.test("retryWithBackoff() retries until the step succeeds, each wait double the last, capped", async () => {
  const clock = instantClock();
  const { step, calls } = failing(6);
  const told: [string, number][] = [];
  const result = await retryWithBackoff(step, {
    firstMs: 100,
    maxMs: 1_000,
    clock,
    onRetry: (error, waitMs) => told.push([(error as Error).message, waitMs]),
  });
  assert.equal(result, "done");
  assert.equal(calls(), 7);
  assert.deepEqual(clock.waits, [100, 200, 400, 800, 1_000, 1_000]);
  assert.deepEqual(told.map(([, waitMs]) => waitMs), clock.waits, "told of each wait before it");
  assert.ok(told.every(([message]) => message === "busy"));
  // A step that succeeds at once never waits.
  assert.equal(await retryWithBackoff(() => 7, { firstMs: 100, maxMs: 1_000, clock }), 7);
  assert.equal(clock.waits.length, 6);
});

Deno.test("retryWithBackoff() throws an error that retryIf declines, at once", async () => {
  const clock = instantClock();
  const { step, calls } = failing(3, new Error("constraint failed"));
  await assert.rejects(
    () =>
      retryWithBackoff(step, {
        firstMs: 10,
        maxMs: 100,
        clock,
        retryIf: (error) => (error as Error).message === "busy",
      }),
    /constraint failed/,
  );
  assert.equal(calls(), 1);
  assert.deepEqual(clock.waits, []);
});

Deno.test("retryWithBackoff() throws the failure that comes at or after giveUpAt", async () => {
  const clock = instantClock(1_000);
  const { step, calls } = failing(100);
  await assert.rejects(
    () => retryWithBackoff(step, { firstMs: 10, maxMs: 1_000, clock, giveUpAt: 1_070 }),
    /busy/,
  );
  // Tries at 1000, 1010, 1030, 1070: the last is at the limit, and is thrown.
  assert.equal(calls(), 4);
  assert.deepEqual(clock.waits, [10, 20, 40]);
});

Deno.test("retryWithBackoff() with jitter spreads each wait over half to one and a half times", async () => {
  const clock = instantClock();
  const { step } = failing(1_000);
  await assert.rejects(() =>
    retryWithBackoff(step, { firstMs: 10, maxMs: 10, jitter: true, clock, giveUpAt: 2_000 })
  );
  assert.ok(clock.waits.length > 50);
  assert.ok(clock.waits.every((ms) => ms >= 5 && ms < 15), "within 0.5–1.5 times");
  assert.ok(new Set(clock.waits).size > 1, "not all the same");
});
