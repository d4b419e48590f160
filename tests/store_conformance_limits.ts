/**
 * The store conformance suite, queue limits (see tests/store_conformance.ts
 * and lib/queue_limits.ts): `setQueueLimits` and `listQueues`, the
 * concurrency and rate limits the claim obeys under several concurrent
 * claimers, a full queue that never blocks another one, and slots freed by
 * every way a run ends (outcome, release, rescue, kill).
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ClaimedJob } from "../lib/job.ts";
import type { Store } from "../lib/store/store.ts";
import { failureOutcome, NO_OUTPUT } from "../lib/worker/outcome.ts";
import { ended, newJob, T0 } from "./store_builders.ts";
import type { ConformanceTest } from "./store_conformance.ts";

/** Registers the conformance tests of queue limits. */
export function exerciseQueueLimits(test: ConformanceTest): void {
  exerciseSetting(test);
  exerciseConcurrency(test);
  exerciseRate(test);
}

/** `n` jobs `<prefix>-<i>` of `queue`, due at T0. */
function jobsOf(queue: string, n: number, prefix = queue) {
  return Array.from({ length: n }, (_, i) => newJob(`${prefix}-${i}`, { queue }));
}

async function running(store: Store, queue: string): Promise<number> {
  return (await store.listQueues(T0)).find((q) => q.name === queue)?.counts.processing ?? 0;
}

/** Every job claimed by `count` claims at `now` spread over `stores`, all at once. */
async function claimAtOnce(stores: Store[], count: number, now: number): Promise<ClaimedJob[]> {
  const results = await Promise.all(
    Array.from({ length: count }, (_, i) => stores[i % stores.length].claim(`w${i}`, now)),
  );
  return results.filter((job) => job !== undefined);
}

function exerciseSetting(test: ConformanceTest): void {
  test("setQueueLimits creates the queue, changes only the given limits, and listQueues shows them", async (store) => {
    assert.deepEqual(await store.setQueueLimits("mail", { concurrency: 3 }), {
      concurrency: 3,
      rate: null,
    });
    assert.deepEqual(
      await store.setQueueLimits("mail", { rate: { starts: 10, periodMs: 60_000 } }),
      {
        concurrency: 3,
        rate: { starts: 10, periodMs: 60_000 },
      },
    );
    const [mail] = await store.listQueues(T0);
    assert.equal(mail.name, "mail", "a queue with limits is listed though it holds no job");
    assert.deepEqual(mail.limits, { concurrency: 3, rate: { starts: 10, periodMs: 60_000 } });
    assert.equal(mail.recentStarts, 0);
    assert.deepEqual(await store.setQueueLimits("mail", { concurrency: null }), {
      concurrency: null,
      rate: { starts: 10, periodMs: 60_000 },
    });
    await store.setQueueLimits("mail", { rate: null });
    assert.deepEqual(await store.listQueues(T0), [], "without limits nor jobs it is not listed");
  });

  test("upkeep never forgets a queue that has limits", async (store) => {
    await store.setQueueLimits("mail", { concurrency: 1 });
    await store.maintain("leader", T0);
    assert.deepEqual((await store.listQueues(T0)).map((q) => q.name), ["mail"]);
  });
}

