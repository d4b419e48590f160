/**
 * The store's control surface on a real SQLite file: named queues and
 * pausing, jobs that run after others, re-runs, deletion, kill requests,
 * live output, attempt history and run metrics, and the schema 2 → 3
 * migration that brought them.
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { ClaimedJob } from "../lib/job.ts";
import { APPLICATION_ID, MIGRATIONS } from "../lib/store/sqlite_migrations.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import type { AttemptOutcome, Store } from "../lib/store/store.ts";
import { withQueue } from "./helpers.ts";
import { ended, newJob, T0 } from "./store_builders.ts";

function withStore(fn: (store: Store, path: string) => Promise<void>): Promise<void> {
  return withQueue(async ({ db }) => {
    const store = await openSqliteStore(db);
    try {
      await fn(store, db);
    } finally {
      await store.close();
    }
  });
}

/** Claims the next job (of any queue) and records `state` for it; returns its id. */
async function runNext(store: Store, state: AttemptOutcome["state"], now = T0): Promise<string> {
  const job = await store.claim("w1", now);
  assert.ok(job, "expected a job to claim");
  assert.equal(await store.finishAttempt(job, ended(state, now + 10)), true);
  return job.id;
}

async function stateOf(store: Store, id: string): Promise<string | undefined> {
  return (await store.getJob(id))?.state;
}

// ---------------------------------------------------------------------------
// Migration

Deno.test("migration 4 marks dependencies on jobs that no longer exist as gone", async () => {
  await withQueue(async ({ db: path }) => {
    const raw = new DatabaseSync(path);
    raw.exec("PRAGMA foreign_keys = OFF");
    for (const migration of MIGRATIONS.slice(0, 3)) raw.exec(migration);
    raw.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    raw.exec("PRAGMA user_version = 3");
    const insert = raw.prepare(
      `INSERT INTO jobs (id, queue, command, state, attempts, max_retries, run_at, created_at,
         updated_at, cwd) VALUES (?, 'default', 'true', ?, 0, 0, 0, 0, 0, '/')`,
    );
    insert.run("first", "pending");
    insert.run("second", "blocked");
    raw.exec(
      `INSERT INTO job_dependencies (job_id, depends_on) VALUES
         ('second', 'first'), ('second', 'purged-long-ago')`,
    );
    raw.close();

    const store = await openSqliteStore(path);
    try {
      assert.deepEqual(await store.getDependencies("second"), [
        { id: "first", state: "pending" },
        { id: "purged-long-ago", state: null },
      ]);
      // Gone, so a new job under that id is not taken for it.
      await store.enqueue([newJob("purged-long-ago")], T0);
      assert.deepEqual((await store.getDependencies("second"))[1], {
        id: "purged-long-ago",
        state: null,
      });
    } finally {
      await store.close();
    }
  });
});

Deno.test("a schema-2 database is migrated to 3 keeping every job and every attempt", async () => {
  await withQueue(async ({ db: path }) => {
    const raw = new DatabaseSync(path);
    raw.exec(MIGRATIONS[0]);
    raw.exec(MIGRATIONS[1]);
    raw.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    raw.exec("PRAGMA user_version = 2");
    const insert = raw.prepare(
      `INSERT INTO jobs (id, command, state, attempts, max_retries, run_at, created_at,
         updated_at, finished_at, cwd) VALUES (?, 'true', ?, 1, 0, 0, 0, 0, ?, '/')`,
    );
    insert.run("done", "completed", 5);
    insert.run("gone", "dead", 6);
    insert.run("waiting", "pending", null);
    raw.exec(
      `UPDATE job_counts SET n = n + 1 WHERE state IN ('completed', 'dead', 'pending');
       INSERT INTO job_attempts (job_id, attempt, started_at, finished_at, exit_code, error,
         stdout, stderr) VALUES ('done', 1, 1, 5, 0, NULL, x'6f6b', x''),
         ('gone', 1, 2, 6, 1, 'boom', x'', x'6e6f')`,
    );
    raw.close();

    const store = await openSqliteStore(path);
    try {
      const done = await store.getJob("done");
      assert.equal(done?.state, "completed");
      assert.equal(done?.queue, "default");
      assert.deepEqual((await store.listAttempts("gone")).map((a) => a.error), ["boom"]);
      assert.equal(new TextDecoder().decode((await store.latestOutput("done"))!.stdout), "ok");
      assert.equal((await store.countByState()).pending, 1);
      assert.equal(await runNext(store, "completed"), "waiting");
      assert.deepEqual((await store.listQueues()).map((q) => [q.name, q.counts.completed]), [
        ["default", 2],
      ]);
    } finally {
      await store.close();
    }
    const check = new DatabaseSync(path);
    try {
      assert.equal(check.prepare("PRAGMA foreign_keys").get()!.foreign_keys, 1);
      assert.deepEqual(check.prepare("PRAGMA foreign_key_check").all(), []);
      assert.equal(check.prepare("PRAGMA integrity_check").get()!.integrity_check, "ok");
    } finally {
      check.close();
    }
  });
});

