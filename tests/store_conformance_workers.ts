/**
 * The store conformance suite, part three (see tests/store_conformance.ts):
 * the registry of `worker start` processes, leases on the store's clock
 * (stalls left out), rescue of the jobs that dead ones leave behind, and the
 * election of the one worker process that does the upkeep (`maintain`).
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Job } from "../lib/job.ts";
import type { Store, WorkerRecord } from "../lib/store/store.ts";
import { failureOutcome, NO_OUTPUT } from "../lib/worker/outcome.ts";
import { claimOne, DAY, ended, fixedClock, newJob, T0, worker } from "./store_builders.ts";
import type { ConformanceTest } from "./store_conformance.ts";

/** Registers the conformance tests of the worker registry and maintenance. */
export function exerciseWorkerRegistry(test: ConformanceTest): void {
  exerciseRegistry(test);
  exerciseOrphans(test);
  exerciseMaintenance(test);
  exerciseLeases(test);
  exerciseElection(test);
}

/** The orphaned jobs a rescue that judges nobody hands back. */
async function orphansOf(store: Store) {
  return (await store.rescue({ judge: "nobody", deadWorkers: [], aliveWorkers: [] })).orphans;
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
  test("rescue hands back the jobs held by workers that are not registered, with their claims", async (store) => {
    await store.registerWorker(worker("alive"));
    await store.registerWorker(worker("doomed", { startedAt: T0 + 1 }));
    await store.enqueue([newJob("a"), newJob("b"), newJob("c"), newJob("d")], T0);
    await claimOne(store, T0, "alive");
    const b = await claimOne(store, T0, "doomed");
    const c = await claimOne(store, T0, "never-registered");
    assert.deepEqual(
      (await orphansOf(store)).map((job) => [job.id, job.claimToken, job.workerId]),
      [["c", c.claimToken, "never-registered"]],
    );
    assert.deepEqual(await store.pruneWorkers([worker("doomed")]), ["doomed"]);
    const orphans = (await orphansOf(store)).sort((x, y) => x.id.localeCompare(y.id));
    assert.deepEqual(orphans.map((job) => [job.id, job.claimToken, job.attempts]), [
      ["b", b.claimToken, 1],
      ["c", c.claimToken, 1],
    ]);
    assert.ok(orphans.every((job) => job.state === "processing"));
  });

  test("an orphaned job is given back under its claim, and its lost worker's late outcome is discarded", async (store) => {
    await store.enqueue([newJob("a", { maxRetries: 1 })], T0);
    const lost = await claimOne(store, T0, "gone");
    const [orphan] = await orphansOf(store);
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
    assert.deepEqual(await orphansOf(store), []);
    assert.equal(await store.finishAttempt(lost, ended("completed", T0 + 200)), false);
    const again = await claimOne(store, rescue.retryAt!);
    assert.equal(again.attempts, 2, "the lost run counted");
  });
}

