/**
 * The store conformance suite, part two (see tests/store_conformance.ts):
 * jobs that run after others, re-runs, revivals, deletion and purging,
 * counts and queues, output and run history, settings and change notices.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../lib/config.ts";
import { JobNotFoundError, QueueError } from "../lib/errors.ts";
import type { ClaimedJob, NewJob } from "../lib/job.ts";
import { JOB_STATES, type JobState } from "../lib/states.ts";
import type { AttemptOutcome, JobFilter, Store } from "../lib/store/store.ts";
import { claimOne, DAY, ended, newJob, outcome, printed, T0, text } from "./store_builders.ts";
import type { ConformanceTest } from "./store_conformance.ts";

const encoder = new TextEncoder();

/**
 * Enqueues `flaky` and `fine` at T0 and runs them: flaky fails after 100 ms,
 * fine succeeds after 300 ms, then flaky's retry succeeds after 400 ms (at
 * T0 + 2 s). Returns fine's claim.
 */
async function runFlakyAndFine(store: Store, flaky: NewJob, fine: NewJob): Promise<ClaimedJob> {
  await store.enqueue([flaky, fine], T0);
  const first = await claimOne(store, T0);
  await store.finishAttempt(first, ended("failed", T0 + 100, "exited with code 2"));
  const fineRun = await claimOne(store, T0 + 200);
  await store.finishAttempt(fineRun, ended("completed", T0 + 500));
  const again = await claimOne(store, T0 + 2_000);
  await store.finishAttempt(again, ended("completed", T0 + 2_400));
  return fineRun;
}
/** Registers the conformance tests of this file (see {@linkcode ConformanceTest}). */
export function exerciseStoreControl(test: ConformanceTest): void {
  exerciseDependencies(test);
  exerciseStartingOver(test);
  exerciseDeletion(test);
  exerciseCounts(test);
  exerciseOutput(test);
  exerciseSettings(test);
}

async function stateOf(store: Store, id: string): Promise<JobState | undefined> {
  return (await store.getJob(id))?.state;
}

/** Claims the next job due at `now` and ends its run in `state` 10 ms later; returns its id. */
async function runNext(store: Store, state: AttemptOutcome["state"], now = T0): Promise<string> {
  const job = await claimOne(store, now);
  assert.equal(await store.finishAttempt(job, ended(state, now + 10)), true);
  return job.id;
}

/** Enqueues a job with no retries and runs it into the DLQ. */
async function makeDead(store: Store, id: string, now = T0): Promise<void> {
  await store.enqueue([newJob(id, { maxRetries: 0, priority: 100 })], now);
  assert.equal(await runNext(store, "dead", now), id);
}

// ---------------------------------------------------------------------------
// Jobs that run after others

