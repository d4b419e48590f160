/**
 * The PostgreSQL store's upkeep (lib/store/pg_maintenance.ts) while other
 * transactions write: forgetting empty queues never strands a job being
 * enqueued, and folding the count deltas (and the run tally's) keeps every count while
 * jobs move.
 * Things SQLite's single writer never lets happen, so the conformance suite
 * cannot show them. Skipped when no test server answers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { holdLock, type Raw, until, waitersOn, withSchema } from "./pg_concurrency.ts";
import { PG } from "./pg_helpers.ts";
import { ended, newJob, T0, worker } from "./store_builders.ts";

/** Counts by queue and state as the jobs themselves say, as `queue/state` → n. */
async function trueCounts(raw: Raw): Promise<Map<string, number>> {
  return new Map(
    (await raw`SELECT queue, state, count(*) AS n FROM jobs GROUP BY queue, state`)
      .map((row) => [`${row.queue}/${row.state}`, Number(row.n)]),
  );
}

if ("skip" in PG) {
  Deno.test({ name: "pg store maintenance: skipped", ignore: true, fn() {} });
  console.error(PG.skip);
} else {
  Deno.test("pg store maintenance: forgetting empty queues leaves the queue of an enqueue under way", async () => {
    await withSchema(1, async ([store], raw) => {
      await store.registerWorker(worker("leader"));
      // A queue known and empty (its jobs gone), then an enqueue into it as pg_outcomes.ts
      // does it, held open after its insert.
      await store.pauseQueue("fresh", T0);
      await store.resumeQueue("fresh");
      const enqueue = await holdLock(raw, async (tx) => {
        await tx`INSERT INTO queues (name) VALUES ('fresh') ON CONFLICT DO NOTHING`;
        await tx`SELECT name FROM queues WHERE name = 'fresh' FOR KEY SHARE`;
        await tx`
          INSERT INTO jobs (id, queue, command, state, max_retries, run_at, created_at,
            updated_at, cwd)
          VALUES ('j', 'fresh', 'true', 'pending', 0, ${T0}, ${T0}, ${T0}, '/tmp')`;
      });
      let settled = false;
      const upkeep = store.maintain("leader", T0).finally(() => settled = true);
      await until(
        async () => settled || await waitersOn(raw, enqueue.pid) > 0,
        "the upkeep is done or waits for the enqueue",
      );
      await enqueue.release();
      await upkeep;
      const [{ n }] = await raw`SELECT count(*) AS n FROM queues WHERE name = 'fresh'`;
      assert.equal(Number(n), 1, "the queue of the job enqueued meanwhile is still known");
      assert.equal((await store.claim("w", T0, { queues: ["fresh"] }))?.id, "j");
    });
  });

  Deno.test("pg store maintenance: folding counts while jobs are enqueued, claimed and finished keeps every count", async () => {
    await withSchema(2, async ([leader, writer], raw) => {
      await leader.registerWorker(worker("leader"));
      let writing = true;
      const writes = (async () => {
        try {
          for (let round = 0; round < 30; round++) {
            const queue = `q${round % 3}`;
            await writer.enqueue(
              [newJob(`a${round}`, { queue }), newJob(`b${round}`, { queue })],
              T0,
            );
            const job = await writer.claim("w", T0);
            if (job) await writer.finishAttempt(job, ended("completed", T0 + 1));
            await writer.claim("w", T0);
          }
        } finally {
          writing = false;
        }
      })();
      let folds = 0;
      while (writing) {
        assert.ok(await leader.maintain("leader", T0), "the leader does the upkeep");
        folds++;
      }
      await writes;
      assert.ok(folds > 1, "folded while the jobs moved");
      await leader.maintain("leader", T0);
      const expected = await trueCounts(raw);
      const counted = new Map<string, number>();
      for (const queue of await leader.listQueues()) {
        for (const [state, n] of Object.entries(queue.counts)) {
          if (n !== 0) counted.set(`${queue.name}/${state}`, n);
        }
      }
      assert.deepEqual(counted, expected);
      const [{ rows }] = await raw`SELECT count(*) AS rows FROM job_count_deltas`;
      assert.equal(Number(rows), expected.size, "one delta row per queue and state after a fold");
      // The run tally is folded the same way, and keeps every run.
      const runs = await raw`
        SELECT j.queue, count(*) AS n FROM job_attempts a JOIN jobs j ON j.id = a.job_id
        GROUP BY j.queue`;
      assert.deepEqual(
        new Map((await leader.runTotals()).map((t) => [t.queue, t.succeeded + t.failed])),
        new Map(runs.map((row) => [row.queue as string, Number(row.n)])),
      );
      const [tally] = await raw`
        SELECT count(*) AS rows,
          (SELECT count(*) FROM (SELECT DISTINCT queue, succeeded, retry, bucket FROM run_tally) g)
            AS groups
        FROM run_tally`;
      assert.equal(
        Number(tally.rows),
        Number(tally.groups),
        "one tally row per group after a fold",
      );
    });
  });
}
