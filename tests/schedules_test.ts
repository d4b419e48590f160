/**
 * Unit tests of lib/schedules.ts and lib/cron.ts: when a schedule fires
 * (cron expressions across daylight-saving changes in named zones, `--every`
 * intervals), which firing a late firer enqueues, firing ids and job
 * templates (lib/spec.ts `jobTemplate`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { cronTimetable } from "../lib/cron.ts";
import { DEFAULT_CONFIG } from "../lib/config.ts";
import { UsageError } from "../lib/errors.ts";
import {
  checkScheduleName,
  everyTimetable,
  firingJobId,
  latestFiring,
  MISSED_AFTER_MS,
  parseEvery,
  planFiring,
  type Timetable,
} from "../lib/schedules.ts";
import { checkJobId, jobTemplate, resolveSpec } from "../lib/spec.ts";

/** The first `n` firings after `from` (an ISO time), as ISO times. */
function firings(timetable: Timetable, from: string, n: number): string[] {
  const out: string[] = [];
  let at = Date.parse(from);
  for (let i = 0; i < n; i++) {
    at = timetable.nextAfter(at)!;
    out.push(new Date(at).toISOString());
  }
  return out;
}

Deno.test("cron: fields with lists, ranges, steps and names, in a zone", () => {
  assert.deepEqual(firings(cronTimetable("0 9 * * MON-FRI", "UTC"), "2026-01-02T10:00:00Z", 3), [
    "2026-01-05T09:00:00.000Z",
    "2026-01-06T09:00:00.000Z",
    "2026-01-07T09:00:00.000Z",
  ]);
  assert.deepEqual(
    firings(cronTimetable("*/20 8,17 1-2 JAN *", "Asia/Tokyo"), "2026-01-01T00:00:00Z", 4),
    // 08:00 in Tokyo is 23:00 UTC the day before.
    [
      "2026-01-01T08:00:00.000Z",
      "2026-01-01T08:20:00.000Z",
      "2026-01-01T08:40:00.000Z",
      "2026-01-01T23:00:00.000Z",
    ],
  );
  assert.deepEqual(firings(cronTimetable("@hourly", "UTC"), "2026-01-01T00:59:59.500Z", 1), [
    "2026-01-01T01:00:00.000Z",
  ]);
  assert.deepEqual(firings(cronTimetable("@daily", "Europe/Berlin"), "2026-01-01T00:00:00Z", 1), [
    "2026-01-01T23:00:00.000Z",
  ]);
  assert.deepEqual(firings(cronTimetable("@weekly", "UTC"), "2026-01-01T00:00:00Z", 1), [
    "2026-01-04T00:00:00.000Z", // Sunday
  ]);
  assert.deepEqual(firings(cronTimetable("@monthly", "UTC"), "2026-01-01T00:00:00Z", 1), [
    "2026-02-01T00:00:00.000Z",
  ]);
  assert.deepEqual(firings(cronTimetable("@yearly", "UTC"), "2026-01-01T00:00:00Z", 1), [
    "2027-01-01T00:00:00.000Z",
  ]);
});

Deno.test("cron: invalid expressions and zones are usage errors", () => {
  for (const bad of ["61 * * * *", "* * * *", "0 0 * * * *", "every day"]) {
    assert.throws(() => cronTimetable(bad, "UTC"), UsageError, bad);
  }
  assert.throws(() => cronTimetable("0 3 * * *", "Mars/Olympus"), UsageError);
  assert.equal(cronTimetable("0 0 30 2 *", "UTC").nextAfter(Date.now()), null, "never fires");
});

Deno.test("cron DST, America/New_York spring forward (2026-03-08, 02:00 -> 03:00)", () => {
  // A fixed time in the skipped hour fires right after the gap, that day only.
  assert.deepEqual(
    firings(cronTimetable("30 2 * * *", "America/New_York"), "2026-03-07T00:00:00Z", 3),
    ["2026-03-07T07:30:00.000Z", "2026-03-08T07:00:00.000Z", "2026-03-09T06:30:00.000Z"],
  );
  // An interval job follows the wall clock: the skipped times do not fire.
  assert.deepEqual(
    firings(cronTimetable("*/30 * * * *", "America/New_York"), "2026-03-08T06:00:00Z", 3),
    ["2026-03-08T06:30:00.000Z", "2026-03-08T07:00:00.000Z", "2026-03-08T07:30:00.000Z"],
  );
});

Deno.test("cron DST, America/New_York fall back (2026-11-01, 02:00 -> 01:00)", () => {
  // A fixed time in the repeated hour fires once, at its first occurrence (EDT).
  assert.deepEqual(
    firings(cronTimetable("30 1 * * *", "America/New_York"), "2026-10-31T12:00:00Z", 2),
    ["2026-11-01T05:30:00.000Z", "2026-11-02T06:30:00.000Z"],
  );
  // An hourly job fires in both 01:00s (EDT, then EST).
  assert.deepEqual(
    firings(cronTimetable("0 * * * *", "America/New_York"), "2026-11-01T04:30:00Z", 3),
    ["2026-11-01T05:00:00.000Z", "2026-11-01T06:00:00.000Z", "2026-11-01T07:00:00.000Z"],
  );
});