function exerciseDependencies(test: ConformanceTest): void {
  test("a job after others waits blocked until every one of them has completed", async (store) => {
    await store.enqueue([newJob("b", { priority: 1 }), newJob("a")], T0);
    await store.enqueue([newJob("c", { after: ["b", "a"], priority: 9 })], T0);
    assert.equal(await stateOf(store, "c"), "blocked");
    assert.deepEqual(await store.getDependencies("c"), [
      { id: "a", state: "pending" },
      { id: "b", state: "pending" },
    ]);
    assert.deepEqual(await store.getDependencies("a"), []);
    assert.equal(await runNext(store, "completed"), "b");
    assert.equal(await stateOf(store, "c"), "blocked", "a has not completed yet");
    assert.equal(await runNext(store, "failed"), "a");
    assert.equal(await stateOf(store, "c"), "blocked", "a failed, and will retry");
    assert.equal(await runNext(store, "completed", T0 + 2_000), "a");
    assert.equal(await stateOf(store, "c"), "pending");
    assert.deepEqual(await store.getDependencies("c"), [
      { id: "a", state: "completed" },
      { id: "b", state: "completed" },
    ]);
    assert.equal(await runNext(store, "completed", T0 + 2_000), "c");
  });

  test("a job after a completed one starts pending; after a dead one, dead", async (store) => {
    await store.enqueue([newJob("ok", { priority: 1 }), newJob("bad")], T0);
    await runNext(store, "completed");
    await runNext(store, "dead");
    await store.enqueue(
      [newJob("x", { after: ["ok"] }), newJob("y", { after: ["ok", "bad"] })],
      T0 + 100,
    );
    assert.equal(await stateOf(store, "x"), "pending");
    const y = await store.getJob("y");
    assert.deepEqual([y?.state, y?.finishedAt], ["dead", T0 + 100]);
    assert.match(y?.lastError ?? "", /'bad'.*dead/);
    assert.equal(
      await store.claim("w1", T0 + DAY, { queues: ["default"] }).then((j) => j?.id),
      "x",
    );
  });

  test("a job may run after one enqueued earlier in the same batch", async (store) => {
    await store.enqueue([newJob("one"), newJob("two", { after: ["one"], priority: 9 })], T0);
    assert.equal(await stateOf(store, "two"), "blocked");
    assert.equal(await runNext(store, "completed"), "one");
    assert.equal(await stateOf(store, "two"), "pending");
  });

  test("a dead job takes the whole chain after it to the DLQ, naming the cause", async (store) => {
    await store.enqueue([newJob("root")], T0);
    await store.enqueue([newJob("mid", { after: ["root"] })], T0);
    await store.enqueue([newJob("leaf", { after: ["mid"] }), newJob("free")], T0);
    assert.equal(await runNext(store, "dead"), "root");
    const mid = await store.getJob("mid");
    const leaf = await store.getJob("leaf");
    assert.deepEqual([mid?.state, mid?.finishedAt], ["dead", T0 + 10]);
    assert.match(mid?.lastError ?? "", /runs after 'root'/);
    assert.equal(leaf?.state, "dead");
    assert.match(leaf?.lastError ?? "", /runs after 'mid'/);
    assert.equal(await stateOf(store, "free"), "pending");
    assert.equal((await store.countByState()).dead, 3);
  });

  test("deleting an unfinished job sends the jobs after it to the DLQ, and lists it as gone", async (store) => {
    await store.enqueue([newJob("first", { runAt: T0 + DAY }), newJob("other")], T0);
    await store.enqueue([newJob("second", { after: ["first", "other"] })], T0);
    await store.enqueue([newJob("third", { after: ["second"] })], T0);
    assert.equal(await store.deleteJobs({ ids: ["first"] }, T0 + 1), 1);
    const second = await store.getJob("second");
    assert.deepEqual([second?.state, second?.finishedAt], ["dead", T0 + 1]);
    assert.match(second?.lastError ?? "", /runs after 'first', which was deleted/);
    assert.equal(await stateOf(store, "third"), "dead");
    assert.deepEqual(await store.getDependencies("second"), [
      { id: "first", state: null },
      { id: "other", state: "pending" },
    ]);
  });

  test("a completed job deleted or purged holds nothing back, even when its id comes back", async (store) => {
    await store.enqueue([newJob("build"), newJob("test", { priority: -1 })], T0);
    await store.enqueue([newJob("deploy", { after: ["build", "test"] })], T0);
    assert.equal(await runNext(store, "completed"), "build");
    assert.equal(await store.purgeJobs(["completed"], T0 + 11), 1, "build finished at T0 + 10");
    assert.deepEqual(await store.getDependencies("deploy"), [
      { id: "build", state: null },
      { id: "test", state: "pending" },
    ]);
    // A new, unrelated job under the old name: deploy must not wait for it.
    await store.enqueue([newJob("build", { runAt: T0 + DAY })], T0 + 20);
    assert.equal(await runNext(store, "completed", T0 + 30), "test");
    assert.equal(await stateOf(store, "deploy"), "pending");
    assert.equal(await runNext(store, "completed", T0 + 50), "deploy");
    assert.deepEqual(await store.rerunJobs(["deploy"], T0 + 100), ["deploy"]);
    assert.equal(await stateOf(store, "deploy"), "pending");
    assert.deepEqual((await store.getDependencies("deploy"))[0], { id: "build", state: null });
  });

  test("deleting blocked jobs together with the jobs they wait on sends none to the DLQ", async (store) => {
    await store.enqueue([newJob("parent", { runAt: T0 + DAY })], T0);
    await store.enqueue([newJob("child", { after: ["parent"] })], T0);
    assert.equal(await store.deleteJobs({ states: ["pending", "blocked"] }, T0), 2);
    assert.deepEqual(await store.listJobs({}), []);
    assert.equal((await store.countByState()).dead, 0);
  });
}

// ---------------------------------------------------------------------------
// Starting over: `retry` (rerunJobs) and `dlq retry` (reviveDead)

