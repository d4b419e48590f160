/**
 * The store conformance suite: every behaviour of the {@linkcode Store}
 * contract (lib/store/store.ts), checked through that interface alone and
 * never by reading a backend's tables, so that any backend can be held to
 * it. A backend's test file calls {@linkcode exerciseStore} with a factory
 * that opens a fresh, empty store (tests/sqlite_conformance_test.ts does so
 * for SQLite).
 *
 * The suite is in four files:
 * - this one: enqueueing, claiming, fencing by claim token, outcomes and
 *   kills;
 * - tests/store_conformance_history.ts: a seeded random history of all of
 *   these, checked step by step against the in-memory model of
 *   tests/store_model.ts;
 * - tests/store_conformance_control.ts: jobs that run after others,
 *   re-runs, revivals, deletion and purging, counts and queues, output and
 *   history, settings, change notices;
 * - tests/store_conformance_workers.ts: the worker registry, orphaned jobs
 *   and maintenance, as the interface has them today (leases, rescue and
 *   maintenance election are being redesigned: that group changes with them).
 *
 * Every test is named `store conformance (<backend>): <behaviour>`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DuplicateJobError, JobNotFoundError, QueueError } from "../lib/errors.ts";
import type { JobState } from "../lib/states.ts";
import type { QueueSelection, Store } from "../lib/store/store.ts";
import { failureOutcome, NO_OUTPUT } from "../lib/worker/outcome.ts";
import { claimOne, DAY, ended, newJob, outcome, printed, T0, text } from "./store_builders.ts";
import { exerciseStoreControl } from "./store_conformance_control.ts";
import { exerciseRandomHistory } from "./store_conformance_history.ts";
import { exerciseWorkerRegistry } from "./store_conformance_workers.ts";
import { exerciseStoreSearch } from "./store_conformance_search.ts";
import { exerciseQueueLimits } from "./store_conformance_limits.ts";

/** A fresh, empty store opened for one test, and how to get rid of it. */
export interface OpenedStore {
  store: Store;
  /**
   * Opens another connection to the same storage, as another process would;
   * `cleanup` closes it.
   */
  connect(): Promise<Store>;
  /** Closes every connection and deletes the storage. */
  cleanup(): Promise<void>;
}

/** Opens a fresh, empty store of the backend under test. */
export type OpenStore = () => Promise<OpenedStore>;

/** Registers one conformance test: `body` runs on a fresh store, cleaned up afterwards. */
export type ConformanceTest = (
  behaviour: string,
  body: (store: Store, opened: OpenedStore) => Promise<void>,
) => void;

/**
 * Registers the whole conformance suite (one `Deno.test` per behaviour) for
 * a backend.
 *
 * @param backend the backend's name, shown in every test name
 * @param open opens a fresh, empty store of that backend
 */
export function exerciseStore(backend: string, open: OpenStore): void {
  const test = conformanceTest(backend, open);
  exerciseEnqueue(test);
  exerciseClaim(test);
  exerciseRandomHistory(test);
  exerciseFencing(test);
  exerciseOutcomes(test);
  exerciseKills(test);
  exerciseFinishAndClaim(test);
  exerciseStoreControl(test);
  exerciseWorkerRegistry(test);
  exerciseStoreSearch(test);
  exerciseQueueLimits(test);
}

/**
 * The {@linkcode ConformanceTest} of a backend: each test on a fresh store
 * from `open`, cleaned up afterwards. The suite runners give it to the parts
 * of the suite in files of their own (e.g. tests/store_conformance_env_unique.ts).
 */
export function conformanceTest(backend: string, open: OpenStore): ConformanceTest {
  return (behaviour, body) =>
    Deno.test(`store conformance (${backend}): ${behaviour}`, async () => {
      const opened = await open();
      try {
        await body(opened.store, opened);
      } finally {
        await opened.cleanup();
      }
    });
}

async function stateOf(store: Store, id: string): Promise<JobState | undefined> {
  return (await store.getJob(id))?.state;
}

/** Claims every job due at `now`, in the order the store hands them out. */
async function claimAll(store: Store, now: number, selection?: QueueSelection): Promise<string[]> {
  const order: string[] = [];
  for (let job = await store.claim("w1", now, selection); job;) {
    order.push(job.id);
    job = await store.claim("w1", now, selection);
  }
  return order;
}

// ---------------------------------------------------------------------------
// Enqueue

