/**
 * `queuectl stats`: metrics of a known history of runs, made by a real
 * worker, in JSON and for people.
 */

import assert from "node:assert/strict";
import { assertRefused, cli, cliOk, enqueue, queueExists, waitFor, withQueue } from "./helpers.ts";

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** What `stats --json` prints. */
interface StatsJson {
  now: string;
  since: string;
  window_ms: number;
  jobs: Record<string, number>;
  runs: {
    total: number;
    succeeded: number;
    failed: number;
    retries: number;
    success_rate: number | null;
  };
  duration_ms: { mean: number; p50: number; p95: number; max: number } | null;
  throughput: Record<string, { runs: number; runs_per_minute: number }>;
  oldest_waiting: { run_at: string; overdue_ms: number | null } | null;
}

async function stats(db: string, ...args: string[]): Promise<StatsJson> {
  return JSON.parse(await cliOk(["stats", "--json", ...args], { db }));
}

Deno.test("stats counts the runs, outcomes, retries and durations of a known history", () =>
  withQueue(async ({ db }) => {
    await cliOk(["config", "set", "backoff-base", "1"], { db });
    await enqueue(db, "true", "--id", "quick");
    await enqueue(db, "sleep 0.3", "--id", "slow");
    // Fails twice: its second run is a retry, then it is dead.
    await enqueue(db, "exit 3", "--id", "bad", "--max-retries", "1");
    await cliOk(["worker", "start", "--drain"], { db });
    await enqueue(db, "true", "--id", "later", "--delay", "1h");

    const report = await stats(db);
    assert.deepEqual(Object.keys(report), [
      "now",
      "since",
      "window_ms",
      "jobs",
      "runs",
      "duration_ms",
      "throughput",
      "oldest_waiting",
    ]);
    assert.match(report.now, ISO_UTC);
    assert.match(report.since, ISO_UTC);
    assert.equal(report.window_ms, 3_600_000, "the default window is 1h");
    assert.equal(Date.parse(report.now) - Date.parse(report.since), 3_600_000);
    assert.deepEqual(report.jobs, {
      blocked: 0,
      pending: 1,
      processing: 0,
      completed: 2,
      failed: 0,
      dead: 1,
    });
    assert.deepEqual(report.runs, {
      total: 4,
      succeeded: 2,
      failed: 2,
      retries: 1,
      success_rate: 0.5,
    });
    const d = report.duration_ms;
    assert.ok(d, "durations are known");
    for (const key of ["mean", "p50", "p95", "max"] as const) {
      assert.ok(Number.isInteger(d[key]) && d[key] >= 0, `${key}: ${d[key]}`);
    }
    assert.ok(d.max >= 300, `the longest run slept 300 ms: ${d.max}`);
    assert.ok(d.p50 <= d.p95 && d.p95 <= d.max, JSON.stringify(d));
    assert.deepEqual(Object.keys(report.throughput), ["last_1m", "last_15m", "last_60m"]);
    assert.deepEqual(report.throughput.last_15m, { runs: 4, runs_per_minute: 0.267 });
    assert.deepEqual(report.throughput.last_60m, { runs: 4, runs_per_minute: 0.067 });
    // The delayed job waits but is not due: nothing is overdue.
    assert.ok(report.oldest_waiting);
    assert.match(report.oldest_waiting.run_at, ISO_UTC);
    assert.ok(Date.parse(report.oldest_waiting.run_at) > Date.parse(report.now));
    assert.equal(report.oldest_waiting.overdue_ms, null);

    const text = await cliOk(["stats"], { db });
    assert.match(text, /^Jobs now$/m);
    assert.match(text, /^ {2}blocked +0 +completed +2$/m);
    assert.match(text, /^ {2}pending +1 +failed +0$/m);
    assert.match(text, /^ {2}processing +0 +dead +1$/m);
    assert.match(text, /^Runs finished in the last 1h \(since \d{4}-\d\d-\d\dT[\d:]+Z\)$/m);
    assert.match(text, /^ {2}total +4 {2}\(2 succeeded, 2 failed\)$/m);
    assert.match(text, /^ {2}success +50\.0%$/m);
    assert.match(text, /^ {2}retries +1 /m);
    assert.match(text, /^ {2}duration +mean \S+ {2}p50 \S+ {2}p95 \S+ {2}max \S+$/m);
    assert.match(text, /^Throughput \(runs finished per minute\)$/m);
    assert.match(text, /last 15m: 0\.27 {4}last 60m: 0\.07$/m);
    assert.match(text, /^Oldest waiting job: none due yet \(next at .*Z\)$/m);
  }));

Deno.test("stats tells how long the oldest waiting job has been due", () =>
  withQueue(async ({ db }) => {
    await enqueue(db, "true", "--id", "first");
    const report = await waitFor("the job to be due for a second", async () => {
      const report = await stats(db);
      return (report.oldest_waiting?.overdue_ms ?? 0) >= 1_000 ? report : undefined;
    });
    assert.equal(report.runs.total, 0);
    assert.equal(report.runs.success_rate, null);
    assert.equal(report.duration_ms, null);
    assert.match(
      await cliOk(["stats"], { db }),
      /^Oldest waiting job: due \d[\d.]*s ago \(run_at .*Z\)$/m,
    );
  }));

Deno.test("stats --since leaves out runs that ended before the window", () =>
  withQueue(async ({ db }) => {
    await enqueue(db, "true");
    await cliOk(["worker", "start", "--drain"], { db });
    assert.equal((await stats(db)).runs.total, 1);
    // Once the run is more than 500 ms old, a 500 ms window no longer holds it.
    const narrow = await waitFor(
      "the run to fall out of a 500 ms window",
      async () => {
        const report = await stats(db, "--since", "500ms");
        return report.runs.total === 0 ? report : undefined;
      },
    );
    assert.equal(narrow.window_ms, 500);
    assert.equal(Date.parse(narrow.now) - Date.parse(narrow.since), 500);
    assert.equal(narrow.duration_ms, null);
    assert.equal(narrow.runs.success_rate, null);
    assert.equal(narrow.jobs.completed, 1, "counts by state are of now, whatever the window");
    assert.equal((await stats(db, "--since", "1h")).runs.total, 1);
    assert.match(await cliOk(["stats", "--since", "500ms"], { db }), /^ {2}total +0 /m);
  }));

Deno.test("stats on an empty queue reports no runs and nothing waiting", () =>
  withQueue(async ({ db }) => {
    const report = await stats(db);
    assert.deepEqual(report.runs, {
      total: 0,
      succeeded: 0,
      failed: 0,
      retries: 0,
      success_rate: null,
    });
    assert.equal(report.duration_ms, null);
    assert.equal(report.oldest_waiting, null);
    assert.deepEqual(report.throughput.last_1m, { runs: 0, runs_per_minute: 0 });
    const text = await cliOk(["stats"], { db });
    assert.match(text, /^ {2}success +-$/m);
    assert.match(text, /^ {2}duration +-$/m);
    assert.match(text, /^Oldest waiting job: none waiting$/m);
  }));

Deno.test("stats refuses an invalid --since with exit 2 and touches no database", () =>
  withQueue(async ({ db }) => {
    for (const since of ["1x", "-5m", "0", "soon", ""]) {
      assertRefused(await cli(["stats", "--since", since], { db }), 2, `--since '${since}'`);
    }
    assertRefused(await cli(["stats", "--since"], { db }), 2, "--since without a value");
    assert.equal(await queueExists(db), false, "no database was created");
  }));