function exerciseStartingOver(test: ConformanceTest): void {
  test("reviveDead moves the listed dead jobs to pending, attempts 0, due now", async (store) => {
    await makeDead(store, "d1");
    await makeDead(store, "d2");
    await makeDead(store, "d3");
    assert.equal((await store.getJob("d1"))?.attempts, 1);
    const revived = await store.reviveDead(["d3", "d1", "d3"], T0 + 1_000);
    assert.deepEqual([...revived].sort(), ["d1", "d3"], "each once");
    for (const id of ["d1", "d3"]) {
      const job = await store.getJob(id);
      assert.deepEqual([job?.state, job?.attempts, job?.runAt], ["pending", 0, T0 + 1_000]);
    }
    assert.equal(await stateOf(store, "d2"), "dead");
    assert.equal(await store.claim("w1", T0 + 999), undefined);
    assert.equal((await claimOne(store, T0 + 1_000)).attempts, 1);
  });

  test("reviveDead revives none of a list that names a job not dead, or no job", async (store) => {
    await makeDead(store, "d1");
    await makeDead(store, "d2");
    await store.enqueue([newJob("alive")], T0);
    await assert.rejects(
      store.reviveDead(["d1", "alive", "d2"], T0 + 1_000),
      (error) => error instanceof QueueError && /alive/.test(error.message),
    );
    await assert.rejects(
      store.reviveDead(["d1", "nope"], T0 + 1_000),
      (error) => error instanceof JobNotFoundError && error.id === "nope",
    );
    for (const id of ["d1", "d2"]) {
      const job = await store.getJob(id);
      assert.deepEqual([job?.state, job?.attempts], ["dead", 1]);
    }
    assert.equal(await stateOf(store, "alive"), "pending");
  });

  test("reviveDead('all') revives every dead job and nothing else", async (store) => {
    await makeDead(store, "d1");
    await makeDead(store, "d2");
    await store.enqueue([newJob("p", { runAt: T0 + 10_000 })], T0);
    assert.deepEqual([...await store.reviveDead("all", T0 + 1_000)].sort(), ["d1", "d2"]);
    const counts = await store.countByState();
    assert.deepEqual([counts.dead, counts.pending], [0, 3]);
    assert.equal((await store.getJob("d2"))?.attempts, 0);
    assert.deepEqual(await store.reviveDead("all", T0 + 2_000), []);
  });

  test("rerunJobs starts completed and dead jobs over, keeping their history", async (store) => {
    await store.enqueue([newJob("done", { priority: 1 }), newJob("gone")], T0);
    await runNext(store, "completed");
    await runNext(store, "dead");
    assert.deepEqual(
      await store.rerunJobs(["gone", "done"], T0 + 100),
      ["done", "gone"],
      "in the order they were enqueued",
    );
    for (const id of ["done", "gone"]) {
      const job = await store.getJob(id);
      assert.deepEqual([job?.state, job?.attempts, job?.runAt], ["pending", 0, T0 + 100]);
    }
    assert.equal(await runNext(store, "completed", T0 + 200), "done");
    assert.deepEqual((await store.listAttempts("done")).map((a) => [a.attempt, a.finishedAt]), [
      [1, T0 + 10],
      [1, T0 + 210],
    ]);
  });

  test("rerunJobs refuses a job that has not finished, or no job, and changes nothing", async (store) => {
    await store.enqueue([newJob("done"), newJob("waiting", { runAt: T0 + DAY })], T0);
    await runNext(store, "completed");
    await assert.rejects(store.rerunJobs(["done", "waiting"], T0), /is pending/);
    await assert.rejects(
      store.rerunJobs(["done", "nope"], T0),
      (error) => error instanceof JobNotFoundError && error.id === "nope",
    );
    assert.equal(await stateOf(store, "done"), "completed");
    const running = newJob("running");
    await store.enqueue([running], T0);
    await claimOne(store, T0);
    await assert.rejects(store.rerunJobs(["running"], T0), /is processing/);
  });

  test("a job started over waits again for jobs it runs after, and refuses a dead one", async (store) => {
    await store.enqueue([newJob("parent")], T0);
    await store.enqueue([newJob("child", { after: ["parent"] })], T0);
    assert.equal(await runNext(store, "dead"), "parent");
    assert.equal(await stateOf(store, "child"), "dead");
    await assert.rejects(store.rerunJobs(["child"], T0), /'parent', which is dead/);
    await assert.rejects(store.reviveDead(["child"], T0), /'parent', which is dead/);
    assert.equal(await stateOf(store, "child"), "dead");
    assert.deepEqual((await store.rerunJobs(["child", "parent"], T0)).sort(), ["child", "parent"]);
    assert.equal(await stateOf(store, "child"), "blocked");
    assert.equal(await runNext(store, "completed"), "parent");
    assert.equal(await runNext(store, "completed"), "child");
  });
}

// ---------------------------------------------------------------------------
// Deletion and purging