// ---------------------------------------------------------------------------
// Named queues

Deno.test("claim() takes the best job across queues and only from the queues asked for", async () => {
  await withStore(async (store) => {
    await store.enqueue([
      newJob("a-low", { queue: "a", priority: 1 }),
      newJob("b-high", { queue: "b", priority: 5 }),
      newJob("c-mid", { queue: "c", priority: 3 }),
    ], T0);
    assert.equal((await store.claim("w", T0, { queues: ["a", "c"] }))?.id, "c-mid");
    assert.equal((await store.claim("w", T0, { queues: ["a", "c"] }))?.id, "a-low");
    assert.equal(await store.claim("w", T0, { queues: ["a", "c"] }), undefined);
    assert.equal(await store.claim("w", T0, { queues: ["nowhere"] }), undefined);
    assert.equal((await store.claim("w", T0))?.id, "b-high");
  });
});

Deno.test("a paused queue is not claimed from until it is resumed", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("p1", { queue: "slow" }), newJob("d1")], T0);
    assert.equal(await store.pauseQueue("slow", T0), true);
    assert.equal(await store.pauseQueue("slow", T0 + 1), false, "already paused");
    assert.equal((await store.claim("w", T0))?.id, "d1");
    assert.equal(await store.claim("w", T0), undefined);
    assert.equal(await store.claim("w", T0, { queues: ["slow"] }), undefined);
    assert.equal(await store.countUnfinished({}), 1, "d1 runs; slow's job does not count");
    assert.equal(await store.countUnfinished(), 2);
    assert.equal(await store.nextRunAt({}), undefined);
    assert.equal(await store.oldestWaitingRunAt(), T0);

    const slow = (await store.listQueues()).find((q) => q.name === "slow");
    assert.equal(slow?.pausedAt, T0);
    assert.equal(slow?.counts.pending, 1);

    assert.equal(await store.resumeQueue("slow"), true);
    assert.equal(await store.resumeQueue("slow"), false, "not paused any more");
    assert.equal((await store.claim("w", T0))?.id, "p1");
  });
});

Deno.test("a queue can be paused before any job is enqueued to it", async () => {
  await withStore(async (store) => {
    assert.equal(await store.pauseQueue("later", T0), true);
    await store.enqueue([newJob("l1", { queue: "later" })], T0);
    assert.equal(await store.claim("w", T0), undefined);
    assert.deepEqual((await store.listQueues()).map((q) => q.name), ["later"]);
  });
});

Deno.test("nextRunAt() and listScheduled() look only at waiting jobs, soonest first", async () => {
  await withStore(async (store) => {
    await store.enqueue([
      newJob("soon", { queue: "x", runAt: T0 + 5_000 }),
      newJob("later", { runAt: T0 + 9_000 }),
      newJob("now"),
    ], T0);
    assert.equal(await store.nextRunAt(), T0);
    assert.equal(await store.nextRunAt({ queues: ["x"] }), T0 + 5_000);
    assert.deepEqual((await store.listScheduled(T0, 10)).map((j) => j.id), ["soon", "later"]);
    assert.deepEqual((await store.listScheduled(T0, 1)).map((j) => j.id), ["soon"]);
    assert.deepEqual((await store.listJobs({ queue: "x" })).map((j) => j.id), ["soon"]);
  });
});

// ---------------------------------------------------------------------------
// Jobs that run after others

