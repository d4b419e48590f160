/**
 * The store conformance suite, part four (see tests/store_conformance.ts):
 * job environments (stored and handed to the worker with the job) and
 * unique jobs (lib/store/rules.ts `holdsUniqueKey`), including enqueuers
 * of one key on several connections at once.
 *
 * @module
 */

import assert from "node:assert/strict";
import { QueueError } from "../lib/errors.ts";
import type { NewJob } from "../lib/job.ts";
import type { Store } from "../lib/store/store.ts";
import { claimOne, ended, newJob, T0 } from "./store_builders.ts";
import type { ConformanceTest } from "./store_conformance.ts";

const HOUR = 3_600_000;

/** Registers the conformance tests of this file (see {@linkcode ConformanceTest}). */
export function exerciseEnvAndUnique(test: ConformanceTest): void {
  exerciseEnv(test);
  exerciseUnique(test);
}

function keyed(id: string, key: string, fields: Partial<NewJob> = {}): NewJob {
  return newJob(id, { uniqueKey: key, ...fields });
}

async function ids(store: Store): Promise<string[]> {
  return (await store.listJobs({ limit: 1000 })).map((job) => job.id).sort();
}

function exerciseEnv(test: ConformanceTest): void {
  test("a job's environment is stored exactly and comes with its claim", async (store) => {
    const env = { LANG: "C.UTF-8", EMPTY: "", SPACED: " a = b ", UNICODE: "wörld ✓\nline 2" };
    await store.enqueue([newJob("with", { env }), newJob("without")], T0);
    assert.deepEqual((await store.getJob("with"))?.env, env);
    assert.deepEqual((await store.getJob("without"))?.env, {});
    const claimed = [await claimOne(store), await claimOne(store)];
    assert.deepEqual(claimed.find((job) => job.id === "with")?.env, env);
    assert.deepEqual((await store.listJobs({ limit: 10 })).find((j) => j.id === "with")?.env, env);
  });
}