function exerciseDeletion(test: ConformanceTest): void {
  test("deleteJobs by ids removes the jobs with their history, all or none", async (store) => {
    await store.enqueue([newJob("a"), newJob("b"), newJob("running", { priority: 9 })], T0);
    const running = await claimOne(store, T0);
    assert.equal(running.id, "running");
    await assert.rejects(
      store.deleteJobs({ ids: ["a", "running"] }, T0),
      (error) => error instanceof QueueError && /is running; kill it first/.test(error.message),
    );
    await assert.rejects(
      store.deleteJobs({ ids: ["a", "ghost"] }, T0),
      (error) => error instanceof JobNotFoundError && error.id === "ghost",
    );
    assert.ok(await store.getJob("a"), "nothing deleted after a refusal");
    assert.equal(await runNext(store, "completed"), "a");
    assert.equal(await store.deleteJobs({ ids: ["a", "b", "a"] }, T0), 2);
    assert.equal(await store.getJob("a"), undefined);
    assert.deepEqual(await store.listAttempts("a"), []);
    assert.equal(await store.latestOutput("a"), undefined);
    assert.deepEqual(
      { ...await store.countByState() },
      { blocked: 0, pending: 0, processing: 1, completed: 0, failed: 0, dead: 0 },
    );
  });

  test("deleteJobs by state removes only jobs last changed before the cut-off", async (store) => {
    await store.enqueue([newJob("old"), newJob("old-done", { priority: 1 })], T0);
    await store.enqueue([newJob("new")], T0 + 5_000);
    assert.equal(await runNext(store, "completed", T0 + 1), "old-done");
    assert.equal(await store.deleteJobs({ states: ["pending"], changedBefore: T0 + 1 }, T0), 1);
    assert.deepEqual((await store.listJobs({})).map((j) => j.id), ["new", "old-done"]);
    assert.equal(await store.deleteJobs({ states: ["completed", "pending"] }, T0), 2);
    assert.deepEqual(await store.listJobs({}), []);
    await assert.rejects(store.deleteJobs({ states: ["processing"] }, T0), QueueError);
  });

  test("purgeJobs deletes only finished jobs that ended before the cut-off, with their output", async (store) => {
    await store.enqueue(
      [newJob("old-done", { priority: 3 }), newJob("old-dead", { priority: 2 })],
      T0,
    );
    await store.enqueue([newJob("new-done", { priority: 1 }), newJob("waiting")], T0);
    assert.equal(await runNext(store, "completed", T0), "old-done");
    assert.equal(await runNext(store, "dead", T0 + 1), "old-dead");
    assert.equal(await runNext(store, "completed", T0 + 2 * DAY), "new-done");

    await assert.rejects(store.purgeJobs(["pending"], T0 + DAY), QueueError);
    assert.equal(await store.purgeJobs(["completed"], T0 + DAY), 1);
    assert.equal(await store.getJob("old-done"), undefined);
    assert.equal(await store.latestOutput("old-done"), undefined);
    assert.deepEqual(await store.listAttempts("old-done"), []);
    assert.ok(await store.getJob("old-dead"), "dead jobs stay when only completed are purged");
    assert.equal(await store.purgeJobs(["completed", "dead"], T0 + DAY), 1);
    assert.ok(await store.getJob("new-done"), "a job that finished after the cut-off stays");
    assert.equal(await stateOf(store, "waiting"), "pending");
    assert.equal(await store.purgeJobs(["completed", "dead"], T0 + DAY), 0);
    // new-done finished at T0 + 2 days + 10 ms: only a run that ended before the cut-off goes.
    assert.equal(await store.purgeJobs(["completed"], T0 + 2 * DAY + 10), 0);
    assert.equal(await store.purgeJobs(["completed"], T0 + 2 * DAY + 11), 1);
  });
}

// ---------------------------------------------------------------------------
// Counts, lists and queues

/** Puts jobs in every state but blocked: c completed, f failed, x dead, p processing, q and r pending. */
async function oneOfEach(store: Store): Promise<void> {
  await store.enqueue([newJob("c"), newJob("f"), newJob("x"), newJob("p")], T0);
  await store.finishAttempt(await claimOne(store), outcome("completed"));
  await store.finishAttempt(await claimOne(store), outcome("failed", { retryAt: T0 + 7_000 }));
  await store.finishAttempt(await claimOne(store), outcome("dead"));
  assert.equal((await claimOne(store)).id, "p");
  await store.enqueue([newJob("q", { runAt: T0 + 3_000 }), newJob("r", { runAt: T0 + 9_000 })], T0);
}

