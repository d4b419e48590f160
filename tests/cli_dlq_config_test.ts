/**
 * Black-box tests of the dead-letter queue commands (`dlq list`, `dlq
 * retry`) and of `config get/set/list`.
 */

import assert from "node:assert/strict";
import type { JobJson } from "../lib/job.ts";
import { assertRefused, cli, cliOk, jobCounts, showJob, withQueue } from "./helpers.ts";

/**
 * Runs jobs `d1` and `d2` (which fail, with no retries) and `ok` (which
 * succeeds) to the end, so that `d1` and `d2` are dead. With `pending`, a
 * delayed job `p1` is enqueued afterwards.
 */
async function deadQueue(db: string, pending = false): Promise<void> {
  await cliOk(["config", "set", "backoff-base", "1"], { db });
  await cliOk(["enqueue", "--file", "-"], {
    db,
    stdin: [
      { id: "d1", command: "exit 1", max_retries: 0 },
      { id: "ok", command: "true" },
      { id: "d2", command: "exit 2", max_retries: 0 },
    ].map((spec) => JSON.stringify(spec)).join("\n"),
  });
  await cliOk(["worker", "start", "--drain"], { db });
  if (pending) await cliOk(["enqueue", "--id", "p1", "--delay", "1h", "true"], { db });
}

/** The jobs of `dlq list --json <args>`. */
async function dlqJobs(db: string, ...args: string[]): Promise<JobJson[]> {
  return JSON.parse(await cliOk(["dlq", "list", "--json", ...args], { db }));
}

Deno.test("dlq list shows only dead jobs, newest first", () =>
  withQueue(async ({ db }) => {
    assert.deepEqual(await dlqJobs(db), [], "a fresh queue has an empty DLQ");
    const empty = await cli(["dlq", "list"], { db });
    assert.equal(empty.code, 0);
    assert.equal(empty.stdout, "");

    await deadQueue(db, true);
    const dead = await dlqJobs(db);
    assert.deepEqual(dead.map((job) => job.id), ["d2", "d1"]);
    for (const job of dead) {
      assert.equal(job.state, "dead");
      assert.equal(job.attempts, 1);
    }
    assert.equal(dead[0].exit_code, 2);
    assert.deepEqual((await dlqJobs(db, "--limit", "1")).map((job) => job.id), ["d2"]);

    // Every row is dead, so the table shows why each job died instead of its state.
    const table = await cliOk(["dlq", "list"], { db });
    assert.match(table, /^ID\s+QUEUE\s+ATTEMPTS\s+DIED\s+ERROR\s+COMMAND$/m);
    assert.match(table, /^d2\s+default\s+1\/1\s+.*\bexited with code 2\b/m);
    assert.match(table, /^d1\s+default\s+1\/1\s/m);
    assert.doesNotMatch(table, /^(ok|p1)\s/m, "only dead jobs");
  }));

Deno.test("dlq retry sends dead jobs back to pending with attempts 0", () =>
  withQueue(async ({ db }) => {
    await deadQueue(db);
    const before = Date.now();
    assert.equal(await cliOk(["dlq", "retry", "d1"], { db }), "d1\n");
    const after = Date.now();
    const d1 = await showJob(db, "d1");
    assert.equal(d1.state, "pending");
    assert.equal(d1.attempts, 0);
    const runAt = Date.parse(d1.run_at);
    assert.ok(runAt >= before - 1 && runAt <= after, `d1 is due now, not at ${d1.run_at}`);
    assert.equal((await showJob(db, "d2")).state, "dead", "only the named job left the DLQ");
    assert.deepEqual((await dlqJobs(db)).map((job) => job.id), ["d2"]);

    assert.equal(await cliOk(["dlq", "retry", "--all"], { db }), "d2\n");
    assert.deepEqual(await dlqJobs(db), []);
    assert.deepEqual(await jobCounts(db), {
      blocked: 0,
      pending: 2,
      processing: 0,
      completed: 1,
      failed: 0,
      dead: 0,
    });
    const again = await cli(["dlq", "retry", "--all"], { db });
    assert.equal(again.code, 0, "retrying an empty DLQ is no error");
    assert.equal(again.stdout, "");

    // Revived jobs really run again: each fails once more and is back in the DLQ.
    await cliOk(["worker", "start", "--drain"], { db });
    for (const id of ["d1", "d2"]) {
      const job = await showJob(db, id);
      assert.equal(job.state, "dead", id);
      assert.equal(job.attempts, 1, id);
    }
  }));

