/**
 * The store conformance suite's recurring schedules (lib/schedules.ts,
 * lib/store/*_schedules.ts, the firer of lib/worker/scheduler.ts): adding
 * and replacing, pausing, firings applied once however many firers race,
 * `--overlap skip`, `--catch-up latest|none` and `schedule run`. Registered
 * by both suite runners (tests/sqlite_conformance_test.ts,
 * tests/pg_conformance_test.ts) through {@linkcode exerciseScheduleStore}.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ScheduleError } from "../lib/errors.ts";
import { firingJobId, type NewSchedule } from "../lib/schedules.ts";
import type { Store } from "../lib/store/store.ts";
import { fireDueSchedules } from "../lib/worker/scheduler.ts";
import { claimOne, ended, newJob, T0, worker } from "./store_builders.ts";
import type { ConformanceTest, OpenStore } from "./store_conformance.ts";

/** A whole minute after T0: `--every 1m` firings fall on whole minutes. */
const M0 = Math.ceil(T0 / 60_000) * 60_000;
const MINUTE = 60_000;
/** The worker process that holds the leader lease in these tests. */
const LEADER = "leader";

/** A schedule firing every minute from M0, enqueuing `echo <name>` in /tmp. */
function everyMinute(name: string, fields: Partial<NewSchedule> = {}): NewSchedule {
  return {
    name,
    timing: { kind: "every", everyMs: MINUTE },
    overlap: "skip",
    catchUp: "latest",
    job: { command: `echo ${name}`, cwd: "/tmp" },
    nextFireAt: M0,
    createdAt: T0,
    ...fields,
  };
}

/** Registers LEADER, which then holds the leader lease (no other worker process is alive). */
async function becomeLeader(store: Store): Promise<void> {
  await store.registerWorker(worker(LEADER));
  await store.heartbeatWorker(worker(LEADER));
}

/** The ids of every job, sorted. */
async function jobIds(store: Store): Promise<string[]> {
  return (await store.listJobs({})).map((job) => job.id).sort();
}

/**
 * Registers the schedule conformance tests for a backend, as
 * {@linkcode exerciseStore} does the rest of the suite.
 */