function exerciseEnqueue(test: ConformanceTest): void {
  test("enqueue stores every field of a job and getJob reads it back", async (store) => {
    const command = `printf '%s\\n' "héllo wörld ✓ 日本語 🚀" 'it''s "quoted"' \`date\` $HOME`;
    const jobs = [
      newJob("job-1", {
        queue: "mail",
        command,
        maxRetries: 7,
        priority: -3,
        runAt: T0 + 60_000,
        timeoutMs: 1_500,
        cwd: "/tmp/a folder/ünï",
        env: { LANG: "C.UTF-8", GREETING: "héllo" },
        uniqueKey: "nightly report ✓",
        uniqueForMs: 60_000,
      }),
      newJob("job 2 'ü'", { timeoutMs: null, priority: 9, maxRetries: 0 }),
    ];
    await store.enqueue(jobs, T0 + 1);
    for (const job of jobs) {
      const { after: _after, uniqueForMs: _uniqueFor, ...stored } = job;
      assert.deepEqual({ ...await store.getJob(job.id) }, {
        env: {},
        uniqueKey: null,
        ...stored,
        state: "pending",
        attempts: 0,
        createdAt: T0 + 1,
        updatedAt: T0 + 1,
        startedAt: null,
        finishedAt: null,
        exitCode: null,
        lastError: null,
        workerId: null,
      });
    }
    assert.equal(await store.getJob("no-such-job"), undefined);
    await store.enqueue([], T0 + 2);
    assert.equal((await store.countByState()).pending, 2, "an empty batch adds nothing");
  });

  test("enqueue keeps max retries and priority as large as a job spec may give", async (store) => {
    // Specs and --max-retries/--priority accept whole numbers up to 2^53 - 1.
    const huge = Number.MAX_SAFE_INTEGER;
    await store.enqueue([newJob("huge", { maxRetries: huge, priority: huge })], T0);
    const stored = await store.getJob("huge");
    assert.deepEqual([stored?.maxRetries, stored?.priority], [huge, huge]);
    const claimed = await store.claim("w1", T0);
    assert.deepEqual([claimed?.id, claimed?.maxRetries, claimed?.priority], ["huge", huge, huge]);
  });

  test("enqueue stores none of a batch whose id is taken, and the store stays usable", async (store) => {
    await store.enqueue([newJob("taken", { command: "echo original" })], T0);
    await assert.rejects(
      store.enqueue([newJob("new-1"), newJob("new-2"), newJob("taken"), newJob("new-4")], T0 + 1),
      (error) => error instanceof DuplicateJobError && error.id === "taken",
    );
    for (const id of ["new-1", "new-2", "new-4"]) assert.equal(await store.getJob(id), undefined);
    assert.equal((await store.getJob("taken"))?.command, "echo original");
    assert.equal((await store.countByState()).pending, 1);
    await store.enqueue([newJob("new-1")], T0 + 2);
    assert.equal((await store.countByState()).pending, 2);
  });

  test("enqueue stores none of a batch that repeats an id within itself", async (store) => {
    await assert.rejects(
      store.enqueue([newJob("a"), newJob("b"), newJob("a")], T0),
      (error) => error instanceof DuplicateJobError && error.id === "a",
    );
    assert.equal((await store.countByState()).pending, 0);
    assert.deepEqual(await store.listJobs({}), []);
  });

  test("enqueue stores none of a batch with a job after one that does not exist", async (store) => {
    await assert.rejects(
      store.enqueue([newJob("first"), newJob("second", { after: ["ghost"] })], T0),
      (error) => error instanceof QueueError && /'ghost', which does not exist/.test(error.message),
    );
    assert.equal(await store.getJob("first"), undefined);
    assert.equal(await store.countUnfinished(), 0);
    assert.deepEqual(await store.listQueues(), []);
  });
}

// ---------------------------------------------------------------------------
// Claim