function exerciseCounts(test: ConformanceTest): void {
  test("countByState lists every state, zero or not", async (store) => {
    assert.deepEqual(
      { ...await store.countByState() },
      { blocked: 0, pending: 0, processing: 0, completed: 0, failed: 0, dead: 0 },
    );
    await oneOfEach(store);
    await store.enqueue([newJob("b", { after: ["q"] })], T0);
    assert.deepEqual(
      { ...await store.countByState() },
      { blocked: 1, pending: 2, processing: 1, completed: 1, failed: 1, dead: 1 },
    );
  });

  test("countJobs counts jobs in some states, or only those last changed before a moment", async (store) => {
    await store.enqueue([newJob("old"), newJob("done")], T0);
    await store.enqueue([newJob("new")], T0 + 5_000);
    assert.equal(await runNext(store, "completed", T0 + 10_000), "old");
    assert.equal(await store.countJobs(["pending"]), 2);
    assert.equal(await store.countJobs(["pending", "completed", "pending"]), 3);
    assert.equal(await store.countJobs(["pending"], T0 + 1), 1);
    assert.equal(await store.countJobs(["completed"], T0 + 1), 0);
    assert.equal(await store.countJobs([]), 0);
  });

  test("countUnfinished counts jobs waiting or running; with a selection, not in paused queues", async (store) => {
    assert.equal(await store.countUnfinished(), 0);
    await oneOfEach(store);
    await store.enqueue([newJob("b", { after: ["q"] }), newJob("m", { queue: "mail" })], T0);
    assert.equal(await store.countUnfinished(), 6, "p, f, q, r, b and m");
    assert.equal(await store.countUnfinished({ queues: ["mail"] }), 1);
    await store.pauseQueue("default", T0);
    assert.equal(await store.countUnfinished({}), 1, "only mail is served");
    assert.equal(await store.countUnfinished(), 6);
  });

  test("nextRunAt, oldestWaitingRunAt and listScheduled look only at jobs waiting to run", async (store) => {
    assert.equal(await store.nextRunAt(), undefined);
    assert.equal(await store.oldestWaitingRunAt(), undefined);
    await oneOfEach(store); // waiting: f at T0+7000, q at T0+3000, r at T0+9000
    await store.enqueue([newJob("soon", { queue: "x", runAt: T0 + 5_000 })], T0);
    assert.equal(await store.nextRunAt(), T0 + 3_000);
    assert.equal(await store.nextRunAt({ queues: ["x"] }), T0 + 5_000);
    assert.deepEqual((await store.listScheduled(T0, 10)).map((j) => j.id), ["q", "soon", "f", "r"]);
    assert.deepEqual((await store.listScheduled(T0 + 5_000, 1)).map((j) => j.id), ["f"]);
    await store.pauseQueue("default", T0);
    assert.equal(await store.nextRunAt(), T0 + 5_000, "paused queues are not served");
    assert.equal(await store.nextRunAt({ queues: ["default"] }), undefined);
    assert.equal(await store.oldestWaitingRunAt(), T0 + 3_000, "paused or not");
    await store.resumeQueue("default");
    assert.equal((await claimOne(store, T0 + 3_000)).id, "q");
    assert.equal(await store.nextRunAt(), T0 + 5_000);
  });

  test("listJobs lists jobs newest first, by states, queue and limit", async (store) => {
    await oneOfEach(store);
    await makeDead(store, "d2");
    await store.enqueue([newJob("m", { queue: "mail" })], T0);
    const ids = async (filter: JobFilter) => (await store.listJobs(filter)).map((job) => job.id);
    // Enqueued in the order c, f, x, p, q, r, d2, m (newest last).
    assert.deepEqual(await ids({}), ["m", "d2", "r", "q", "p", "x", "f", "c"]);
    assert.deepEqual(await ids({ states: ["dead", "failed"] }), ["d2", "x", "f"]);
    assert.deepEqual(await ids({ states: ["failed", "dead", "failed"] }), ["d2", "x", "f"]);
    assert.deepEqual(await ids({ states: ["dead", "failed"], limit: 2 }), ["d2", "x"]);
    assert.deepEqual(await ids({ states: ["pending", "completed"] }), ["m", "r", "q", "c"]);
    assert.deepEqual(await ids({ states: ["pending", "completed"], queue: "mail" }), ["m"]);
    assert.deepEqual(await ids({ states: ["pending"], queue: "default", limit: 1 }), ["r"]);
    assert.deepEqual(await ids({ queue: "mail" }), ["m"]);
    assert.deepEqual(await ids({ limit: 3 }), ["m", "d2", "r"]);
    assert.deepEqual(await ids({ states: [] }), await ids({}));
    assert.deepEqual(await ids({ states: [...JOB_STATES] }), await ids({}));
    assert.deepEqual(await ids({ states: ["blocked", "processing"] }), ["p"]);
    assert.deepEqual(await ids({ queue: "nowhere" }), []);
  });

  test("listQueues lists every queue that holds jobs or is paused, by name, with its counts", async (store) => {
    assert.deepEqual(await store.listQueues(), []);
    await store.enqueue([newJob("m1", { queue: "mail" }), newJob("m2", { queue: "mail" })], T0);
    await store.enqueue([newJob("d1"), newJob("z1", { queue: "zeta" })], T0);
    await store.pauseQueue("idle", T0 + 1);
    await store.pauseQueue("mail", T0 + 2);
    assert.equal(await runNext(store, "completed"), "d1");
    assert.equal(await store.deleteJobs({ ids: ["z1"] }, T0), 1);
    const summaries = (await store.listQueues()).map((q) => ({ ...q, counts: { ...q.counts } }));
    const counts = { blocked: 0, pending: 0, processing: 0, completed: 0, failed: 0, dead: 0 };
    const unlimited = { limits: { concurrency: null, rate: null }, recentStarts: 0 };
    assert.deepEqual(summaries, [
      { name: "default", pausedAt: null, counts: { ...counts, completed: 1 }, ...unlimited },
      { name: "idle", pausedAt: T0 + 1, counts, ...unlimited },
      { name: "mail", pausedAt: T0 + 2, counts: { ...counts, pending: 2 }, ...unlimited },
    ]);
  });
}

// ---------------------------------------------------------------------------
// Output, run history and metrics