Deno.test("dlq retry refuses a job that is not dead and changes nothing", () =>
  withQueue(async ({ db }) => {
    await deadQueue(db, true);
    const before = await cliOk(["list", "--json"], { db });

    const completed = await cli(["dlq", "retry", "d1", "ok"], { db });
    assertRefused(completed, 1, "retry of a completed job");
    assert.match(completed.stderr, /'ok'/, "the message names the job");
    assertRefused(await cli(["dlq", "retry", "d2", "p1"], { db }), 1, "retry of a pending job");
    assertRefused(await cli(["dlq", "retry", "d1", "nope"], { db }), 1, "retry of a missing job");
    assertRefused(await cli(["dlq", "retry", "nope"], { db }), 1, "retry of a missing job alone");
    assertRefused(await cli(["dlq", "retry"], { db }), 2, "retry without ids");
    assertRefused(await cli(["dlq", "retry", "--all", "d1"], { db }), 2, "ids and --all");

    assert.equal(await cliOk(["list", "--json"], { db }), before, "no job changed");
    assert.equal((await showJob(db, "d1")).state, "dead");
  }));

Deno.test("config starts with the documented defaults", () =>
  withQueue(async ({ db }) => {
    const defaults: [string, string][] = [
      ["max-retries", "3"],
      ["backoff-base", "2"],
      ["backoff-max", "1h"],
      ["job-timeout", "none"],
      ["retention", "none"],
      ["lease-timeout", "30s"],
    ];
    for (const [key, value] of defaults) {
      assert.equal(await cliOk(["config", "get", key], { db }), `${value}\n`, key);
    }
    const list = await cliOk(["config", "list"], { db });
    for (const [key, value] of defaults) {
      assert.match(list, new RegExp(`^${key}\\s+${value}\\b`, "m"), `config list shows ${key}`);
    }
    assert.deepEqual(JSON.parse(await cliOk(["config", "list", "--json"], { db })), {
      max_retries: 3,
      backoff_base: 2,
      backoff_max_ms: 3_600_000,
      job_timeout_ms: null,
      retention_ms: null,
      lease_timeout_ms: 30_000,
    });
  }));

Deno.test("config set changes a setting that config get and config list read back", () =>
  withQueue(async ({ db }) => {
    const changes: [string, string][] = [
      ["max-retries", "5"],
      ["max-retries", "0"],
      ["backoff-base", "1"],
      ["backoff-base", "1.5"],
      ["backoff-max", "2h"],
      ["job-timeout", "30s"],
    ];
    for (const [key, value] of changes) {
      assert.equal(await cliOk(["config", "set", key, value], { db }), `${key} = ${value}\n`);
      assert.equal(await cliOk(["config", "get", key], { db }), `${value}\n`, `${key} ${value}`);
    }
    const list = await cliOk(["config", "list"], { db });
    assert.match(list, /^max-retries\s+0\b/m);
    assert.match(list, /^backoff-base\s+1\.5\b/m);
    assert.match(list, /^backoff-max\s+2h\b/m);
    assert.match(list, /^job-timeout\s+30s\b/m);

    await cliOk(["config", "set", "job-timeout", "none"], { db });
    assert.equal(await cliOk(["config", "get", "job-timeout"], { db }), "none\n");
  }));