function exerciseClaim(test: ConformanceTest): void {
  test("claim takes the highest priority first, then the earliest run_at, then enqueue order", async (store) => {
    await store.enqueue([
      newJob("low-early", { priority: 0, runAt: T0 - 5_000 }),
      newJob("high-late-1", { priority: 5, runAt: T0 - 1_000 }),
      newJob("high-late-2", { priority: 5, runAt: T0 - 1_000 }),
      newJob("high-early", { priority: 5, runAt: T0 - 2_000 }),
      newJob("negative", { priority: -1, runAt: T0 - 9_000 }),
      newJob("low-late", { priority: 0, runAt: T0 - 100 }),
    ], T0 - 10_000);
    // A later batch with the same priority and run_at comes after the earlier one.
    await store.enqueue([newJob("high-late-3", { priority: 5, runAt: T0 - 1_000 })], T0 - 9_000);
    assert.deepEqual(await claimAll(store, T0), [
      "high-early",
      "high-late-1",
      "high-late-2",
      "high-late-3",
      "low-early",
      "low-late",
      "negative",
    ]);
  });

  test("claim skips jobs scheduled later and takes them once due", async (store) => {
    await store.enqueue([
      newJob("later", { runAt: T0 + 10_000, priority: 10 }),
      newJob("now", { runAt: T0 }),
    ], T0);
    assert.equal((await claimOne(store, T0)).id, "now", "run_at equal to now is due");
    assert.equal(await store.claim("w1", T0), undefined);
    assert.equal(await store.claim("w1", T0 + 9_999), undefined);
    assert.equal((await claimOne(store, T0 + 10_000)).id, "later");
  });

  test("claim finds due jobs below priority levels that are all scheduled later", async (store) => {
    await store.enqueue([
      ...Array.from(
        { length: 50 },
        (_, i) => newJob(`top-${i}`, { priority: 9, runAt: T0 + 5_000 }),
      ),
      ...Array.from(
        { length: 10 },
        (_, i) => newJob(`level-${i}`, { priority: 8 - i, runAt: T0 + 5_000 }),
      ),
      newJob("mid", { priority: -5, runAt: T0 + 5_000 }),
      newJob("due-low", { priority: -20, runAt: T0 }),
      newJob("due-high", { priority: -10, runAt: T0 - 1 }),
      newJob("elsewhere", { queue: "other", priority: 7, runAt: T0 + 5_000 }),
    ], T0);
    assert.deepEqual(await claimAll(store, T0), ["due-high", "due-low"]);
    // Once due, the higher levels come first again, across queues.
    const rest = await claimAll(store, T0 + 5_000);
    assert.equal(rest.length, 62);
    assert.deepEqual(rest.slice(0, 2), ["top-0", "top-1"]);
    assert.deepEqual(rest.slice(49, 53), ["top-49", "level-0", "level-1", "elsewhere"]);
    assert.equal(rest.at(-1), "mid");
  });

  test("claim marks the job processing for its worker, counts the attempt and hands out a fresh token", async (store) => {
    await store.enqueue([newJob("a"), newJob("b")], T0 - 1_000);
    const a = await claimOne(store, T0, "worker-x");
    assert.equal(a.id, "a");
    assert.equal(a.state, "processing");
    assert.equal(a.attempts, 1);
    assert.equal(a.startedAt, T0);
    assert.equal(a.updatedAt, T0);
    assert.equal(a.workerId, "worker-x");
    assert.equal(typeof a.claimToken, "string");
    assert.ok(a.claimToken.length > 0);
    const { claimToken: _token, ...stored } = a;
    assert.deepEqual({ ...await store.getJob("a") }, stored);
    const b = await claimOne(store, T0, "worker-y");
    assert.notEqual(b.claimToken, a.claimToken);
    assert.equal(b.workerId, "worker-y");
  });

  test("claim and finishAndClaim take the token the worker chose, and the claim holds under it", async (store) => {
    await store.enqueue([newJob("a"), newJob("b")], T0);
    const chosen = [crypto.randomUUID(), crypto.randomUUID()];
    const a = await store.claim("w1", T0, undefined, chosen[0]);
    assert.equal(a?.claimToken, chosen[0]);
    const { next } = await store.finishAndClaim(
      a!,
      outcome("completed"),
      "w1",
      T0 + 1,
      undefined,
      chosen[1],
    );
    assert.deepEqual([next?.id, next?.claimToken], ["b", chosen[1]]);
    assert.equal(
      await store.finishAttempt({ ...next!, claimToken: chosen[0] }, outcome("completed")),
      false,
    );
    assert.equal(await store.finishAttempt(next!, outcome("completed")), true);
  });

  test("claim never hands out a job that is held", async (store) => {
    await store.enqueue([newJob("only")], T0);
    assert.equal((await claimOne(store, T0, "w1")).id, "only");
    assert.equal(await store.claim("w2", T0), undefined);
    assert.equal(await store.claim("w1", T0 + DAY), undefined);
    assert.equal((await store.getJob("only"))?.attempts, 1);
  });

  test("claim takes only from the selected queues, the best job across them", async (store) => {
    await store.enqueue([
      newJob("a-low", { queue: "a", priority: 1 }),
      newJob("b-high", { queue: "b", priority: 5 }),
      newJob("c-mid", { queue: "c", priority: 3 }),
    ], T0);
    assert.deepEqual(await claimAll(store, T0, { queues: ["a", "c"] }), ["c-mid", "a-low"]);
    assert.equal(await store.claim("w", T0, { queues: ["nowhere"] }), undefined);
    assert.equal(await store.claim("w", T0, { queues: [] }), undefined, "no queue selected");
    assert.equal((await store.claim("w", T0, {}))?.id, "b-high", "every queue");
  });

  test("claim skips a paused queue until it is resumed", async (store) => {
    await store.enqueue([newJob("p1", { queue: "slow", priority: 9 }), newJob("d1")], T0);
    assert.equal(await store.pauseQueue("slow", T0), true);
    assert.equal(await store.pauseQueue("slow", T0 + 1), false, "already paused");
    assert.equal((await store.claim("w", T0))?.id, "d1");
    assert.equal(await store.claim("w", T0), undefined);
    assert.equal(await store.claim("w", T0, { queues: ["slow"] }), undefined);
    assert.equal(await store.resumeQueue("slow"), true);
    assert.equal(await store.resumeQueue("slow"), false, "not paused any more");
    assert.equal((await store.claim("w", T0, { queues: ["slow"] }))?.id, "p1");
  });

  test("a queue paused before it has any job is not claimed from", async (store) => {
    assert.equal(await store.pauseQueue("later", T0), true);
    await store.enqueue([newJob("l1", { queue: "later" })], T0 + 1);
    assert.equal(await store.claim("w", T0 + 1), undefined);
    assert.deepEqual(
      (await store.listQueues()).map((q) => [q.name, q.pausedAt, q.counts.pending]),
      [["later", T0, 1]],
    );
  });

  test(
    "claims on several connections at once never hand out a job twice",
    async (store, opened) => {
      const connections = [store, ...await Promise.all([1, 2, 3].map(() => opened.connect()))];
      const ids = Array.from({ length: 200 }, (_, i) => `job-${i}`);
      await store.enqueue(ids.map((id) => newJob(id)), T0);
      const results = await Promise.all(
        Array.from({ length: 240 }, (_, i) => connections[i % 4].claim(`w${i % 4}`, T0)),
      );
      const claimed = results.filter((job) => job !== undefined);
      assert.equal(claimed.length, 200);
      assert.deepEqual(claimed.map((job) => job.id).sort(), [...ids].sort());
      assert.equal(new Set(claimed.map((job) => job.claimToken)).size, 200);
      assert.ok(claimed.every((job) => job.attempts === 1));
      assert.equal((await connections[2].countByState()).processing, 200);
    },
  );
}