function exerciseUnique(test: ConformanceTest): void {
  test("an enqueue whose unique key a waiting or running job holds adds nothing and names it", async (store) => {
    assert.deepEqual(await store.enqueue([keyed("first", "k")], T0), []);
    assert.equal((await store.getJob("first"))?.uniqueKey, "k");
    const held = await store.enqueue([keyed("second", "k", { command: "other" })], T0 + 1);
    assert.deepEqual(held, [{ index: 0, holder: "first", holderState: "pending" }]);
    const job = await claimOne(store, T0 + 2);
    assert.deepEqual(await store.enqueue([keyed("third", "k")], T0 + 3), [
      { index: 0, holder: "first", holderState: "processing" },
    ]);
    // A failed run waiting for its retry still holds it.
    await store.finishAttempt(job, ended("failed", T0 + 4));
    assert.deepEqual(await store.enqueue([keyed("fourth", "k")], T0 + 5), [
      { index: 0, holder: "first", holderState: "failed" },
    ]);
    assert.deepEqual(await ids(store), ["first"]);
  });

  test("a batch of 20,000 jobs with keys of their own is added whole, and holds every key", async (store) => {
    // More keys than PostgreSQL's lock table holds (about 6,400): one lock per key ran out.
    const jobs = Array.from({ length: 20_000 }, (_, i) => keyed(`k${i}`, `key-${i}`));
    assert.deepEqual(await store.enqueue(jobs, T0), []);
    assert.equal(await store.countJobs(["pending"]), 20_000);
    const again = await store.enqueue([keyed("again", "key-19999")], T0 + 1);
    assert.deepEqual(again.map((held) => held.holder), ["k19999"]);
  });

  test("a blocked job holds its key; other queues and other keys are free", async (store) => {
    await store.enqueue([newJob("dep"), keyed("blocked", "k", { after: ["dep"] })], T0);
    assert.equal((await store.getJob("blocked"))?.state, "blocked");
    const held = await store.enqueue([
      keyed("same", "k"),
      keyed("other-queue", "k", { queue: "mail" }),
      keyed("other-key", "k2"),
    ], T0);
    assert.deepEqual(held, [{ index: 0, holder: "blocked", holderState: "blocked" }]);
    assert.deepEqual(await ids(store), ["blocked", "dep", "other-key", "other-queue"]);
  });

  test("a finished job holds its key for the new job's unique_for, no longer", async (store) => {
    await store.enqueue([keyed("done", "k"), keyed("buried", "d", { maxRetries: 0 })], T0);
    const first = await claimOne(store, T0);
    await store.finishAttempt(first, ended(first.id === "done" ? "completed" : "dead", T0 + 10));
    const second = await claimOne(store, T0);
    await store.finishAttempt(second, ended(second.id === "done" ? "completed" : "dead", T0 + 10));
    // Finished 990 ms before: held against a window of 1 s, not of 990 ms or none.
    const now = T0 + 1_000;
    assert.deepEqual(await store.enqueue([keyed("a", "k", { uniqueForMs: 1_000 })], now), [
      { index: 0, holder: "done", holderState: "completed" },
    ]);
    assert.deepEqual(await store.enqueue([keyed("b", "d", { uniqueForMs: HOUR })], now), [
      { index: 0, holder: "buried", holderState: "dead" },
    ]);
    assert.deepEqual(await store.enqueue([keyed("c", "k", { uniqueForMs: 990 })], now), []);
    assert.deepEqual(await store.enqueue([keyed("e", "d")], now), []);
    assert.deepEqual(await ids(store), ["buried", "c", "done", "e"]);
  });

  test("a job of the batch that starts dead holds its key as a finished one", async (store) => {
    await store.enqueue([newJob("gone", { maxRetries: 0 })], T0);
    await store.finishAttempt(await claimOne(store, T0), ended("dead", T0 + 10));
    const held = await store.enqueue([
      keyed("stillborn", "k", { after: ["gone"] }),
      keyed("within", "k", { uniqueForMs: HOUR }),
      keyed("without", "k"),
    ], T0 + 20);
    assert.deepEqual(held, [{ index: 1, holder: "stillborn", holderState: "dead" }]);
    assert.deepEqual(await ids(store), ["gone", "stillborn", "without"]);
  });

  test("a batch's jobs hold their keys against its later jobs; the rest are added", async (store) => {
    const held = await store.enqueue([
      keyed("a1", "a"),
      newJob("plain"),
      keyed("a2", "a"),
      keyed("b1", "b", { env: { X: "1" } }),
      keyed("a3", "a", { uniqueForMs: HOUR }),
    ], T0);
    assert.deepEqual(held, [
      { index: 2, holder: "a1", holderState: "pending" },
      { index: 4, holder: "a1", holderState: "pending" },
    ]);
    assert.deepEqual(await ids(store), ["a1", "b1", "plain"]);
    assert.deepEqual((await store.countByState()).pending, 3);
    // A batch all of whose jobs are held adds nothing and fails nothing.
    assert.equal((await store.enqueue([keyed("a4", "a"), keyed("b2", "b")], T0)).length, 2);
    assert.deepEqual(await ids(store), ["a1", "b1", "plain"]);
  });

  test("a job started over is refused while another job holds its key, all or none", async (store) => {
    await store.enqueue([keyed("old", "k", { maxRetries: 0 })], T0);
    await store.finishAttempt(await claimOne(store, T0), ended("dead", T0 + 10));
    await store.enqueue(
      [keyed("new", "k"), newJob("free", { maxRetries: 0, priority: 9 })],
      T0 + 20,
    );
    await store.finishAttempt(await claimOne(store, T0 + 20), ended("dead", T0 + 30));
    await assert.rejects(
      store.reviveDead(["free", "old"], T0 + 40),
      (error) =>
        error instanceof QueueError && /job 'old' cannot start over: job 'new' \(pending\)/.test(
          error.message,
        ),
    );
    await assert.rejects(store.rerunJobs(["old"], T0 + 40), QueueError);
    assert.equal((await store.getJob("free"))?.state, "dead", "all or none");
    assert.equal((await store.getJob("old"))?.state, "dead");
    // Once the holder has finished, the key is free for it (the window is the enqueue's).
    await store.finishAttempt(await claimOne(store, T0 + 50), ended("completed", T0 + 60));
    assert.deepEqual(await store.reviveDead(["old"], T0 + 70), ["old"]);
    assert.equal((await store.getJob("old"))?.state, "pending");
  });

  test("two dead jobs of one key are not revived together", async (store) => {
    for (const id of ["d1", "d2"]) {
      await store.enqueue([keyed(id, "k", { maxRetries: 0 })], T0);
      await store.finishAttempt(await claimOne(store, T0), ended("dead", T0 + 10));
    }
    await assert.rejects(
      store.reviveDead("all", T0 + 20),
      /job 'd2' cannot start over together with job 'd1': both have unique key "k"/,
    );
    assert.deepEqual((await store.countByState()).dead, 2);
  });

  test(
    "concurrent enqueuers of one key on several connections add exactly one job, while its holders finish",
    async (store, opened) => {
      const stores = [store, ...await Promise.all([1, 2, 3].map(() => opened.connect()))];
      for (let round = 0; round < 6; round++) {
        const key = `round-${round}`;
        const now = T0 + round * 1_000;
        // A worker finishes each job as soon as it can: a finished holder still holds the key.
        let finishing = true;
        const finisher = (async () => {
          while (finishing) {
            const job = await store.claim("w1", now, { queues: ["unique"] });
            if (job) await store.finishAttempt(job, ended("completed", now));
            else await new Promise((resolve) => setTimeout(resolve, 1));
          }
        })();
        const answers = await Promise.all(
          stores.flatMap((s, i) =>
            [0, 1].map(async (k) => {
              const id = `${key}-${i}-${k}`;
              const held = await s.enqueue(
                [keyed(id, key, { queue: "unique", uniqueForMs: HOUR })],
                now,
              );
              return held.length === 0 ? id : held[0].holder;
            })
          ),
        );
        finishing = false;
        await finisher;
        const stored = (await store.listJobs({ queue: "unique", limit: 100 }))
          .filter((job) => job.uniqueKey === key);
        assert.equal(stored.length, 1, `round ${round}: ${stored.map((j) => j.id)}`);
        assert.deepEqual(new Set(answers), new Set([stored[0].id]), `round ${round}`);
      }
    },
  );
}