Deno.test("config takes keys spelled with _ and says what it set, as config get prints it", () =>
  withQueue(async ({ db }) => {
    const changes: [string, string, string][] = [
      ["max_retries", "5", "max-retries = 5"],
      ["backoff_base", "3", "backoff-base = 3"],
      ["backoff_max", "90000ms", "backoff-max = 90s"],
      ["job_timeout", "120", "job-timeout = 2m"],
      ["retention", "7d", "retention = 7d"],
      ["lease_timeout", " 45s ", "lease-timeout = 45s"],
    ];
    for (const [key, value, said] of changes) {
      assert.equal(await cliOk(["config", "set", key, value], { db }), `${said}\n`, key);
      assert.equal(
        await cliOk(["config", "get", key], { db }),
        await cliOk(["config", "get", key.replaceAll("_", "-")], { db }),
        key,
      );
    }
    assert.deepEqual(JSON.parse(await cliOk(["config", "list", "--json"], { db })), {
      max_retries: 5,
      backoff_base: 3,
      backoff_max_ms: 90_000,
      job_timeout_ms: 120_000,
      retention_ms: 604_800_000,
      lease_timeout_ms: 45_000,
    });
    assert.match(await cliOk(["config", "list"], { db }), /^max-retries\s+5\b/m);
    await cliOk(["config", "set", "job_timeout", "none"], { db });
    assert.equal(
      JSON.parse(await cliOk(["config", "list", "--json"], { db })).job_timeout_ms,
      null,
    );
    // A config set takes effect under the one name: a job enqueued now gets max-retries 5.
    await cliOk(["enqueue", "--id", "uses-it", "true"], { db });
    assert.equal((await showJob(db, "uses-it")).max_retries, 5);

    const unknown = await cli(["config", "set", "max_retry", "1"], { db });
    assertRefused(unknown, 2, "a key that is no setting");
    assert.match(unknown.stderr, /unknown config key 'max_retry' \(known: max-retries,/);
  }));

Deno.test("a new max-retries or job-timeout applies only to jobs enqueued after the change", () =>
  withQueue(async ({ db }) => {
    await cliOk(["enqueue", "--id", "before", "true"], { db });
    await cliOk(["config", "set", "max-retries", "5"], { db });
    await cliOk(["config", "set", "job-timeout", "30s"], { db });
    await cliOk(["enqueue", "--id", "after", "true"], { db });
    await cliOk(["enqueue", '{"id":"own","command":"true","max_retries":1,"timeout":"2s"}'], {
      db,
    });
    await cliOk(["enqueue", "--id", "flag", "--max-retries", "0", "true"], { db });

    const before = await showJob(db, "before");
    assert.equal(before.max_retries, 3);
    assert.equal(before.timeout_ms, null);
    const after = await showJob(db, "after");
    assert.equal(after.max_retries, 5);
    assert.equal(after.timeout_ms, 30_000);
    const own = await showJob(db, "own");
    assert.equal(own.max_retries, 1, "a job's own value wins over the config");
    assert.equal(own.timeout_ms, 2_000);
    assert.equal((await showJob(db, "flag")).max_retries, 0);
  }));

Deno.test("config refuses unknown keys and bad values and keeps the old settings", () =>
  withQueue(async ({ db }) => {
    await cliOk(["config", "set", "max-retries", "4"], { db });
    const before = await cliOk(["config", "list", "--json"], { db });
    const refused: string[][] = [
      ["set", "backoff-base", "0.5"],
      ["set", "backoff-base", "0"],
      ["set", "backoff-base", "-2"],
      ["set", "backoff-base", "abc"],
      ["set", "max-retries", "-1"],
      ["set", "max-retries", "x"],
      ["set", "max-retries", "1.5"],
      ["set", "backoff-max", "5x"],
      ["set", "backoff-max", "0"],
      ["set", "job-timeout", "0"],
      ["set", "job-timeout", "soon"],
      ["set", "bogus", "1"],
      ["set", "max-retries"],
      ["get", "bogus"],
      ["get"],
    ];
    for (const args of refused) {
      assertRefused(await cli(["config", ...args], { db }), 2, `config ${args.join(" ")}`);
    }
    assert.equal(await cliOk(["config", "list", "--json"], { db }), before);
  }));