// ---------------------------------------------------------------------------
// Fencing: only the current claim may speak for a run

function exerciseFencing(test: ConformanceTest): void {
  test("finishAttempt under a wrong claim token changes nothing", async (store) => {
    await store.enqueue([newJob("a")], T0);
    const job = await claimOne(store);
    const before = await store.getJob("a");
    const forged = { ...job, claimToken: crypto.randomUUID() };
    assert.equal(await store.finishAttempt(forged, printed("completed", "forged")), false);
    assert.deepEqual(await store.getJob("a"), before);
    assert.equal(await store.latestOutput("a"), undefined);
    assert.deepEqual(await store.listAttempts("a"), []);
    assert.equal(await store.releaseJob(forged, T0 + 1), false);
    assert.equal((await store.getJob("a"))?.state, "processing");
    assert.equal(await store.finishAttempt(job, outcome("completed")), true, "the owner still can");
  });

  test("a second outcome for a finished run is discarded", async (store) => {
    await store.enqueue([newJob("a")], T0);
    const job = await claimOne(store);
    assert.equal(await store.finishAttempt(job, printed("completed", "first")), true);
    const before = await store.getJob("a");
    assert.equal(await store.finishAttempt(job, printed("dead", "second", T0 + 9_000)), false);
    assert.equal(await store.releaseJob(job, T0 + 9_000), false);
    assert.deepEqual(await store.getJob("a"), before);
    assert.equal(text((await store.latestOutput("a"))?.stdout), "first");
    assert.equal((await store.listAttempts("a")).length, 1);
  });

  test("a late outcome from a run whose job was released and claimed again is discarded", async (store) => {
    await store.enqueue([newJob("a", { maxRetries: 5 })], T0);
    const first = await claimOne(store, T0, "w1");
    assert.equal(await store.releaseJob(first, T0 + 1), true);
    const second = await claimOne(store, T0 + 2, "w2");
    assert.equal(second.id, "a");
    assert.notEqual(second.claimToken, first.claimToken);
    const live = {
      stdout: new Uint8Array([1]),
      stderr: new Uint8Array(),
      stdoutTotal: 1,
      stderrTotal: 0,
      updatedAt: T0 + 3,
    };
    assert.equal(await store.finishAttempt(first, printed("dead", "late")), false);
    assert.equal(await store.releaseJob(first, T0 + 3), false);
    assert.equal(await store.recordLiveOutput(first, live), false);
    const job = await store.getJob("a");
    assert.deepEqual([job?.state, job?.workerId, job?.attempts], ["processing", "w2", 1]);
    assert.equal(await store.liveOutput("a"), undefined);
    assert.equal(await store.finishAttempt(second, printed("completed", "on time")), true);
    assert.equal((await store.getJob("a"))?.state, "completed");
    assert.equal(text((await store.latestOutput("a"))?.stdout), "on time");
  });

  test("releaseJob returns a claimed job to pending without counting its attempt, once", async (store) => {
    await store.enqueue([newJob("a")], T0);
    const job = await claimOne(store);
    assert.equal(job.attempts, 1);
    assert.equal(await store.releaseJob(job, T0 + 50), true);
    const stored = await store.getJob("a");
    assert.deepEqual([stored?.state, stored?.attempts, stored?.workerId], ["pending", 0, null]);
    assert.equal(await store.releaseJob(job, T0 + 60), false);
    assert.equal(await store.finishAttempt(job, outcome("completed")), false);
    assert.equal((await store.getJob("a"))?.state, "pending");
    const again = await claimOne(store, T0 + 100);
    assert.deepEqual([again.id, again.attempts], ["a", 1]);
  });
}

