import assert from "node:assert/strict";
import { formatDuration, MAX_DURATION_MS, parseDuration } from "../lib/duration.ts";
import { UsageError } from "../lib/errors.ts";

Deno.test("parseDuration() reads milliseconds", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("0ms"), 0);
});

Deno.test("parseDuration() reads seconds, minutes, hours and days", () => {
  assert.equal(parseDuration("10s"), 10_000);
  assert.equal(parseDuration("5m"), 300_000);
  assert.equal(parseDuration("2h"), 7_200_000);
  assert.equal(parseDuration("1d"), 86_400_000);
});

Deno.test("parseDuration() reads a bare number as seconds", () => {
  assert.equal(parseDuration("90"), 90_000);
  assert.equal(parseDuration("0"), 0);
});

Deno.test("parseDuration() reads decimals", () => {
  assert.equal(parseDuration("1.5s"), 1_500);
  assert.equal(parseDuration("0.5"), 500);
  assert.equal(parseDuration("1.5h"), 5_400_000);
  assert.equal(parseDuration("0.25m"), 15_000);
});

Deno.test("parseDuration() rounds to whole milliseconds", () => {
  assert.equal(parseDuration("1.0004s"), 1_000);
  assert.equal(parseDuration("1.0006s"), 1_001);
  assert.equal(parseDuration("2.4ms"), 2);
});

Deno.test("parseDuration() ignores surrounding whitespace", () => {
  assert.equal(parseDuration(" 10s "), 10_000);
  assert.equal(parseDuration("\t5m\n"), 300_000);
});

Deno.test("parseDuration() refuses text that is not a duration", () => {
  for (
    const text of ["", " ", "-1", "-1s", "abc", "10x", "1e3", "5 m", "s", ".5s", "1.s", "1,5s"]
  ) {
    assert.throws(() => parseDuration(text), UsageError, JSON.stringify(text));
  }
});

Deno.test("parseDuration() refuses units in capitals or spelled out", () => {
  for (const text of ["10S", "5M", "1 day", "10sec", "10ms5"]) {
    assert.throws(() => parseDuration(text), UsageError, text);
  }
});

Deno.test("parseDuration() names the value in its error message", () => {
  assert.throws(
    () => parseDuration("soon", "--delay"),
    (error) => error instanceof UsageError && /--delay/.test(error.message),
  );
});

Deno.test("parseDuration() accepts up to MAX_DURATION_MS and refuses more", () => {
  assert.equal(parseDuration("36500d"), MAX_DURATION_MS);
  assert.throws(() => parseDuration("36501d"), UsageError);
  assert.throws(() => parseDuration("9".repeat(400)), UsageError);
});

Deno.test("formatDuration() uses the largest unit that divides exactly", () => {
  assert.equal(formatDuration(86_400_000), "1d");
  assert.equal(formatDuration(3_600_000), "1h");
  assert.equal(formatDuration(7_200_000), "2h");
  assert.equal(formatDuration(300_000), "5m");
  assert.equal(formatDuration(90_000), "90s");
  assert.equal(formatDuration(10_000), "10s");
  assert.equal(formatDuration(90_000_000), "25h");
});

Deno.test("formatDuration() writes short and uneven durations", () => {
  assert.equal(formatDuration(500), "500ms");
  assert.equal(formatDuration(0), "0ms");
  assert.equal(formatDuration(1_500), "1.5s");
  assert.equal(formatDuration(1_001), "1.001s");
});

Deno.test("formatDuration() output parses back to the same milliseconds", () => {
  const samples = [0, 1, 499, 999, 1_000, 1_001, 59_999, 60_000, 3_599_999, 86_400_001];
  for (let ms = 0; ms < 200_000; ms += 997) samples.push(ms);
  samples.push(MAX_DURATION_MS, MAX_DURATION_MS - 1, 123_456_789_012);
  for (const ms of samples) assert.equal(parseDuration(formatDuration(ms)), ms, String(ms));
});

Deno.test("parseDuration() output formats back to canonical text", () => {
  for (const text of ["500ms", "10s", "5m", "2h", "1d", "1.5s"]) {
    assert.equal(formatDuration(parseDuration(text)), text);
  }
});