Deno.test("a job waits blocked until every job it runs after has completed", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("a"), newJob("b", { priority: 1 })], T0);
    await store.enqueue([newJob("c", { after: ["a", "b"], priority: 9 })], T0);
    assert.equal(await stateOf(store, "c"), "blocked");
    assert.deepEqual((await store.getDependencies("c")).map((dependency) => dependency.id), [
      "a",
      "b",
    ]);
    assert.equal(await runNext(store, "completed"), "b");
    assert.equal(await stateOf(store, "c"), "blocked", "a has not completed yet");
    assert.equal(await runNext(store, "completed"), "a");
    assert.equal(await stateOf(store, "c"), "pending");
    assert.equal(await runNext(store, "completed"), "c");
  });
});

Deno.test("a job after a completed one starts pending, after a dead one starts dead", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("ok"), newJob("bad")], T0);
    await runNext(store, "completed");
    await runNext(store, "dead");
    await store.enqueue(
      [newJob("x", { after: ["ok"] }), newJob("y", { after: ["ok", "bad"] })],
      T0,
    );
    assert.equal(await stateOf(store, "x"), "pending");
    const y = await store.getJob("y");
    assert.equal(y?.state, "dead");
    assert.match(y?.lastError ?? "", /'bad'.*dead/);
  });
});

Deno.test("enqueue() refuses a job after a missing one and stores nothing of the batch", async () => {
  await withStore(async (store) => {
    await assert.rejects(
      () => store.enqueue([newJob("first"), newJob("second", { after: ["ghost"] })], T0),
      /'ghost', which does not exist/,
    );
    assert.equal(await store.getJob("first"), undefined);
    assert.equal(await store.countUnfinished(), 0);
  });
});

Deno.test("a job may run after one enqueued earlier in the same batch", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("one"), newJob("two", { after: ["one"] })], T0);
    assert.equal(await stateOf(store, "two"), "blocked");
  });
});

Deno.test("a dead job takes the whole chain after it to the DLQ, naming the cause", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("root")], T0);
    await store.enqueue([newJob("mid", { after: ["root"] })], T0);
    await store.enqueue([newJob("leaf", { after: ["mid"] }), newJob("free")], T0);
    assert.equal(await runNext(store, "dead"), "root");
    const mid = await store.getJob("mid");
    const leaf = await store.getJob("leaf");
    assert.equal(mid?.state, "dead");
    assert.match(mid?.lastError ?? "", /runs after 'root'/);
    assert.equal(leaf?.state, "dead");
    assert.match(leaf?.lastError ?? "", /runs after 'mid'/);
    assert.equal(await stateOf(store, "free"), "pending");
    assert.equal((await store.countByState()).dead, 3);
  });
});

Deno.test("a purged dependency stays listed as gone: a new job with its id holds nothing back", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("build")], T0);
    await store.enqueue([newJob("deploy", { after: ["build"] })], T0);
    assert.equal(await runNext(store, "completed"), "build");
    assert.equal(await runNext(store, "completed", T0 + 20), "deploy");
    assert.deepEqual(await store.getDependencies("deploy"), [{ id: "build", state: "completed" }]);

    assert.equal(await store.purgeJobs(["completed"], T0 + 15), 1, "only build is old enough");
    assert.deepEqual(await store.getDependencies("deploy"), [{ id: "build", state: null }]);
    // A new, unrelated job under the old name: re-running deploy must not wait for it.
    await store.enqueue([newJob("build")], T0 + 30);
    assert.deepEqual(await store.getDependencies("deploy"), [{ id: "build", state: null }]);
    assert.deepEqual(await store.rerunJobs(["deploy"], T0 + 40), ["deploy"]);
    assert.equal(await stateOf(store, "deploy"), "pending");
  });
});

Deno.test("deleting a waiting job sends the jobs after it to the DLQ and lists it as gone", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("first"), newJob("second", { after: ["first"] })], T0);
    assert.equal(await store.deleteJobs({ ids: ["first"] }, T0 + 1), 1);
    const second = await store.getJob("second");
    assert.equal(second?.state, "dead");
    assert.match(second?.lastError ?? "", /runs after 'first', which was deleted/);
    assert.deepEqual(await store.getDependencies("second"), [{ id: "first", state: null }]);
  });
});

// ---------------------------------------------------------------------------
// Re-runs