// ---------------------------------------------------------------------------
// Outcomes

function exerciseOutcomes(test: ConformanceTest): void {
  test("a completed run records its end and its exact output", async (store) => {
    await store.enqueue([newJob("a")], T0);
    const job = await claimOne(store);
    const stdout = new Uint8Array([0, 1, 2, 0xff, 0xfe, ...new TextEncoder().encode("ok ✓\n")]);
    const stderr = new TextEncoder().encode("warning\n");
    const done = await store.finishAttempt(
      job,
      outcome("completed", {
        finishedAt: T0 + 700,
        output: { stdout, stderr, stdoutDropped: 12, stderrDropped: 0 },
      }),
    );
    assert.equal(done, true);
    const stored = await store.getJob("a");
    assert.deepEqual(
      [stored?.state, stored?.finishedAt, stored?.updatedAt, stored?.exitCode, stored?.lastError],
      ["completed", T0 + 700, T0 + 700, 0, null],
    );
    assert.deepEqual([stored?.attempts, stored?.runAt, stored?.workerId], [1, T0, null]);
    const output = await store.latestOutput("a");
    assert.deepEqual(
      output && { ...output, stdout: [...output.stdout], stderr: [...output.stderr] },
      { attempt: 1, stdout: [...stdout], stderr: [...stderr], stdoutDropped: 12, stderrDropped: 0 },
    );
  });

  test("a failed run waits for its retry time, then runs again as the next attempt", async (store) => {
    await store.enqueue([newJob("a")], T0);
    const first = await claimOne(store);
    const retryAt = T0 + 4_000;
    assert.equal(
      await store.finishAttempt(first, outcome("failed", { retryAt, exitCode: 3, error: "boom" })),
      true,
    );
    const stored = await store.getJob("a");
    assert.deepEqual(
      [stored?.state, stored?.runAt, stored?.exitCode, stored?.lastError, stored?.workerId],
      ["failed", retryAt, 3, "boom", null],
    );
    assert.equal(await store.claim("w1", retryAt - 1), undefined);
    const second = await claimOne(store, retryAt);
    assert.deepEqual([second.id, second.attempts], ["a", 2]);
  });

  test("a dead run goes to the DLQ and is not claimed again", async (store) => {
    await store.enqueue([newJob("a")], T0);
    const job = await claimOne(store);
    assert.equal(
      await store.finishAttempt(job, outcome("dead", { exitCode: 127, error: "not found" })),
      true,
    );
    const stored = await store.getJob("a");
    assert.deepEqual(
      [stored?.state, stored?.exitCode, stored?.lastError],
      ["dead", 127, "not found"],
    );
    assert.equal(await store.claim("w1", T0 + DAY), undefined);
    assert.equal((await store.countByState()).dead, 1);
    assert.deepEqual((await store.listJobs({ states: ["dead"] })).map((j) => j.id), ["a"]);
  });

  test("runs are retried after the configured backoff and go to the DLQ after max retries", async (store) => {
    await store.setConfig("backoffBase", 3);
    await store.setConfig("backoffMaxMs", 20_000);
    await store.enqueue([newJob("flaky", { maxRetries: 3 })], T0);
    const config = await store.getConfig();
    const waits: number[] = [];
    let now = T0;
    for (let run = 1; run <= 4; run++) {
      assert.equal(await store.claim("w1", now - 1), undefined, `run ${run} is not due yet`);
      const job = await claimOne(store, now);
      assert.equal(job.attempts, run);
      const failed = failureOutcome(
        job,
        { exitCode: 1, error: "boom", output: NO_OUTPUT },
        config,
        now + 10,
      );
      assert.equal(await store.finishAttempt(job, failed), true);
      const stored = await store.getJob("flaky");
      if (run < 4) {
        assert.equal(stored?.state, "failed", `run ${run} of 1 + 3 retries`);
        waits.push(stored!.runAt - (now + 10));
        now = stored!.runAt;
      } else {
        assert.equal(stored?.state, "dead", "no retry left after 1 + 3 runs");
      }
    }
    assert.deepEqual(waits, [3_000, 9_000, 20_000], "3^1 s, 3^2 s, then capped at 20 s");
    assert.deepEqual((await store.listAttempts("flaky")).map((a) => a.attempt), [1, 2, 3, 4]);
  });
}

