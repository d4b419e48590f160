/**
 * The store conformance suite, part three (see tests/store_conformance.ts):
 * the registry of `worker start` processes, the jobs that dead ones leave
 * behind, and the maintenance calls, as the `Store` interface has them
 * today. Leases, rescue and maintenance election are being redesigned (issue
 * 12): this group is kept apart so that it changes with them and the rest of
 * the suite does not.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Store } from "../lib/store/store.ts";
import { failureOutcome, NO_OUTPUT } from "../lib/worker/outcome.ts";
import { claimOne, ended, fixedClock, newJob, T0, worker } from "./store_builders.ts";
import type { ConformanceTest } from "./store_conformance.ts";

/** Registers the conformance tests of the worker registry and maintenance. */
export function exerciseWorkerRegistry(test: ConformanceTest): void {
  exerciseRegistry(test);
  exerciseOrphans(test);
  exerciseMaintenance(test);
}

async function workerIds(store: Store): Promise<string[]> {
  return (await store.listWorkers()).map((w) => w.id);
}

function exerciseRegistry(test: ConformanceTest): void {
  test("registerWorker and listWorkers round-trip worker records, oldest first", async (store) => {
    assert.deepEqual(await store.listWorkers(), []);
    const a = worker("wa", {
      startedAt: T0 + 5,
      heartbeatAt: T0 + 6,
      threads: 4,
      procStart: "123",
    });
    const b = worker("wb", { pid: 99, host: "hôst-b", stopRequested: true });
    const c = worker("wc", { startedAt: T0 + 5 });
    await store.registerWorker(c);
    await store.registerWorker(a);
    await store.registerWorker(b);
    assert.deepEqual((await store.listWorkers()).map((w) => ({ ...w })), [b, a, c]);
  });

  test("heartbeatWorker records the beat on its clock and never moves it back", async (store) => {
    const record = worker("wa");
    await store.registerWorker(record);
    assert.deepEqual({ ...await store.heartbeatWorker(record, fixedClock(T0 + 1_000)) }, {
      beatAt: T0 + 1_000,
      stopRequested: false,
    });
    assert.equal((await store.listWorkers())[0].heartbeatAt, T0 + 1_000);
    // A beat stamped earlier than the stored one (another host's clock, say) never moves it back.
    assert.equal((await store.heartbeatWorker(record, fixedClock(T0 + 500))).beatAt, T0 + 1_000);
    assert.equal((await store.listWorkers())[0].heartbeatAt, T0 + 1_000);
  });

  test("a stop requested for a worker is listed and reported by its next heartbeat, for it alone", async (store) => {
    const [a, b] = [worker("wa"), worker("wb", { startedAt: T0 + 1 })];
    await store.registerWorker(a);
    await store.registerWorker(b);
    await store.requestWorkerStop(["wa", "unknown"]);
    assert.deepEqual((await store.listWorkers()).map((w) => [w.id, w.stopRequested]), [
      ["wa", true],
      ["wb", false],
    ]);
    assert.deepEqual({ ...await store.heartbeatWorker(a, fixedClock(T0 + 2_000)) }, {
      beatAt: T0 + 2_000,
      stopRequested: true,
    });
    assert.equal((await store.heartbeatWorker(b, fixedClock(T0 + 2_000))).stopRequested, false);
  });

  test("heartbeatWorker registers again a worker whose record was removed", async (store) => {
    const record = worker("wa", { threads: 3 });
    await store.registerWorker(record);
    await store.removeWorkers(["wa"]);
    assert.deepEqual(await store.listWorkers(), []);
    assert.deepEqual({ ...await store.heartbeatWorker(record, fixedClock(T0 + 5_000)) }, {
      beatAt: T0 + 5_000,
      stopRequested: false,
    });
    assert.deepEqual((await store.listWorkers()).map((w) => ({ ...w })), [
      { ...record, heartbeatAt: T0 + 5_000 },
    ]);
  });

  test("removeWorkers removes only the given workers", async (store) => {
    for (const [i, id] of ["wa", "wb", "wc"].entries()) {
      await store.registerWorker(worker(id, { startedAt: T0 + i }));
    }
    await store.removeWorkers(["wa", "wc", "unknown"]);
    assert.deepEqual(await workerIds(store), ["wb"]);
    await store.removeWorkers([]);
    assert.deepEqual(await workerIds(store), ["wb"]);
  });

  test("pruneWorkers removes a worker only while its heartbeat is the one judged", async (store) => {
    const a = worker("wa", { heartbeatAt: T0 });
    const b = worker("wb", { heartbeatAt: T0, startedAt: T0 + 1 });
    await store.registerWorker(a);
    await store.registerWorker(b);
    // wb beat after the judgement read its record: it was not dead.
    await store.heartbeatWorker(b, fixedClock(T0 + 1_000));
    assert.deepEqual(await store.pruneWorkers([a, b, worker("unknown")]), ["wa"]);
    assert.deepEqual(await workerIds(store), ["wb"]);
  });
}