Deno.test("rerunJobs() starts finished jobs over and keeps their history", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("done"), newJob("gone")], T0);
    await runNext(store, "completed");
    await runNext(store, "dead");
    assert.deepEqual(await store.rerunJobs(["gone", "done"], T0 + 100), ["done", "gone"]);
    for (const id of ["done", "gone"]) {
      const job = await store.getJob(id);
      assert.equal(job?.state, "pending");
      assert.equal(job?.attempts, 0);
    }
    await runNext(store, "completed", T0 + 200);
    assert.deepEqual((await store.listAttempts("done")).map((a) => [a.attempt, a.exitCode]), [
      [1, 0],
      [1, 0],
    ]);
  });
});

Deno.test("rerunJobs() refuses unfinished jobs and changes nothing", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("done"), newJob("waiting", { runAt: T0 + 1e6 })], T0);
    await runNext(store, "completed");
    await assert.rejects(() => store.rerunJobs(["done", "waiting"], T0), /is pending/);
    assert.equal(await stateOf(store, "done"), "completed");
    await assert.rejects(() => store.rerunJobs(["nope"], T0), /no job with id 'nope'/);
  });
});

Deno.test("a re-run job waits again for jobs it runs after, and refuses a dead one", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("parent")], T0);
    await store.enqueue([newJob("child", { after: ["parent"] })], T0);
    assert.equal(await runNext(store, "dead"), "parent");
    assert.equal(await stateOf(store, "child"), "dead");
    await assert.rejects(() => store.rerunJobs(["child"], T0), /'parent', which is dead/);
    assert.deepEqual(await store.rerunJobs(["child", "parent"], T0), ["parent", "child"]);
    assert.equal(await stateOf(store, "child"), "blocked");
    assert.equal(await runNext(store, "completed"), "parent");
    assert.equal(await runNext(store, "completed"), "child");
  });
});

// ---------------------------------------------------------------------------
// Deletion

Deno.test("deleteJobs() by ids removes jobs and their history, all or none", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("a"), newJob("b"), newJob("running", { priority: 9 })], T0);
    const running = await store.claim("w", T0);
    assert.equal(running?.id, "running");
    await assert.rejects(
      () => store.deleteJobs({ ids: ["a", "running"] }, T0),
      /is running; kill it first/,
    );
    assert.ok(await store.getJob("a"), "nothing deleted after a refusal");
    await assert.rejects(() => store.deleteJobs({ ids: ["ghost"] }, T0), /no job/);
    await runNext(store, "completed");
    assert.equal(await store.deleteJobs({ ids: ["a", "b", "a"] }, T0), 2);
    assert.equal(await store.getJob("a"), undefined);
    assert.deepEqual(await store.listAttempts("a"), []);
    assert.equal((await store.countByState()).pending, 0);
  });
});

Deno.test("deleteJobs() by state keeps jobs changed after the cut-off", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("old")], T0);
    await store.enqueue([newJob("new")], T0 + 5_000);
    assert.equal(await store.deleteJobs({ states: ["pending"], changedBefore: T0 + 1 }, T0), 1);
    assert.deepEqual((await store.listJobs({})).map((j) => j.id), ["new"]);
    await assert.rejects(() => store.deleteJobs({ states: ["processing"] }, T0));
  });
});

Deno.test("deleting an unfinished job sends the jobs waiting on it to the DLQ", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("p", { runAt: T0 + 1e6 })], T0);
    await store.enqueue([newJob("c", { after: ["p"] })], T0);
    assert.equal(await store.deleteJobs({ ids: ["p"] }, T0), 1);
    const child = await store.getJob("c");
    assert.equal(child?.state, "dead");
    assert.match(child?.lastError ?? "", /'p', which was deleted/);
  });
});

// ---------------------------------------------------------------------------
// Kill requests

Deno.test("a kill request is listed for the job's worker and sends a failed run to the DLQ", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("k", { maxRetries: 5 })], T0);
    const job = await store.claim("proc-1", T0) as ClaimedJob;
    await assert.rejects(() => store.requestKill("ghost", "dead"), /no job/);
    const request = await store.requestKill("k", "dead");
    assert.deepEqual(request, {
      id: "k",
      claimToken: job.claimToken,
      mode: "dead",
      attempt: 1,
      startedAt: T0,
    });
    assert.deepEqual(await store.listKillRequests("proc-1"), [request]);
    assert.deepEqual(await store.listKillRequests("proc-2"), []);
    assert.equal(await store.finishAttempt(job, ended("failed")), true);
    assert.equal(await stateOf(store, "k"), "dead", "retries remained, but the kill said dead");
    await assert.rejects(
      () => store.requestKill("k", "retry"),
      /not running \(its state is dead\)/,
    );
  });
});