// ---------------------------------------------------------------------------
// Kills

function exerciseKills(test: ConformanceTest): void {
  test("requestKill names the run it is for, and listKillRequests lists it for its worker only", async (store) => {
    await store.enqueue([newJob("k"), newJob("other")], T0);
    const job = await claimOne(store, T0, "proc-1");
    await claimOne(store, T0 + 1, "proc-2");
    const request = await store.requestKill("k", "dead");
    assert.deepEqual({ ...request }, {
      id: "k",
      claimToken: job.claimToken,
      mode: "dead",
      attempt: 1,
      startedAt: T0,
    });
    assert.deepEqual((await store.listKillRequests("proc-1")).map((r) => ({ ...r })), [
      { ...request },
    ]);
    assert.deepEqual(await store.listKillRequests("proc-2"), []);
    assert.equal((await store.getJob("k"))?.state, "processing", "a request kills nothing itself");
  });

  test("requestKill refuses a job that does not exist or is not running", async (store) => {
    await assert.rejects(
      store.requestKill("ghost", "dead"),
      (error) => error instanceof JobNotFoundError && error.id === "ghost",
    );
    await store.enqueue([newJob("waiting")], T0 + DAY);
    await assert.rejects(
      store.requestKill("waiting", "retry"),
      (error) =>
        error instanceof QueueError && /not running \(its state is pending\)/.test(error.message),
    );
  });

  test("a kill with mode dead sends a failed run to the DLQ whatever retries remain", async (store) => {
    await store.enqueue([newJob("k", { maxRetries: 5 })], T0);
    const job = await claimOne(store, T0, "proc-1");
    await store.requestKill("k", "dead");
    assert.equal(await store.finishAttempt(job, ended("failed")), true);
    assert.equal(await stateOf(store, "k"), "dead");
    assert.deepEqual(await store.listKillRequests("proc-1"), []);
    await assert.rejects(store.requestKill("k", "retry"), /not running \(its state is dead\)/);
  });

  test("a kill with mode retry leaves the retry rule, and no kill outlives its run", async (store) => {
    await store.enqueue([newJob("k", { maxRetries: 5 })], T0);
    const first = await claimOne(store, T0, "proc-1");
    await store.requestKill("k", "retry");
    assert.equal(await store.finishAttempt(first, ended("failed")), true);
    assert.equal(await stateOf(store, "k"), "failed");
    const second = await claimOne(store, T0 + 5_000, "proc-1");
    assert.equal(second.id, "k");
    assert.deepEqual(await store.listKillRequests("proc-1"), []);
    // Nor does a dead kill of a released run reach the next one.
    await store.requestKill("k", "dead");
    assert.equal(await store.releaseJob(second, T0 + 5_001), true);
    const third = await claimOne(store, T0 + 5_002, "proc-1");
    assert.deepEqual(await store.listKillRequests("proc-1"), []);
    assert.equal(await store.finishAttempt(third, ended("failed", T0 + 5_010)), true);
    assert.equal(await stateOf(store, "k"), "failed");
  });
}