function exerciseMaintenance(test: ConformanceTest): void {
  test("maintain forgets queues with no job, but not paused ones or busy ones", async (store) => {
    await store.registerWorker(worker("leader"));
    const maintain = async () => (await store.maintain("leader", T0 + 2))?.forgottenQueues ?? -1;
    await store.enqueue(
      [newJob("once", { queue: "once" }), newJob("later", { queue: "busy" })],
      T0,
    );
    await store.pauseQueue("held", T0);
    await store.pauseQueue("busy", T0);
    const once = await claimOne(store, T0 + 1);
    assert.equal(once.id, "once");
    assert.equal(await store.finishAttempt(once, ended("completed", T0 + 1)), true);
    await maintain(); // forgets whatever empty queue the backend starts with
    assert.equal(await maintain(), 0, "a queue that still holds a finished job stays");
    assert.equal(await store.deleteJobs({ ids: ["once"] }, T0 + 2), 1);
    assert.equal(await maintain(), 1, "once holds no job any more");
    assert.equal(await maintain(), 0, "nothing more to forget");
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

  test("maintain purges finished jobs by the retention setting, and none when it is none", async (store) => {
    // As a worker process does: registered, and beating at the moment it maintains.
    const maintainAt = async (now: number) => {
      await store.registerWorker(worker("leader", { heartbeatAt: now }));
      const done = await store.maintain("leader", now);
      assert.ok(done, "the only worker process leads");
      return done.purged;
    };
    await store.enqueue([newJob("done"), newJob("waiting", { runAt: T0 + 365 * DAY })], T0);
    const job = await claimOne(store, T0);
    assert.equal(await store.finishAttempt(job, ended("completed", T0)), true);
    assert.equal(await maintainAt(T0 + 30 * DAY), 0);
    assert.ok(await store.getJob("done"), "retention none keeps finished jobs");
    await store.setConfig("retentionMs", 7 * DAY);
    assert.equal(await maintainAt(T0 + 6 * DAY), 0, "not yet 7 days old");
    assert.equal(await maintainAt(T0 + 8 * DAY), 1);
    assert.equal(await store.getJob("done"), undefined);
    assert.ok(await store.getJob("waiting"), "an unfinished job is never purged");
  });

  test("maintain keeps every job it does not purge by retention", async (store) => {
    await store.registerWorker(worker("leader"));
    await store.enqueue([newJob("a"), newJob("b")], T0);
    assert.deepEqual(await store.maintain("leader", T0 + 1), { purged: 0, forgottenQueues: 0 });
    assert.deepEqual((await store.listJobs({})).map((job) => job.id), ["b", "a"]);
  });
}

/** The lease of every test below, in ms. */
const LEASE = 5_000;

/** Beats `record` at each of `times` (ms after T0) on a fake clock. */
async function beatAt(store: Store, record: WorkerRecord, ...times: number[]): Promise<void> {
  for (const at of times) await store.heartbeatWorker(record, fixedClock(T0 + at));
}

/** The whole seconds from `from` to `to` (ms), both included. */
function seconds(from: number, to: number): number[] {
  const times = [];
  for (let at = from; at <= to; at += 1_000) times.push(at);
  return times;
}

function exerciseLeases(test: ConformanceTest): void {
  test("a lease expires after the lease of silence on the store's clock, judged by the leader only", async (store) => {
    await store.setConfig("leaseTimeoutMs", LEASE);
    const judge = worker("judge");
    const follower = worker("follower", { startedAt: T0 + 1 });
    const silent = worker("silent", { startedAt: T0 + 2 });
    for (const record of [judge, follower, silent]) await store.registerWorker(record);
    for (const at of seconds(1_000, 5_000)) {
      await beatAt(store, judge, at), await beatAt(store, follower, at);
    }
    const rescue = (by: string, at: number) =>
      store.rescue({ judge: by, deadWorkers: [], aliveWorkers: [], now: T0 + at });
    assert.deepEqual(
      (await rescue("judge", 5_000)).removed,
      [],
      "silent for the lease, not longer",
    );
    await beatAt(store, judge, 6_000);
    await beatAt(store, follower, 6_000);
    assert.deepEqual(
      (await rescue("follower", 6_000)).removed,
      [],
      "not the leader: judges no lease",
    );
    assert.deepEqual((await rescue("judge", 6_000)).removed, ["silent"]);
    assert.deepEqual(await workerIds(store), ["judge", "follower"]);
  });

  test("a stall of every heartbeat does not count against a lease", async (store) => {
    await store.setConfig("leaseTimeoutMs", LEASE);
    const judge = worker("judge");
    const other = worker("other", { startedAt: T0 + 1 });
    await store.registerWorker(judge);
    await store.registerWorker(other);
    for (const at of seconds(1_000, 10_000)) {
      await beatAt(store, judge, at), await beatAt(store, other, at);
    }
    const removedAt = async (at: number) =>
      (await store.rescue({ judge: "judge", deadWorkers: [], aliveWorkers: [], now: T0 + at }))
        .removed;
    // A lock stops every write from 10 s to 18.1 s: the judge's own beats too.
    assert.deepEqual(await removedAt(16_000), [], "no judgement while its own beats stall");
    // The lock is gone; the judge's beat lands first. The other had no chance yet.
    await beatAt(store, judge, 18_100);
    assert.deepEqual(await removedAt(18_100), [], "the stall does not count");
    // Its lease runs from the stall's end: it is dead only after 5 s more of silence.
    await beatAt(store, judge, ...seconds(19_100, 23_100));
    assert.deepEqual(await removedAt(23_100), [], "not silent longer than the lease");
    await beatAt(store, judge, 24_100);
    assert.deepEqual(await removedAt(24_100), ["other"], "silent for over the lease");
  });

  test("a worker process that starts late gives the silent ones a whole lease from its start", async (store) => {
    await store.setConfig("leaseTimeoutMs", LEASE);
    const before = worker("before", { heartbeatAt: T0 });
    await store.registerWorker(before);
    // Nothing beats for 100 s.
    const late = worker("late", { heartbeatAt: T0 + 100_000, startedAt: T0 + 1 });
    await store.registerWorker(late);
    // "before" led, and holds the lead until its lease expires: "late" takes it by then.
    const rescue = (at: number) =>
      store.rescue({ judge: "late", deadWorkers: [], aliveWorkers: [], now: T0 + at });
    await beatAt(store, late, ...seconds(101_000, 105_000));
    assert.deepEqual((await rescue(105_000)).removed, [], "a stall of 100 s did not count");
    await beatAt(store, late, 106_000);
    assert.deepEqual((await rescue(106_000)).removed, ["before"]);
  });

  test("a leader whose own heartbeat is stale judges no lease, though others beat", async (store) => {
    await store.setConfig("leaseTimeoutMs", LEASE);
    const judge = worker("judge");
    const beater = worker("beater", { startedAt: T0 + 1 });
    await store.registerWorker(judge);
    await store.registerWorker(beater);
    await store.registerWorker(worker("silent", { startedAt: T0 + 2 }));
    await beatAt(store, judge, 1_000);
    await beatAt(store, beater, ...seconds(1_000, 6_000));
    const rescue = (at: number) =>
      store.rescue({ judge: "judge", deadWorkers: [], aliveWorkers: [], now: T0 + at });
    assert.deepEqual((await rescue(6_000)).removed, [], "its own writes may be the ones stalled");
    await beatAt(store, judge, 6_000);
    assert.deepEqual((await rescue(6_000)).removed, ["silent"], "its beat committed: it judges");
  });

  test("no judge judges itself, and workers alive by local evidence keep their lease", async (store) => {
    await store.setConfig("leaseTimeoutMs", LEASE);
    const judge = worker("judge");
    const stopped = worker("stopped", { startedAt: T0 + 1 });
    await store.registerWorker(judge);
    await store.registerWorker(stopped);
    await beatAt(store, judge, ...seconds(1_000, 20_000));
    const rescue = await store.rescue({
      judge: "judge",
      deadWorkers: [judge],
      aliveWorkers: ["stopped"],
      now: T0 + 20_000,
    });
    assert.deepEqual(rescue.removed, []);
    assert.deepEqual(await workerIds(store), ["judge", "stopped"]);
  });

  test("rescue removes workers dead by local evidence only while their heartbeat is the one judged, and hands back their runs with their host", async (store) => {
    const a = worker("wa", { host: "host-a" });
    const b = worker("wb", { host: "host-b", startedAt: T0 + 1 });
    const judge = worker("judge", { startedAt: T0 + 2 });
    for (const record of [judge, a, b]) await store.registerWorker(record);
    await store.enqueue([newJob("a"), newJob("b"), newJob("c")], T0);
    const runA = await claimOne(store, T0, "wa");
    await claimOne(store, T0, "wb");
    const stray = await claimOne(store, T0, "never-registered");
    // wb beat after the judgement read its record: it was not dead.
    await beatAt(store, b, 500);
    const rescue = await store.rescue({
      judge: "judge",
      deadWorkers: [a, b, worker("unknown")],
      aliveWorkers: [],
      now: T0 + 600,
    });
    assert.deepEqual(rescue.removed, ["wa"]);
    assert.deepEqual(
      rescue.orphans.map((job) => [job.id, job.claimToken, job.host, job.state]).sort(),
      [["a", runA.claimToken, "host-a", "processing"], [
        "c",
        stray.claimToken,
        null,
        "processing",
      ]],
    );
    assert.deepEqual(await workerIds(store), ["wb", "judge"]);
  });

  test("settleOrphans records the outcomes of orphaned runs in one call, each under its claim", async (store) => {
    await store.registerWorker(worker("judge"));
    await store.enqueue([newJob("a"), newJob("b", { maxRetries: 0 })], T0);
    const runA = await claimOne(store, T0, "gone");
    await claimOne(store, T0, "gone");
    const { orphans } = await store.rescue({ judge: "judge", deadWorkers: [], aliveWorkers: [] });
    const config = await store.getConfig();
    const byId = new Map(orphans.map((job) => [job.id, job]));
    const lost = (job: Job) =>
      failureOutcome(
        job,
        { exitCode: null, error: "worker lost", output: NO_OUTPUT },
        config,
        T0 + 9,
      );
    const settlements = [
      { job: byId.get("a")!, outcome: ended("completed", T0 + 9) },
      { job: byId.get("b")!, outcome: lost(byId.get("b")!) },
    ];
    assert.deepEqual((await store.settleOrphans(settlements)).map((job) => job.id), ["a", "b"]);
    assert.equal((await store.getJob("a"))?.state, "completed");
    assert.equal((await store.getJob("b"))?.state, "dead");
    assert.deepEqual(await store.settleOrphans(settlements), [], "settled once only");
    assert.equal(await store.finishAttempt(runA, ended("failed", T0 + 10)), false);
    assert.deepEqual(
      (await store.rescue({ judge: "judge", deadWorkers: [], aliveWorkers: [] })).orphans,
      [],
    );
  });
}

function exerciseElection(test: ConformanceTest): void {
  test("one worker process leads at a time: the first, until it is gone or its lease expires", async (store) => {
    await store.setConfig("leaseTimeoutMs", LEASE);
    await store.setConfig("retentionMs", 1_000);
    const a = worker("wa");
    const b = worker("wb", { startedAt: T0 + 1 });
    const c = worker("wc", { startedAt: T0 + 2 });
    await store.registerWorker(a);
    await store.registerWorker(b);
    await store.enqueue([newJob("old")], T0);
    assert.equal(
      await store.finishAttempt(await claimOne(store, T0, "wa"), ended("completed", T0)),
      true,
    );
    assert.equal(await store.maintain("wb", T0 + 5_000), null, "a follower does no upkeep");
    assert.equal((await store.maintain("wa", T0 + 5_000))?.purged, 1, "the leader purges");
    // The leader stops: the next beat of another takes the lead.
    await store.removeWorkers(["wa"]);
    await beatAt(store, b, 1_000);
    assert.ok(await store.maintain("wb", T0 + 5_000), "wb leads once wa is gone");
    // The leader falls silent: it leads until its lease expires, then the next beat takes it.
    await store.registerWorker({ ...c, heartbeatAt: T0 + 1_000 });
    await beatAt(store, c, ...seconds(2_000, 6_000));
    assert.equal(await store.maintain("wc", T0 + 6_000), null, "wb's lease still runs");
    await beatAt(store, c, 7_000);
    assert.ok(await store.maintain("wc", T0 + 7_000), "wc leads once wb's lease expired");
    assert.equal(await store.maintain("wb", T0 + 7_000), null, "and wb no longer does");
  });
}
