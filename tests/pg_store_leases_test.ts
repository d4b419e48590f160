/**
 * Leases on the PostgreSQL server's clock under real concurrency (issue 13):
 * heartbeats of several connections at once, two rescuers at once, and
 * heartbeats stamped with the server's clock once the lease clock is locked.
 * Each test opens several stores on one fresh schema, as worker processes
 * on several hosts would. Skipped when no test server answers.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Store } from "../lib/store/store.ts";
import { holdLock, until, waitersOn, withSchema } from "./pg_concurrency.ts";
import { PG } from "./pg_helpers.ts";
import { claimOne, ended, newJob, T0, worker } from "./store_builders.ts";

if ("skip" in PG) {
  Deno.test({ name: "pg store leases: skipped", ignore: true, fn() {} });
  console.error(PG.skip);
} else {
  Deno.test("pg store leases: heartbeats of two connections at once lose no beat and never go back", async () => {
    await withSchema(2, async ([one, two], raw) => {
      const [{ now }] = await raw`SELECT now_ms() AS now`;
      const records = [worker("wa"), worker("wb", { startedAt: T0 + 1 })]
        .map((record) => ({ ...record, heartbeatAt: Number(now) }));
      for (const record of records) await one.registerWorker(record);
      const stalledAtStart = Number((await raw`SELECT stalled_ms FROM lease_clock`)[0].stalled_ms);
      // Each connection beats both workers, as two processes would beat on one queue.
      const beatAll = async (store: Store) => {
        const stamps = new Map<string, number[]>(records.map((r) => [r.id, []]));
        for (let round = 0; round < 40; round++) {
          for (const record of records) {
            stamps.get(record.id)!.push((await store.heartbeatWorker(record)).beatAt);
          }
        }
        return stamps;
      };
      const byConnection = await Promise.all([beatAll(one), beatAll(two)]);
      const stored = new Map((await two.listWorkers()).map((w) => [w.id, w.heartbeatAt]));
      const [clock] = await raw`SELECT beat_at, stalled_ms FROM lease_clock`;
      let latest = 0;
      for (const record of records) {
        for (const stamps of byConnection) {
          const mine = stamps.get(record.id)!;
          assert.equal(mine.length, 40);
          assert.deepEqual(mine, [...mine].sort((x, y) => x - y), `${record.id}: never back`);
        }
        const all = byConnection.flatMap((stamps) => stamps.get(record.id)!);
        // No beat is lost under another: the newest of either connection is the one stored.
        assert.equal(stored.get(record.id), Math.max(...all), `${record.id} kept its newest beat`);
        latest = Math.max(latest, ...all);
      }
      assert.equal(
        Number(clock.beat_at),
        latest,
        "the lease clock is at the newest beat of anyone",
      );
      assert.equal(Number(clock.stalled_ms), stalledAtStart, "beats ms apart are no stall");
    });
  });

  Deno.test("pg store leases: a heartbeat without a clock is stamped with the server's clock, read once the lease clock is locked", async () => {
    await withSchema(1, async ([store], raw) => {
      const record = worker("wa", { heartbeatAt: 0 });
      await store.registerWorker(record);
      const serverNow = async () => Number((await raw`SELECT now_ms() AS now`)[0].now);
      const before = await serverNow();
      const { beatAt } = await store.heartbeatWorker(record);
      const after = await serverNow();
      assert.ok(
        beatAt >= before && beatAt <= after,
        `beat ${beatAt} between ${before} and ${after} on the server's clock`,
      );
      // A beat that waits for the lease clock is stamped when it gets it, not when it asked.
      const lock = await holdLock(raw, (tx) => tx`SELECT 1 FROM lease_clock FOR UPDATE`);
      const waiting = store.heartbeatWorker(record);
      await until(async () => await waitersOn(raw, lock.pid) > 0, "the beat waits for the lock");
      await new Promise((resolve) => setTimeout(resolve, 300));
      const releasedAt = await lock.release();
      const waited = await waiting;
      assert.ok(
        waited.beatAt >= releasedAt,
        `beat ${waited.beatAt} stamped after the lock was released at ${releasedAt}`,
      );
      assert.equal((await store.listWorkers())[0].heartbeatAt, waited.beatAt);
    });
  });

  Deno.test("pg store leases: two rescues at once remove a dead worker once, and only one settlement of its run takes effect", async () => {
    await withSchema(2, async ([one, two], raw) => {
      const doomed = worker("doomed", { host: "host-d" });
      for (const record of [worker("judge-1"), worker("judge-2"), doomed]) {
        await one.registerWorker(record);
      }
      await one.enqueue([newJob("a"), newJob("b")], T0);
      const runs = [await claimOne(one, T0, "doomed"), await claimOne(one, T0, "doomed")];
      // Both rescuers judge "doomed" dead and reach its row together: it is locked meanwhile.
      const lock = await holdLock(
        raw,
        (tx) => tx`SELECT 1 FROM workers WHERE id = 'doomed' FOR UPDATE`,
      );
      const rescues = [
        one.rescue({ judge: "judge-1", deadWorkers: [doomed], aliveWorkers: [] }),
        two.rescue({ judge: "judge-2", deadWorkers: [doomed], aliveWorkers: [] }),
      ];
      await until(async () => await waitersOn(raw, lock.pid) === 2, "both rescuers wait");
      await lock.release();
      const [first, second] = await Promise.all(rescues);
      assert.deepEqual(
        [first.removed, second.removed].sort((x, y) => y.length - x.length),
        [["doomed"], []],
        "removed by one rescuer only",
      );
      const remover = first.removed.length > 0 ? first : second;
      const other = remover === first ? second : first;
      // Both hand the runs back: they stay processing until settled. Only the remover knows the host.
      const summary = (rescue: typeof first) =>
        rescue.orphans.map((job) => [job.id, job.claimToken, job.host]).sort();
      assert.deepEqual(summary(remover), [
        ["a", runs[0].claimToken, "host-d"],
        ["b", runs[1].claimToken, "host-d"],
      ]);
      assert.deepEqual(summary(other), [
        ["a", runs[0].claimToken, null],
        ["b", runs[1].claimToken, null],
      ]);
      // Each settles them its own way, at once: each run is settled by one of them only.
      const [byRemover, byOther] = await Promise.all([
        one.settleOrphans(
          remover.orphans.map((job) => ({ job, outcome: ended("completed", T0 + 100) })),
        ),
        two.settleOrphans(
          other.orphans.map((job) => ({ job, outcome: ended("dead", T0 + 200) })),
        ),
      ]);
      const settled = [...byRemover, ...byOther].map((job) => job.id).sort();
      assert.deepEqual(settled, ["a", "b"], "each run settled once in all");
      // Read as stored (one row per recorded outcome), not through the store's queries.
      for (const id of ["a", "b"]) {
        const [{ n }] = await raw`SELECT count(*) AS n FROM job_attempts WHERE job_id = ${id}`;
        assert.equal(Number(n), 1, `one recorded outcome for ${id}`);
        const [{ state }] = await raw`SELECT state FROM jobs WHERE id = ${id}`;
        assert.equal(state, byRemover.some((job) => job.id === id) ? "completed" : "dead");
      }
      assert.deepEqual(
        (await two.rescue({ judge: "judge-2", deadWorkers: [], aliveWorkers: [] })).orphans,
        [],
      );
    });
  });
}