function exerciseOutput(test: ConformanceTest): void {
  test("live output is kept only while its run holds the job", async (store) => {
    await store.enqueue([newJob("live"), newJob("released", { priority: -1 })], T0);
    const job = await claimOne(store, T0);
    assert.equal(await store.liveOutput("live"), undefined, "nothing recorded yet");
    const snapshot = {
      stdout: encoder.encode("line 1\n"),
      stderr: new Uint8Array([0xff, 0]),
      stdoutTotal: 70,
      stderrTotal: 2,
      updatedAt: T0 + 1,
    };
    assert.equal(await store.recordLiveOutput(job, snapshot), true);
    const live = await store.liveOutput("live");
    assert.deepEqual(live && { ...live, stdout: text(live.stdout), stderr: [...live.stderr] }, {
      claimToken: job.claimToken,
      attempt: 1,
      stdout: "line 1\n",
      stderr: [0xff, 0],
      stdoutTotal: 70,
      stderrTotal: 2,
      updatedAt: T0 + 1,
    });
    assert.equal(
      await store.recordLiveOutput(job, { ...snapshot, stdout: encoder.encode("line 2\n") }),
      true,
    );
    assert.equal(text((await store.liveOutput("live"))?.stdout), "line 2\n", "the newest wins");
    assert.equal(await store.recordLiveOutput({ ...job, claimToken: "stale" }, snapshot), false);
    await store.finishAttempt(job, ended("completed"));
    assert.equal(await store.liveOutput("live"), undefined, "the run has ended");
    assert.equal(await store.recordLiveOutput(job, snapshot), false);

    const other = await claimOne(store, T0);
    assert.equal(await store.recordLiveOutput(other, snapshot), true);
    assert.equal(await store.releaseJob(other, T0 + 2), true);
    assert.equal(await store.liveOutput("released"), undefined, "a released run has ended too");
  });

  test("latestOutput and attemptOutput read finished runs; numbers start again after a retry", async (store) => {
    const textOf = async (attempt: number) => {
      const output = await store.attemptOutput("a", attempt);
      return output && `${output.attempt}:${text(output.stdout)}`;
    };
    await store.enqueue([newJob("a", { maxRetries: 1 })], T0);
    assert.equal(await textOf(1), undefined, "no run yet");
    assert.equal(await store.latestOutput("a"), undefined);
    await store.finishAttempt(await claimOne(store), printed("failed", "first round, run 1"));
    await store.finishAttempt(await claimOne(store), {
      ...printed("completed", "first round, run 2"),
      output: {
        stdout: encoder.encode("first round, run 2"),
        stderr: encoder.encode("err"),
        stdoutDropped: 5,
        stderrDropped: 6,
      },
    });
    assert.equal(await textOf(1), "1:first round, run 1");
    assert.equal(await textOf(2), "2:first round, run 2");
    const latest = await store.latestOutput("a");
    assert.deepEqual(
      latest && [latest.attempt, text(latest.stderr), latest.stdoutDropped, latest.stderrDropped],
      [2, "err", 5, 6],
    );
    assert.deepEqual(await store.rerunJobs(["a"], T0 + 600), ["a"]);
    await store.finishAttempt(
      await claimOne(store, T0 + 600),
      printed("completed", "second round"),
    );
    assert.equal(await textOf(1), "1:second round", "the newest run numbered 1");
    assert.equal(await textOf(2), "2:first round, run 2");
    assert.equal(await textOf(3), undefined);
    assert.equal(text((await store.latestOutput("a"))?.stdout), "second round");
    assert.equal(await store.attemptOutput("nope", 1), undefined);
    await store.enqueue([newJob("b")], T0 + 700);
    await store.finishAttempt(await claimOne(store, T0 + 700), printed("completed", "job b"));
    assert.equal(text((await store.latestOutput("b"))?.stdout), "job b");
    assert.equal(text((await store.latestOutput("a"))?.stdout), "second round", "each job's own");
  });

  test("newestOutputs reads every job's newest output at once, a running job's so far", async (store) => {
    await store.enqueue([
      newJob("done", { priority: 5 }),
      newJob("retrying", { priority: 4 }),
      newJob("running", { priority: 3 }),
      newJob("silent", { priority: 2 }),
      newJob("never", { runAt: T0 + 60_000 }),
    ], T0);
    await store.finishAttempt(await claimOne(store), printed("completed", "all done"));
    await store.finishAttempt(await claimOne(store), {
      ...printed("failed", "first try"),
      retryAt: T0 + 60_000,
    });
    const running = await claimOne(store);
    assert.ok(
      await store.recordLiveOutput(running, {
        stdout: encoder.encode("tail of it"),
        stderr: encoder.encode("warn"),
        stdoutTotal: 100,
        stderrTotal: 4,
        updatedAt: T0 + 50,
      }),
    );
    assert.equal((await claimOne(store)).id, "silent");
    const ids = ["done", "retrying", "running", "silent", "never", "missing"];
    const shown = Object.fromEntries(
      [...await store.newestOutputs(ids)].map(([id, o]) => [id, {
        attempt: o.attempt,
        finished: o.finished,
        stdout: text(o.stdout),
        stderr: text(o.stderr),
        dropped: [o.stdoutDropped, o.stderrDropped],
      }]),
    );
    assert.deepEqual(shown, {
      done: { attempt: 1, finished: true, stdout: "all done", stderr: "", dropped: [0, 0] },
      retrying: { attempt: 1, finished: true, stdout: "first try", stderr: "", dropped: [0, 0] },
      running: {
        attempt: 1,
        finished: false,
        stdout: "tail of it",
        stderr: "warn",
        dropped: [90, 0],
      },
      silent: { attempt: 1, finished: false, stdout: "", stderr: "", dropped: [0, 0] },
    });
    assert.equal((await store.newestOutputs([])).size, 0);
  });

  test("runsByMinute counts the runs ended since a moment by their minute, oldest first", async (store) => {
    assert.deepEqual(await store.runsByMinute(0), []);
    await store.enqueue(["a", "b", "c", "d"].map((id) => newJob(id, { maxRetries: 0 })), T0);
    // T0 is 20 s into its minute: 45 s later is the next minute, 200 s later three minutes on.
    const minute = Math.floor(T0 / 60_000) * 60_000;
    const a = await claimOne(store, T0);
    await store.finishAttempt(a, ended("dead", T0 + 100, "exited with code 1"));
    const b = await claimOne(store, T0 + 200);
    await store.finishAttempt(b, ended("completed", T0 + 500));
    const c = await claimOne(store, T0 + 40_000);
    await store.finishAttempt(c, ended("completed", T0 + 45_000));
    const d = await claimOne(store, T0 + 190_000);
    await store.finishAttempt(d, ended("dead", T0 + 200_000, "exited with code 1"));
    assert.deepEqual((await store.runsByMinute(0)).map((row) => ({ ...row })), [
      { minute, succeeded: 1, failed: 1 },
      { minute: minute + 60_000, succeeded: 1, failed: 0 },
      { minute: minute + 180_000, succeeded: 0, failed: 1 },
    ]);
    assert.deepEqual(
      (await store.runsByMinute(T0 + 500)).map((row) => ({ ...row })),
      [
        { minute, succeeded: 1, failed: 0 },
        { minute: minute + 60_000, succeeded: 1, failed: 0 },
        { minute: minute + 180_000, succeeded: 0, failed: 1 },
      ],
      "from the moment on, the moment included",
    );
    assert.deepEqual(await store.runsByMinute(T0 + 200_001), []);
  });

  test("listAttempts, recentFailures, runStats and lastRun describe finished runs", async (store) => {
    assert.equal(await store.lastRun(), undefined);
    assert.deepEqual(await store.runStats(0), {
      runs: 0,
      succeeded: 0,
      failed: 0,
      retries: 0,
      durationMs: null,
    });
    await runFlakyAndFine(store, newJob("flaky", { maxRetries: 1 }), newJob("fine"));

    assert.deepEqual((await store.listAttempts("flaky")).map((a) => ({ ...a })), [
      {
        jobId: "flaky",
        attempt: 1,
        startedAt: T0,
        finishedAt: T0 + 100,
        exitCode: 1,
        error: "exited with code 2",
      },
      {
        jobId: "flaky",
        attempt: 2,
        startedAt: T0 + 2_000,
        finishedAt: T0 + 2_400,
        exitCode: 0,
        error: null,
      },
    ]);
    assert.deepEqual(await store.listAttempts("nope"), []);
    assert.deepEqual((await store.recentFailures(5)).map((a) => [a.jobId, a.attempt]), [
      ["flaky", 1],
    ]);
    assert.deepEqual(await store.recentFailures(0), []);
    assert.deepEqual(
      [(await store.lastRun())?.jobId, (await store.lastRun())?.finishedAt],
      ["flaky", T0 + 2_400],
    );
    const all = await store.runStats(0);
    assert.deepEqual({ ...all }, {
      runs: 3,
      succeeded: 2,
      failed: 1,
      retries: 1,
      durationMs: { mean: 800 / 3, p50: 300, p95: 400, max: 400 },
    });
    assert.equal((await store.runStats(T0 + 1_000)).runs, 1, "only runs ended since then");
    assert.equal((await store.runStats(T0 + 2_400)).runs, 1, "at the moment counts");
    assert.equal((await store.runStats(T0 + 10_000)).durationMs, null);
  });

  test("runTotals tallies every recorded run by queue, and deleting or purging jobs never lowers it", async (store) => {
    assert.deepEqual(await store.runTotals(), []);
    // flaky's retry lasts 400 ms: past the 250 ms bound, within the 500 ms one.
    const fine = await runFlakyAndFine(
      store,
      newJob("flaky", { queue: "a", maxRetries: 1 }),
      newJob("fine", { queue: "b" }),
    );
    // Claimed and given back unrun: no run to count.
    await store.enqueue([newJob("released", { queue: "a" })], T0);
    assert.equal(await store.releaseJob(await claimOne(store, T0 + 3_000), T0 + 3_000), true);
    // A late word for a run already ended records nothing, and counts nothing.
    assert.equal(await store.finishAttempt(fine, ended("completed", T0 + 600)), false);

    // Buckets by RUN_DURATION_BOUNDS_MS: 50, 100, 250, 500, 1000, ... ms.
    const expected = [
      {
        queue: "a",
        succeeded: 1,
        failed: 1,
        retries: 1,
        timed: 2,
        durationSumMs: 500,
        atMostMs: [0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2],
      },
      {
        queue: "b",
        succeeded: 1,
        failed: 0,
        retries: 0,
        timed: 1,
        durationSumMs: 300,
        atMostMs: [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
      },
    ];
    assert.deepEqual((await store.runTotals()).map((t) => ({ ...t })), expected);
    // The tally outlives the runs: the metrics' counters must never go down.
    assert.equal(await store.deleteJobs({ ids: ["fine"] }, T0 + 5_000), 1);
    assert.equal(await store.purgeJobs(["completed"], T0 + 10_000), 1);
    assert.equal(await store.getJob("flaky"), undefined);
    assert.deepEqual((await store.runTotals()).map((t) => ({ ...t })), expected);
  });

  test("countFinishedSince counts exactly the jobs that finished after the mark and stayed finished", async (store) => {
    // Before the mark: one job completed, one dead, one running, four waiting.
    await store.enqueue([
      newJob("old-done", { priority: 9 }),
      newJob("old-dead", { priority: 8, maxRetries: 0 }),
    ], T0);
    await store.finishAttempt(await claimOne(store), printed("completed", "", T0 + 100));
    await store.finishAttempt(await claimOne(store), printed("dead", "", T0 + 100));
    await store.enqueue([
      newJob("running", { priority: 7 }),
      newJob("ok", { priority: 6 }),
      newJob("dies", { priority: 5, maxRetries: 0 }),
      newJob("stays", { runAt: T0 + 3_600_000 }),
      newJob("child", { after: ["dies"] }),
    ], T0);
    const running = await claimOne(store, T0 + 200);
    assert.equal(running.id, "running");

    const mark = await store.markHistory(T0 + 1_000);
    assert.equal(mark.at, T0 + 1_000);
    assert.equal(mark.unfinished, 5, "running, ok, dies, stays and child");
    assert.deepEqual({ ...await store.countFinishedSince(mark) }, { completed: 0, dead: 0 });

    await store.finishAttempt(running, printed("completed", "", T0 + 1_100));
    await store.finishAttempt(
      await claimOne(store, T0 + 1_200),
      printed("completed", "", T0 + 1_300),
    );
    const dies = await claimOne(store, T0 + 1_400);
    assert.equal(dies.id, "dies");
    // Its dependent "child" follows it into the DLQ without a run of its own.
    await store.finishAttempt(dies, printed("dead", "", T0 + 1_500));
    assert.equal(await stateOf(store, "child"), "dead");
    // A job finished before the mark, run again, counts once it has finished again.
    await store.rerunJobs(["old-done"], T0 + 1_600);
    await store.finishAttempt(
      await claimOne(store, T0 + 1_600),
      printed("completed", "", T0 + 1_700),
    );
    // A job added after the mark that finished and was then retried is unfinished again.
    await store.enqueue([newJob("new")], T0 + 1_800);
    await store.finishAttempt(
      await claimOne(store, T0 + 1_800),
      printed("completed", "", T0 + 1_900),
    );
    await store.rerunJobs(["new"], T0 + 2_000);
    // Deleting jobs finished before the mark (as retention does) takes nothing from the count.
    assert.equal(await store.purgeJobs(["dead"], T0 + 1_000), 1, "old-dead is purged");

    assert.deepEqual({ ...await store.countFinishedSince(mark) }, { completed: 3, dead: 2 });
    assert.equal((await store.lastRun())?.jobId, "new", "the run that ended last");
  });
}

// ---------------------------------------------------------------------------
// Settings, change notices, location

function exerciseSettings(test: ConformanceTest): void {
  test("getConfig gives the defaults of a new queue", async (store) => {
    assert.deepEqual({ ...await store.getConfig() }, { ...DEFAULT_CONFIG });
  });

  test("setConfig stores each setting where every connection reads it", async (store, opened) => {
    await store.setConfig("maxRetries", 9);
    await store.setConfig("backoffBase", 1.5);
    await store.setConfig("jobTimeoutMs", 45_000);
    await store.setConfig("jobTimeoutMs", null);
    await store.setConfig("backoffMaxMs", 60_000);
    await store.setConfig("retentionMs", 86_400_000);
    await store.setConfig("leaseTimeoutMs", 45_000);
    const expected = {
      maxRetries: 9,
      backoffBase: 1.5,
      backoffMaxMs: 60_000,
      jobTimeoutMs: null,
      retentionMs: 86_400_000,
      leaseTimeoutMs: 45_000,
    };
    assert.deepEqual({ ...await store.getConfig() }, expected);
    const other = await opened.connect();
    assert.deepEqual({ ...await other.getConfig() }, expected);
    await other.setConfig("retentionMs", null);
    assert.equal((await store.getConfig()).retentionMs, null);
  });

  test(
    "the notifier tells a change committed by another connection from none",
    async (store, opened) => {
      const other = await opened.connect();
      assert.equal(await store.notifier.changed(), true, "the first call takes a baseline");
      assert.equal(await store.notifier.changed(), false);
      await other.enqueue([newJob("a")], T0);
      assert.equal(await store.notifier.changed(), true);
      assert.equal(await store.notifier.changed(), false);
      await other.getJob("a");
      assert.equal(await store.notifier.changed(), false, "a read is not a change");
      await other.claim("w1", T0);
      assert.equal(await store.notifier.changed(), true);
      assert.equal(await other.claim("w2", T0), undefined);
      assert.equal(
        await store.notifier.changed(),
        false,
        "a claim that found nothing is no change",
      );
    },
  );

  test("a store names its location and is still there while open", async (store) => {
    assert.equal(typeof store.location, "string");
    assert.ok(store.location.length > 0);
    assert.equal(await store.stillAtLocation(), true);
  });
}