function exerciseOrphans(test: ConformanceTest): void {
  test("listOrphanedJobs lists the jobs held by workers that are not registered, with their claims", async (store) => {
    await store.registerWorker(worker("alive"));
    await store.registerWorker(worker("doomed", { startedAt: T0 + 1 }));
    await store.enqueue([newJob("a"), newJob("b"), newJob("c"), newJob("d")], T0);
    await claimOne(store, T0, "alive");
    const b = await claimOne(store, T0, "doomed");
    const c = await claimOne(store, T0, "never-registered");
    assert.deepEqual(
      (await store.listOrphanedJobs()).map((job) => [job.id, job.claimToken, job.workerId]),
      [["c", c.claimToken, "never-registered"]],
    );
    assert.deepEqual(await store.pruneWorkers([worker("doomed")]), ["doomed"]);
    const orphans = (await store.listOrphanedJobs()).sort((x, y) => x.id.localeCompare(y.id));
    assert.deepEqual(orphans.map((job) => [job.id, job.claimToken, job.attempts]), [
      ["b", b.claimToken, 1],
      ["c", c.claimToken, 1],
    ]);
    assert.ok(orphans.every((job) => job.state === "processing"));
  });

  test("an orphaned job is given back under its claim, and its lost worker's late outcome is discarded", async (store) => {
    await store.enqueue([newJob("a", { maxRetries: 1 })], T0);
    const lost = await claimOne(store, T0, "gone");
    const [orphan] = await store.listOrphanedJobs();
    const config = await store.getConfig();
    const rescue = failureOutcome(
      orphan,
      {
        exitCode: null,
        error: "its worker process died",
        output: NO_OUTPUT,
      },
      config,
      T0 + 100,
    );
    assert.equal(await store.finishAttempt(orphan, rescue), true);
    assert.equal((await store.getJob("a"))?.state, "failed", "one retry remains");
    assert.deepEqual(await store.listOrphanedJobs(), []);
    assert.equal(await store.finishAttempt(lost, ended("completed", T0 + 200)), false);
    const again = await claimOne(store, rescue.retryAt!);
    assert.equal(again.attempts, 2, "the lost run counted");
  });
}

function exerciseMaintenance(test: ConformanceTest): void {
  test("forgetEmptyQueues forgets queues with no job, but not paused ones or busy ones", async (store) => {
    await store.enqueue(
      [newJob("once", { queue: "once" }), newJob("later", { queue: "busy" })],
      T0,
    );
    await store.pauseQueue("held", T0);
    await store.pauseQueue("busy", T0);
    const once = await claimOne(store, T0 + 1);
    assert.equal(once.id, "once");
    assert.equal(await store.finishAttempt(once, ended("completed", T0 + 1)), true);
    assert.equal(await store.deleteJobs({ ids: ["once"] }, T0 + 2), 1);
    assert.ok(await store.forgetEmptyQueues() >= 1, "once holds no job any more");
    assert.equal(await store.forgetEmptyQueues(), 0, "nothing more to forget");
    assert.deepEqual((await store.listQueues()).map((q) => [q.name, q.pausedAt]), [
      ["busy", T0],
      ["held", T0],
    ]);
    await store.resumeQueue("busy");
    assert.equal((await store.claim("w", T0 + 3, { queues: ["busy"] }))?.id, "later");
    // A forgotten queue comes back with its next job, and is served as before.
    await store.enqueue([newJob("again", { queue: "once" })], T0 + 4);
    assert.equal((await store.claim("w", T0 + 4, { queues: ["once"] }))?.id, "again");
    assert.equal((await store.listQueues()).find((q) => q.name === "once")?.counts.processing, 1);
  });

  test("checkpoint keeps every job", async (store) => {
    await store.enqueue([newJob("a"), newJob("b")], T0);
    await store.checkpoint();
    assert.deepEqual((await store.listJobs({})).map((job) => job.id), ["b", "a"]);
  });
}
