/**
 * Retries with exponential backoff, the DLQ, and `dlq retry`, with real
 * worker processes. Each job records the moment it starts, so the gaps
 * between its runs can be checked against the backoff.
 */

import assert from "node:assert/strict";
import type { JobJson } from "../lib/job.ts";
import {
  cliOk,
  drain,
  enqueueIn,
  exitWithin,
  killProcess,
  readLines,
  showJob,
  startWorker,
  withQueue,
} from "./helpers.ts";

/** Slack for clock granularity when comparing a gap with the backoff, in ms. */
const SLACK_MS = 50;
/** How much longer than the backoff a gap may be before it counts as wrong, in ms (generous). */
const LATE_MS = 2_500;

/** The start times a job recorded in `path`, epoch ms. */
async function startTimes(path: string): Promise<number[]> {
  return (await readLines(path)).map(Number);
}

/** Checks that the run after each gap waited at least `backoffMs[i]`, but not absurdly longer. */
function assertGaps(times: number[], backoffMs: number[]): void {
  assert.equal(times.length, backoffMs.length + 1, `start times: ${times.join(", ")}`);
  backoffMs.forEach((backoff, i) => {
    const gap = times[i + 1] - times[i];
    assert.ok(gap >= backoff - SLACK_MS, `run ${i + 2} came ${gap} ms after run ${i + 1}`);
    assert.ok(gap <= backoff + LATE_MS, `run ${i + 2} came ${gap} ms after run ${i + 1}`);
  });
}

function assertDead(job: JobJson, runs: number, exitCode: number): void {
  assert.equal(job.state, "dead");
  assert.equal(job.attempts, runs);
  assert.equal(job.exit_code, exitCode);
  assert.match(job.last_error ?? "", new RegExp(`\\b${exitCode}\\b`));
}

Deno.test("a failing job is retried with backoff, buried in the DLQ, and revived by dlq retry", () =>
  withQueue(async ({ dir, db }) => {
    await cliOk(["config", "set", "backoff-base", "1"], { db });
    // Fails until the file 'fixed' exists.
    const id = await enqueueIn(
      dir,
      db,
      "date +%s%3N >> times; [ -f fixed ] || exit 7",
      "--max-retries",
      "2",
    );
    await drain(db);

    const dead = await showJob(db, id);
    assertDead(dead, 3, 7);
    assertGaps(await startTimes(`${dir}/times`), [1000, 1000]);
    const dlq: JobJson[] = JSON.parse(await cliOk(["dlq", "list", "--json"], { db }));
    assert.deepEqual(dlq.map((job) => job.id), [id]);

    await Deno.writeTextFile(`${dir}/fixed`, "");
    assert.equal((await cliOk(["dlq", "retry", id], { db })).trim(), id);
    const revived = await showJob(db, id);
    assert.equal(revived.state, "pending");
    assert.equal(revived.attempts, 0);
    assert.deepEqual(JSON.parse(await cliOk(["dlq", "list", "--json"], { db })), []);

    const worker = startWorker(db, ["--once"]);
    try {
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
    const done = await showJob(db, id);
    assert.equal(done.state, "completed");
    assert.equal(done.attempts, 1);
    assert.equal(done.exit_code, 0);
    assert.equal((await startTimes(`${dir}/times`)).length, 4);
  }));

Deno.test("with backoff base 2 and max-retries 1 the one retry waits 2 seconds", () =>
  withQueue(async ({ dir, db }) => {
    await cliOk(["config", "set", "backoff-base", "2"], { db });
    await cliOk(["config", "set", "max-retries", "1"], { db });
    const id = await enqueueIn(dir, db, "date +%s%3N >> times; exit 1");
    assert.equal((await showJob(db, id)).max_retries, 1);
    await drain(db);

    assertDead(await showJob(db, id), 2, 1);
    assertGaps(await startTimes(`${dir}/times`), [2000]);
  }));

Deno.test("a job that fails and then succeeds is completed, not dead", () =>
  withQueue(async ({ dir, db }) => {
    await cliOk(["config", "set", "backoff-base", "1"], { db });
    const id = await enqueueIn(
      dir,
      db,
      'date +%s%3N >> times; [ "$QUEUECTL_ATTEMPT" -ge 2 ] || exit 4',
      "--max-retries",
      "3",
    );
    await drain(db);

    const job = await showJob(db, id);
    assert.equal(job.state, "completed");
    assert.equal(job.attempts, 2);
    assert.equal(job.exit_code, 0);
    assertGaps(await startTimes(`${dir}/times`), [1000]);
  }));