export function exerciseScheduleStore(backend: string, open: OpenStore): void {
  const test: ConformanceTest = (behaviour, body) =>
    Deno.test(`store conformance (${backend}): schedules: ${behaviour}`, async () => {
      const opened = await open();
      try {
        await body(opened.store, opened);
      } finally {
        await opened.cleanup();
      }
    });

  test("add, list, replace, pause, resume and remove", async (store) => {
    await store.addSchedule(everyMinute("b"), false);
    await store.addSchedule(
      everyMinute("a", { timing: { kind: "cron", expression: "0 3 * * *", timeZone: "UTC" } }),
      false,
    );
    assert.deepEqual((await store.listSchedules()).map((s) => s.name), ["a", "b"]);
    const b = (await store.getSchedule("b"))!;
    assert.deepEqual(b.timing, { kind: "every", everyMs: MINUTE });
    assert.deepEqual(b.job, { command: "echo b", cwd: "/tmp" });
    assert.equal(b.nextFireAt, M0);
    assert.equal(b.pausedAt, null);
    assert.equal(b.skipped, 0);
    await assert.rejects(() => store.addSchedule(everyMinute("b"), false), ScheduleError);
    await store.addSchedule(everyMinute("b", { overlap: "allow", createdAt: T0 + 1 }), true);
    assert.equal((await store.getSchedule("b"))!.overlap, "allow");

    assert.equal(await store.pauseSchedule("b", T0 + 5), true);
    assert.equal(await store.pauseSchedule("b", T0 + 9), true);
    assert.equal(
      (await store.getSchedule("b"))!.pausedAt,
      T0 + 5,
      "a second pause keeps the first",
    );
    await becomeLeader(store);
    assert.deepEqual((await store.schedulesToFire(LEADER))!.map((s) => s.name), ["a"]);
    assert.equal(await store.resumeSchedule("b", M0 + MINUTE), true);
    const resumed = (await store.getSchedule("b"))!;
    assert.equal(resumed.pausedAt, null);
    assert.equal(resumed.nextFireAt, M0 + MINUTE);

    assert.equal(await store.removeSchedule("a"), true);
    assert.equal(await store.removeSchedule("a"), false);
    assert.equal(await store.pauseSchedule("a", T0), false);
    assert.equal(await store.getSchedule("a"), undefined);
  });

  test("only the leader fires", async (store) => {
    await store.addSchedule(everyMinute("tick"), false);
    await becomeLeader(store);
    assert.equal(await store.schedulesToFire("someone-else"), null);
    assert.deepEqual((await fireDueSchedules(store, "someone-else", M0)).reports, null);
    assert.deepEqual(await jobIds(store), []);
    const round = await fireDueSchedules(store, LEADER, M0 + 300);
    assert.deepEqual(round.reports, [
      { name: "tick", result: "fired", jobId: firingJobId("tick", M0), next: M0 + MINUTE },
    ]);
    assert.equal(round.nextDue, M0 + MINUTE);
    const job = (await store.getJob(`tick@${new Date(M0).toISOString()}`))!;
    assert.equal(job.command, "echo tick");
    assert.equal(job.runAt, M0, "the job is due at its firing");
    const tick = (await store.getSchedule("tick"))!;
    assert.equal(tick.lastJobId, job.id);
    assert.equal(tick.lastJobState, "pending");
    assert.equal(tick.lastFireAt, M0);
  });

  test(
    "concurrent firers on several connections enqueue one job per firing",
    async (store, opened) => {
      await store.addSchedule(everyMinute("tick", { overlap: "allow" }), false);
      await becomeLeader(store);
      const firers = [store, ...await Promise.all([1, 2, 3].map(() => opened.connect()))];
      for (let k = 0; k < 5; k++) {
        const now = M0 + k * MINUTE + 10;
        // Every connection believes it leads (as two processes would across a lease handover).
        const rounds = await Promise.all(
          firers.map((firer) => fireDueSchedules(firer, LEADER, now)),
        );
        const results = rounds.flatMap((round) => round.reports!.map((r) => r.result)).sort();
        assert.equal(results.filter((r) => r === "fired").length, 1, `firing ${k}: ${results}`);
        assert.ok(results.every((r) => r === "fired" || r === "lost"), `firing ${k}: ${results}`);
      }
      assert.deepEqual(
        await jobIds(store),
        [0, 1, 2, 3, 4].map((k) => firingJobId("tick", M0 + k * MINUTE)),
      );
    },
  );

  test("the same firing applied twice by fireSchedule enqueues once", async (store, opened) => {
    await store.addSchedule(everyMinute("tick"), false);
    const other = await opened.connect();
    const firing = {
      name: "tick",
      due: M0,
      createdAt: T0,
      next: M0 + MINUTE,
      job: {
        id: firingJobId("tick", M0),
        queue: "default",
        command: "echo tick",
        maxRetries: 0,
        priority: 0,
        runAt: M0,
        timeoutMs: null,
        cwd: "/tmp",
        after: [],
      },
      overlap: "skip" as const,
    };
    const results = await Promise.all([
      store.fireSchedule(firing, M0),
      other.fireSchedule(firing, M0),
      store.fireSchedule(firing, M0),
    ]);
    assert.deepEqual(results.sort(), ["fired", "lost", "lost"]);
    assert.deepEqual(await jobIds(store), [firingJobId("tick", M0)]);
    // A schedule replaced since it was read is not fired from the old reading.
    await store.addSchedule(everyMinute("tick", { createdAt: T0 + 1, nextFireAt: M0 }), true);
    assert.equal(await store.fireSchedule(firing, M0), "lost");
  });

  test("--overlap skip skips a firing while the last job is unfinished, and counts it", async (store) => {
    await store.addSchedule(everyMinute("slow"), false);
    await store.addSchedule(everyMinute("free", { overlap: "allow" }), false);
    await becomeLeader(store);
    await fireDueSchedules(store, LEADER, M0);
    const claimed = [await claimOne(store, M0), await claimOne(store, M0)];
    const running = claimed.find((job) => job.id === firingJobId("slow", M0))!;
    const second = await fireDueSchedules(store, LEADER, M0 + MINUTE);
    assert.deepEqual(second.reports!.map((r) => [r.name, r.result]), [
      ["free", "fired"],
      ["slow", "skipped"],
    ]);
    const slow = (await store.getSchedule("slow"))!;
    assert.equal(slow.skipped, 1);
    assert.equal(slow.lastSkipAt, M0 + MINUTE);
    assert.equal(slow.lastJobId, firingJobId("slow", M0));
    assert.equal(slow.lastJobState, "processing");
    assert.equal(slow.nextFireAt, M0 + 2 * MINUTE, "a skipped firing moves on");
    // Once the job has finished, the next firing enqueues again.
    await store.finishAttempt(running, ended("completed", M0 + MINUTE + 5));
    await fireDueSchedules(store, LEADER, M0 + 2 * MINUTE);
    assert.ok(await store.getJob(firingJobId("slow", M0 + 2 * MINUTE)));
    assert.equal((await store.getSchedule("slow"))!.skipped, 1);
  });

  test("a firing whose unique key another job holds adds nothing: the holder stands for it", async (store) => {
    const job = { command: "echo keyed", cwd: "/tmp", unique_key: "nightly" };
    await store.addSchedule(everyMinute("keyed", { overlap: "allow", job }), false);
    await store.enqueue([newJob("by-hand", { uniqueKey: "nightly" })], T0);
    await becomeLeader(store);
    const fired = await fireDueSchedules(store, LEADER, M0);
    assert.deepEqual(fired.reports!.map((r) => [r.name, r.result]), [["keyed", "skipped"]]);
    assert.equal(await store.getJob(firingJobId("keyed", M0)), undefined);
    const keyed = (await store.getSchedule("keyed"))!;
    assert.equal(keyed.skipped, 1);
    assert.equal(keyed.lastJobId, "by-hand");
    assert.equal(keyed.nextFireAt, M0 + MINUTE);
    const byRun = newJob("keyed@now", { uniqueKey: "nightly" });
    assert.equal(await store.runSchedule("keyed", byRun, M0 + 1), "by-hand");
    assert.equal(await store.getJob("keyed@now"), undefined);
  });

  test("--catch-up latest enqueues only the latest missed firing; none skips them", async (store) => {
    await store.addSchedule(everyMinute("latest"), false);
    await store.addSchedule(everyMinute("none", { catchUp: "none" }), false);
    await becomeLeader(store);
    // No firer ran for ten minutes and a half.
    const now = M0 + 10 * MINUTE + 30_000;
    const round = await fireDueSchedules(store, LEADER, now);
    assert.deepEqual(round.reports!.map((r) => [r.name, r.result]), [
      ["latest", "fired"],
      ["none", "missed"],
    ]);
    assert.deepEqual(await jobIds(store), [firingJobId("latest", M0 + 10 * MINUTE)]);
    for (const name of ["latest", "none"]) {
      assert.equal((await store.getSchedule(name))!.nextFireAt, M0 + 11 * MINUTE);
    }
    // On time (within a minute), `none` fires as usual.
    await fireDueSchedules(store, LEADER, M0 + 11 * MINUTE + 900);
    assert.ok(await store.getJob(firingJobId("none", M0 + 11 * MINUTE)));
  });

  test("a firing whose job spec no longer resolves enqueues nothing and moves on", async (store) => {
    await store.addSchedule(
      everyMinute("gone", { job: { command: "true", cwd: "/no/such/dir/any/more" } }),
      false,
    );
    await store.addSchedule(everyMinute("fine"), false);
    await becomeLeader(store);
    const round = await fireDueSchedules(store, LEADER, M0 + 10);
    assert.deepEqual(round.reports!.map((r) => [r.name, r.result]), [
      ["fine", "fired"],
      ["gone", "failed"],
    ]);
    assert.match(round.reports![1].error!, /not an existing directory/);
    assert.equal((await store.getSchedule("gone"))!.nextFireAt, M0 + MINUTE);
    assert.deepEqual(await jobIds(store), [firingJobId("fine", M0)]);
  });

  test("a firing the store refuses leaves the others alone and is tried again", async (store) => {
    await store.addSchedule(
      everyMinute("after-gone", { job: { command: "true", cwd: "/tmp", after: ["deleted"] } }),
      false,
    );
    await store.addSchedule(everyMinute("fine"), false);
    await becomeLeader(store);
    const round = await fireDueSchedules(store, LEADER, M0 + 10);
    assert.deepEqual(round.reports!.map((r) => [r.name, r.result]), [
      ["after-gone", "failed"],
      ["fine", "fired"],
    ]);
    assert.match(round.reports![0].error!, /deleted/);
    assert.equal(round.nextDue, M0 + MINUTE, "not the failed one's past firing: no busy loop");
    assert.equal((await store.getSchedule("after-gone"))!.nextFireAt, M0);
  });

  test("runSchedule enqueues now, paused or not, and leaves the next firing", async (store) => {
    await store.addSchedule(everyMinute("tick"), false);
    await store.pauseSchedule("tick", T0);
    const job = {
      id: firingJobId("tick", T0 + 7),
      queue: "default",
      command: "echo tick",
      maxRetries: 0,
      priority: 0,
      runAt: T0 + 7,
      timeoutMs: null,
      cwd: "/tmp",
      after: [],
    };
    assert.equal(await store.runSchedule("tick", job, T0 + 7), job.id);
    assert.equal(await store.runSchedule("nope", { ...job, id: "other" }, T0 + 7), null);
    const tick = (await store.getSchedule("tick"))!;
    assert.equal(tick.lastJobId, job.id);
    assert.equal(tick.nextFireAt, M0);
    assert.notEqual(tick.pausedAt, null);
    assert.deepEqual(await jobIds(store), [job.id]);
  });
}