Deno.test("a kill request does not outlive its run", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("k", { maxRetries: 5 })], T0);
    const first = await store.claim("proc-1", T0) as ClaimedJob;
    await store.requestKill("k", "retry");
    assert.equal(await store.finishAttempt(first, ended("failed")), true);
    assert.equal(await stateOf(store, "k"), "failed");
    const second = await store.claim("proc-1", T0 + 5_000) as ClaimedJob;
    assert.equal(second.id, "k");
    assert.deepEqual(await store.listKillRequests("proc-1"), []);
  });
});

// ---------------------------------------------------------------------------
// Live output, history, metrics

Deno.test("live output is kept only while its run holds the job", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("live")], T0);
    const job = await store.claim("w", T0) as ClaimedJob;
    const bytes = new TextEncoder().encode("line 1\n");
    const snapshot = {
      stdout: bytes,
      stderr: new Uint8Array(),
      stdoutTotal: 7,
      stderrTotal: 0,
      updatedAt: T0 + 1,
    };
    assert.equal(await store.recordLiveOutput(job, snapshot), true);
    const live = await store.liveOutput("live");
    assert.equal(live?.claimToken, job.claimToken);
    assert.equal(live?.attempt, 1);
    assert.deepEqual(live?.stdout, bytes);
    assert.equal(await store.recordLiveOutput({ ...job, claimToken: "stale" }, snapshot), false);
    await store.finishAttempt(job, ended("completed"));
    assert.equal(await store.liveOutput("live"), undefined);
    assert.equal(await store.recordLiveOutput(job, snapshot), false, "the run has ended");
  });
});

Deno.test("listAttempts(), recentFailures() and runStats() describe finished runs", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("flaky", { maxRetries: 1 }), newJob("fine")], T0);
    const flaky = await store.claim("w", T0) as ClaimedJob;
    await store.finishAttempt(flaky, ended("failed", T0 + 100, "exited with code 2"));
    const fine = await store.claim("w", T0 + 200) as ClaimedJob;
    await store.finishAttempt(fine, ended("completed", T0 + 500));
    const again = await store.claim("w", T0 + 2_000) as ClaimedJob;
    await store.finishAttempt(again, ended("completed", T0 + 2_400));

    const history = await store.listAttempts("flaky");
    assert.deepEqual(history.map((a) => [a.attempt, a.startedAt, a.finishedAt, a.error]), [
      [1, T0, T0 + 100, "exited with code 2"],
      [2, T0 + 2_000, T0 + 2_400, null],
    ]);
    assert.deepEqual((await store.recentFailures(5)).map((a) => a.jobId), ["flaky"]);

    const all = await store.runStats(0);
    assert.equal(all.runs, 3);
    assert.equal(all.succeeded, 2);
    assert.equal(all.failed, 1);
    assert.equal(all.retries, 1);
    assert.deepEqual(all.durationMs, { mean: 800 / 3, p50: 300, p95: 400, max: 400 });
    const recent = await store.runStats(T0 + 1_000);
    assert.equal(recent.runs, 1);
    assert.equal((await store.runStats(T0 + 10_000)).durationMs, null);
  });
});

Deno.test("deleting blocked jobs together with the jobs they wait on sends none to the DLQ", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("parent", { runAt: T0 + 1e6 })], T0);
    await store.enqueue([newJob("child", { after: ["parent"] })], T0);
    assert.equal(await store.deleteJobs({ states: ["pending", "blocked"] }, T0), 2);
    assert.deepEqual(await store.listJobs({}), []);
    assert.equal((await store.countByState()).dead, 0);
  });
});

Deno.test("countJobs() counts by state, and by last change when asked", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("old"), newJob("done")], T0);
    await store.enqueue([newJob("new")], T0 + 5_000);
    assert.equal(await runNext(store, "completed", T0 + 10_000), "old");
    assert.equal(await store.countJobs(["pending"]), 2);
    assert.equal(await store.countJobs(["pending", "completed"]), 3);
    assert.equal(await store.countJobs(["pending"], T0 + 1), 1);
    assert.equal(await store.countJobs(["completed"], T0 + 1), 0);
  });
});