function exerciseConcurrency(test: ConformanceTest): void {
  test(
    "concurrent claimers on several connections never run more than the concurrency",
    async (store, opened) => {
      const stores = [store, ...await Promise.all([1, 2, 3].map(() => opened.connect()))];
      await store.setQueueLimits("lim", { concurrency: 3 });
      await store.enqueue([...jobsOf("lim", 12), ...jobsOf("free", 4)], T0);
      const claimed = await claimAtOnce(stores, 24, T0);
      assert.equal(claimed.filter((job) => job.queue === "free").length, 4);
      let lim = claimed.filter((job) => job.queue === "lim");
      assert.equal(lim.length, 3);
      // Rounds of outcomes, each claiming the next job, racing plain claims on every
      // connection: each round frees three slots and fills them again, never more.
      for (let round = 1; round <= 3; round++) {
        const [ends, claims] = await Promise.all([
          Promise.all(
            lim.map((job, i) => stores[i].finishAndClaim(job, ended("completed"), `f${i}`, T0)),
          ),
          claimAtOnce(stores, 8, T0),
        ]);
        assert.ok(ends.every((end) => end.recorded));
        // An outcome's claim passes over a queue another claim holds; its worker then claims
        // again on its own, as the job runner does.
        const again = await Promise.all(
          ends.map((end, i) => end.next ? undefined : stores[i].claim(`f${i}`, T0)),
        );
        lim = [
          ...ends.flatMap((end) => end.next ? [end.next] : []),
          ...claims,
          ...again.flatMap((job) => job ? [job] : []),
        ];
        assert.equal(lim.length, 3, `round ${round}`);
        assert.equal(await running(store, "lim"), 3, `round ${round}`);
      }
    },
  );

  test("a full queue is passed over for another queue's job, whatever their priorities", async (store) => {
    await store.setQueueLimits("lim", { concurrency: 1 });
    await store.enqueue([
      newJob("lim-1", { queue: "lim", priority: 9 }),
      newJob("lim-2", { queue: "lim", priority: 9 }),
      newJob("other", { queue: "other", priority: -5 }),
    ], T0);
    assert.equal((await store.claim("w1", T0))?.id, "lim-1");
    assert.equal((await store.claim("w2", T0, { queues: ["lim", "other"] }))?.id, "other");
    assert.equal(await store.claim("w3", T0), undefined);
    assert.equal(await store.nextRunAt(), undefined, "a full queue offers no job to wait for");
  });

  test("a limit change takes effect at the next claim, and removing it frees the queue", async (store) => {
    await store.enqueue(jobsOf("lim", 4), T0);
    await store.setQueueLimits("lim", { concurrency: 1 });
    assert.ok(await store.claim("w1", T0));
    assert.equal(await store.claim("w2", T0), undefined);
    await store.setQueueLimits("lim", { concurrency: 2 });
    assert.ok(await store.claim("w2", T0));
    assert.equal(await store.claim("w3", T0), undefined);
    await store.setQueueLimits("lim", { concurrency: null });
    assert.ok(await store.claim("w3", T0));
    assert.ok(await store.claim("w4", T0));
  });

  test("a slot comes back when a run is released, rescued, killed or fails", async (store) => {
    await store.setQueueLimits("lim", { concurrency: 1 });
    await store.enqueue(
      jobsOf("lim", 5).map((job) => ({ ...job, maxRetries: 0 })),
      T0,
    );
    const full = async () => assert.equal(await store.claim("other", T0), undefined);
    // A forced shutdown gives the job back.
    const first = (await store.claim("w1", T0))!;
    await full();
    assert.equal(await store.releaseJob(first, T0), true);
    // A dead worker's job, rescued and settled.
    const orphaned = (await store.claim("gone", T0))!;
    await full();
    const [orphan] = (await store.rescue({ judge: "nobody", deadWorkers: [], aliveWorkers: [] }))
      .orphans;
    assert.equal(orphan.id, orphaned.id);
    const config = await store.getConfig();
    const lost = failureOutcome(
      orphan,
      { exitCode: null, error: "its worker process died", output: NO_OUTPUT },
      config,
      T0 + 1,
    );
    assert.equal((await store.settleOrphans([{ job: orphan, outcome: lost }])).length, 1);
    // A kill (recorded as the run's failure) and a plain failure.
    const killed = (await store.claim("w1", T0))!;
    await full();
    await store.requestKill(killed.id, "dead");
    assert.equal(await store.finishAttempt(killed, ended("failed", T0 + 2, "killed")), true);
    const failing = (await store.claim("w1", T0))!;
    await full();
    assert.equal(await store.finishAttempt(failing, ended("failed", T0 + 3)), true);
    assert.equal(await running(store, "lim"), 0);
    assert.ok(await store.claim("w1", T0), "the slot is free after all of them");
    await full();
  });
}

function exerciseRate(test: ConformanceTest): void {
  test(
    "a rate limit lets N starts into any window of its length, which slides",
    async (store, opened) => {
      const stores = [store, ...await Promise.all([1, 2].map(() => opened.connect()))];
      await store.setQueueLimits("api", { rate: { starts: 3, periodMs: 1_000 } });
      await store.enqueue([...jobsOf("api", 10), ...jobsOf("free", 2)], T0);
      const first = await claimAtOnce(stores, 12, T0);
      assert.equal(first.filter((job) => job.queue === "api").length, 3);
      assert.equal(first.filter((job) => job.queue === "free").length, 2);
      assert.equal((await store.listQueues(T0)).find((q) => q.name === "api")?.recentStarts, 3);
      // The queue is full until its first starts leave the window; runs ending change nothing.
      for (const job of first) await store.finishAttempt(job, ended("completed"));
      assert.equal((await claimAtOnce(stores, 6, T0 + 999)).length, 0);
      assert.equal(await store.nextRunAt(), T0 + 1_000, "idle workers wait for the window");
      // It slides: one start at T0 + 1 200 leaves room for two at T0 + 1 500, then none
      // until T0 + 2 200, when the start at 1 200 has left.
      assert.equal((await claimAtOnce(stores, 1, T0 + 1_200)).length, 1);
      assert.equal((await claimAtOnce(stores, 6, T0 + 1_500)).length, 2);
      assert.equal((await claimAtOnce(stores, 6, T0 + 2_100)).length, 0);
      assert.equal(await store.nextRunAt(), T0 + 2_200);
      assert.equal((await claimAtOnce(stores, 6, T0 + 2_200)).length, 1);
      assert.equal((await claimAtOnce(stores, 6, T0 + 2_500)).length, 2);
    },
  );

  test("concurrency and rate together: the tighter one holds", async (store) => {
    await store.setQueueLimits("api", { concurrency: 1, rate: { starts: 2, periodMs: 1_000 } });
    await store.enqueue(jobsOf("api", 4), T0);
    const a = (await store.claim("w1", T0))!;
    assert.equal(await store.claim("w2", T0), undefined, "one at a time");
    const { next: b } = await store.finishAndClaim(a, ended("completed"), "w1", T0 + 10);
    assert.ok(b, "the next one starts as the first ends");
    const { next: c } = await store.finishAndClaim(b, ended("completed"), "w1", T0 + 20);
    assert.equal(c, undefined, "two starts in the window already");
    assert.ok(await store.claim("w1", T0 + 1_000));
  });
}
