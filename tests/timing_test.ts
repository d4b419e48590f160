/**
 * Waiting (lib/timing.ts): `sleep` cut short by a signal, and `pollUntil`
 * with its deadline and its signal. Real timers, with generous bounds.
 *
 * @module
 */

import assert from "node:assert/strict";
import { pollUntil, sleep } from "../lib/timing.ts";

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