// ---------------------------------------------------------------------------
// finishAndClaim: the outcome of one run and the claim of the next, at once

function exerciseFinishAndClaim(test: ConformanceTest): void {
  test("finishAndClaim records the outcome and claims the next job", async (store) => {
    await store.enqueue([newJob("a"), newJob("b")], T0);
    const a = await claimOne(store);
    const { recorded, next } = await store.finishAndClaim(
      a,
      printed("completed", "done"),
      "w1",
      T0 + 600,
    );
    assert.equal(recorded, true);
    assert.deepEqual([next?.id, next?.attempts, next?.workerId], ["b", 1, "w1"]);
    assert.notEqual(next?.claimToken, a.claimToken);
    assert.equal((await store.getJob("a"))?.state, "completed");
    assert.equal(text((await store.latestOutput("a"))?.stdout), "done");
    assert.equal((await store.listAttempts("a")).length, 1);
    const b = await store.getJob("b");
    assert.deepEqual([b?.state, b?.startedAt], ["processing", T0 + 600]);
    assert.equal(await store.finishAttempt(next!, outcome("completed")), true, "its claim holds");
  });

  test("finishAndClaim with no job left records the outcome and claims nothing", async (store) => {
    await store.enqueue([newJob("a")], T0);
    const a = await claimOne(store);
    assert.deepEqual(await store.finishAndClaim(a, outcome("completed"), "w1", T0 + 600), {
      recorded: true,
      next: undefined,
    });
    assert.equal((await store.getJob("a"))?.state, "completed");
  });

  test("finishAndClaim under a stale claim records nothing, and still claims", async (store) => {
    await store.enqueue([newJob("a"), newJob("b")], T0);
    const a = await claimOne(store);
    const forged = { ...a, claimToken: crypto.randomUUID() };
    const { recorded, next } = await store.finishAndClaim(
      forged,
      printed("completed", "forged"),
      "w2",
      T0 + 600,
    );
    assert.equal(recorded, false);
    assert.deepEqual([next?.id, next?.workerId], ["b", "w2"]);
    assert.equal((await store.getJob("a"))?.state, "processing");
    assert.deepEqual(await store.listAttempts("a"), []);
  });

  test("finishAndClaim claims a job its outcome released, in the selected queues only", async (store) => {
    await store.enqueue(
      [newJob("a"), newJob("after-a", { after: ["a"] }), newJob("x", { queue: "other" })],
      T0,
    );
    const a = await claimOne(store);
    const selection: QueueSelection = { queues: ["default"] };
    const { recorded, next } = await store.finishAndClaim(
      a,
      outcome("completed"),
      "w1",
      T0 + 600,
      selection,
    );
    assert.equal(recorded, true);
    assert.equal(next?.id, "after-a");
    const last = await store.finishAndClaim(next!, outcome("completed"), "w1", T0 + 700, selection);
    assert.deepEqual(last, { recorded: true, next: undefined });
    assert.equal((await store.getJob("x"))?.state, "pending");
  });

  test("finishAndClaim does not claim a retry before it is due", async (store) => {
    await store.enqueue([newJob("a")], T0);
    const a = await claimOne(store);
    const failed = outcome("failed", { retryAt: T0 + 5_000, finishedAt: T0 + 600 });
    assert.deepEqual(await store.finishAndClaim(a, failed, "w1", T0 + 600), {
      recorded: true,
      next: undefined,
    });
    const { next } = await store.finishAndClaim(
      { ...a, claimToken: crypto.randomUUID() },
      failed,
      "w1",
      T0 + 5_000,
    );
    assert.deepEqual([next?.id, next?.attempts], ["a", 2]);
  });
}