Deno.test("cron DST, Europe/Berlin forward (2026-03-29 02:00 -> 03:00) and back (10-25)", () => {
  assert.deepEqual(
    firings(cronTimetable("15 2 * * *", "Europe/Berlin"), "2026-03-28T12:00:00Z", 2),
    // 03:00 CEST is 01:00 UTC: the skipped 02:15 fires then; the next day at 02:15 CEST.
    ["2026-03-29T01:00:00.000Z", "2026-03-30T00:15:00.000Z"],
  );
  assert.deepEqual(
    firings(cronTimetable("15 2 * * *", "Europe/Berlin"), "2026-10-24T12:00:00Z", 2),
    // 02:15 happens twice (CEST, 00:15 UTC; CET, 01:15 UTC): it fires once.
    ["2026-10-25T00:15:00.000Z", "2026-10-26T01:15:00.000Z"],
  );
  assert.deepEqual(
    firings(cronTimetable("*/30 2 * * *", "Europe/Berlin"), "2026-10-25T00:00:00Z", 4),
    [
      "2026-10-25T00:30:00.000Z",
      "2026-10-25T01:00:00.000Z",
      "2026-10-25T01:30:00.000Z", // twice
      "2026-10-26T01:00:00.000Z",
    ],
  );
});

Deno.test("--every fires at the multiples of its interval since the epoch", () => {
  const every15m = everyTimetable(parseEvery("15m"));
  assert.deepEqual(firings(every15m, "2026-01-01T10:07:12Z", 2), [
    "2026-01-01T10:15:00.000Z",
    "2026-01-01T10:30:00.000Z",
  ]);
  assert.equal(
    every15m.nextAfter(Date.parse("2026-01-01T10:15:00Z")),
    Date.parse("2026-01-01T10:30:00Z"),
  );
  assert.throws(() => parseEvery("500ms"), UsageError);
  assert.throws(() => parseEvery("soon"), UsageError);
});

Deno.test("a late firer finds the latest firing that has come, however long it was away", () => {
  const minutely = cronTimetable("* * * * *", "UTC");
  const due = Date.parse("2026-01-01T00:00:00Z");
  const now = Date.parse("2027-03-04T05:06:07Z");
  assert.equal(latestFiring(minutely, due, now), Date.parse("2027-03-04T05:06:00Z"));
  assert.equal(latestFiring(minutely, due, due + 59_000), due, "none came after the due one");
  // Between one and two seconds apart: the search once stopped making progress there.
  const secondly = everyTimetable(1_000);
  assert.equal(latestFiring(secondly, 0, 1_500), 1_000);
  assert.equal(latestFiring(secondly, 0, 2_999), 2_000);
  const hourly = everyTimetable(3_600_000);
  assert.equal(latestFiring(hourly, due, due + 5 * 3_600_000), due + 5 * 3_600_000);
});

Deno.test("planFiring: --catch-up latest enqueues the latest firing, none skips missed ones", () => {
  const minutely = everyTimetable(60_000);
  const due = Date.parse("2026-01-01T00:00:00Z");
  const late = due + 10 * 60_000 + 5_000;
  assert.deepEqual(planFiring(minutely, "latest", due, late), {
    fireAt: due + 10 * 60_000,
    next: due + 11 * 60_000,
  });
  assert.deepEqual(planFiring(minutely, "none", due, late), {
    fireAt: null,
    next: due + 11 * 60_000,
  });
  // On time: both fire the firing that is due.
  assert.equal(planFiring(minutely, "none", due, due + 300).fireAt, due);
  // A daily firing an hour late is missed under `none`, fired under `latest`.
  const daily = everyTimetable(86_400_000);
  assert.equal(planFiring(daily, "none", due, due + MISSED_AFTER_MS + 1).fireAt, null);
  assert.equal(planFiring(daily, "latest", due, due + 3_600_000).fireAt, due);
});

Deno.test("a firing's job id is a valid job id; schedule names are checked", () => {
  const id = firingJobId("nightly-backup.db:main", Date.parse("2026-03-08T07:00:00Z"));
  assert.equal(id, "nightly-backup.db:main@2026-03-08T07:00:00.000Z");
  assert.equal(checkJobId(id), id);
  assert.equal(checkJobId(firingJobId("x".repeat(64), Date.now())).length, 89);
  for (const bad of ["", "a b", "-x", "a@b", "x".repeat(65), "line\nbreak"]) {
    assert.throws(() => checkScheduleName(bad), UsageError, JSON.stringify(bad));
  }
});

Deno.test("jobTemplate: the spec with its options as JSON fields, cwd made absolute", () => {
  const context = { now: 0, cwd: "/tmp", config: DEFAULT_CONFIG };
  const template = jobTemplate(
    "make report",
    { queue: "reports", timeoutMs: 60_000, cwd: "." },
    context,
  );
  assert.deepEqual(template, {
    command: "make report",
    queue: "reports",
    timeout_ms: 60_000,
    cwd: Deno.realPathSync("/tmp"),
  });
  // Fields left out stay out: the queue's defaults at the firing apply.
  const job = resolveSpec(template, { id: "r@1" }, {
    ...context,
    config: { ...DEFAULT_CONFIG, maxRetries: 7 },
  });
  assert.equal(job.maxRetries, 7);
  assert.equal(job.queue, "reports");
  assert.throws(
    () => jobTemplate({ command: "x", id: "fixed" }, {}, context),
    /cannot have 'id'/,
  );
  assert.throws(() => jobTemplate({ command: "x", run_at: "2030-01-01" }, {}, context), UsageError);
  assert.throws(
    () => jobTemplate({ command: "x", after: ["build"] }, {}, context),
    /cannot have 'after'/,
  );
});
