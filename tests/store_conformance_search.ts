/**
 * The store conformance suite, text search and positions (see
 * tests/store_conformance.ts): `listJobs` and `countMatching` with
 * `JobFilter.text` (a substring of the id or command, case as written,
 * short and long text) and `JobFilter.after` (a page's cursor), checked
 * against a model of the rule (`holdsText`, lib/store/rules.ts), on jobs the
 * trigram index holds and on jobs enqueued since it was last brought up to
 * date.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Job } from "../lib/job.ts";
import { holdsText } from "../lib/store/rules.ts";
import type { JobFilter, Store } from "../lib/store/store.ts";
import { claimOne, ended, newJob, T0, worker } from "./store_builders.ts";
import type { ConformanceTest } from "./store_conformance.ts";
import { SeededRandom } from "./seeded_random.ts";

/** Registers the conformance tests of this file (see {@linkcode ConformanceTest}). */
export function exerciseStoreSearch(test: ConformanceTest): void {
  exerciseText(test);
  exercisePositions(test);
}

const ids = (jobs: readonly Job[]) => jobs.map((job) => job.id);

/** Brings the store's text index up to date the way a queue's leader does, in its upkeep. */
async function upkeep(store: Store): Promise<void> {
  await store.registerWorker(worker("leader"));
  assert.notEqual(await store.maintain("leader", T0 + 1), null, "the only worker leads");
}

/** Checks listJobs and countMatching against the model for `filter`. */
async function checkAgainstModel(
  store: Store,
  every: readonly Job[],
  filter: JobFilter,
  what: string,
): Promise<void> {
  const wanted = every.filter((job) =>
    holdsText(job, filter.text ?? "") &&
    (filter.queue === undefined || job.queue === filter.queue) &&
    (filter.states === undefined || filter.states.length === 0 ||
      filter.states.includes(job.state))
  );
  const found = await store.listJobs(filter);
  assert.deepEqual(ids(found), ids(wanted).slice(0, filter.limit ?? Infinity), what);
  assert.equal(await store.countMatching(filter), wanted.length, what);
}

function exerciseText(test: ConformanceTest): void {
  test("listJobs with text finds a substring of the id or the command, case as written", async (store) => {
    await store.enqueue([
      newJob("build-1", { command: "make all" }),
      newJob("deploy-1", { command: "./deploy --env build" }),
      newJob("BUILD-2", { command: "make BUILD", queue: "other" }),
      newJob("odd%_\\", { command: 'echo "50%" done_ok; printf \\\\' }),
      newJob("unicode", { command: "echo grüße 日本語" }),
    ], T0);
    const found = async (filter: JobFilter) => ids(await store.listJobs(filter));
    assert.deepEqual(await found({ text: "build" }), ["deploy-1", "build-1"]);
    assert.deepEqual(await found({ text: "BUILD" }), ["BUILD-2"]);
    assert.deepEqual(await found({ text: "make", queue: "default" }), ["build-1"]);
    assert.deepEqual(await found({ text: "make", limit: 1 }), ["BUILD-2"]);
    assert.deepEqual(await found({ text: "-1", states: ["pending"] }), ["deploy-1", "build-1"]);
    assert.deepEqual(await found({ text: "-1", states: ["dead"] }), []);
    // LIKE's and FTS5's special characters are text like any other.
    assert.deepEqual(await found({ text: "%_" }), ["odd%_\\"]);
    assert.deepEqual(await found({ text: '"50%"' }), ["odd%_\\"]);
    assert.deepEqual(await found({ text: "_ok" }), ["odd%_\\"]);
    assert.deepEqual(await found({ text: "\\\\" }), ["odd%_\\"]);
    assert.deepEqual(await found({ text: "%" }), ["odd%_\\"]);
    assert.deepEqual(await found({ text: "日本語" }), ["unicode"]);
    assert.deepEqual(await found({ text: "grüße 日" }), ["unicode"]);
    assert.deepEqual(await found({ text: "GRÜSSE" }), []);
    assert.deepEqual(await found({ text: "nothing like it" }), []);
    assert.equal(await store.countMatching({ text: "make" }), 2);
    assert.equal(await store.countMatching({ text: "e", states: ["pending"] }), 5);
    assert.equal(await store.countMatching({}), 5);
  });

  test("text search agrees with the rule on indexed, newly enqueued and deleted jobs", async (store) => {
    const random = new SeededRandom(16);
    const word = () =>
      Array.from({ length: random.between(1, 6) }, () => "abcAB -"[random.int(7)]).join("");
    const batch = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) =>
        newJob(`j${from + i}-${word()}`, {
          command: `run ${word()} ${word()}`,
          queue: random.int(3) === 0 ? "other" : "default",
        }));
    await store.enqueue(batch(0, 120), T0);
    // The leader's upkeep indexes the jobs so far (SQLite); later ones wait for the next.
    await upkeep(store);
    await store.enqueue(batch(120, 60), T0);
    const first = await claimOne(store, T0 + 2);
    await store.finishAttempt(first, ended("completed", T0 + 3));
    let every = await store.listJobs({});
    // Deleted jobs, indexed or not, the newest one too: its seq may be given out again.
    const doomed = [every[0].id, every[5].id, every[100].id, every[170].id];
    assert.equal(await store.deleteJobs({ ids: doomed }, T0 + 4), doomed.length);
    await store.enqueue(batch(180, 3), T0 + 5);
    every = await store.listJobs({});
    const queries = [
      "a",
      "b",
      "A",
      "-",
      " ",
      "ab",
      "aB",
      "n a",
      "abc",
      "run a",
      "j1",
      "j17",
      "-ab",
    ];
    for (let i = 0; i < 12; i++) queries.push(word());
    for (const text of queries) {
      await checkAgainstModel(store, every, { text }, `text ${JSON.stringify(text)}`);
      await checkAgainstModel(store, every, { text, queue: "other", limit: 7 }, `${text} other`);
      await checkAgainstModel(store, every, { text, states: ["completed"] }, `${text} done`);
    }
    await upkeep(store);
    for (const text of queries.slice(0, 8)) {
      await checkAgainstModel(store, every, { text, limit: 5 }, `after upkeep ${text}`);
    }
    // The newest job deleted once indexed, and its seq given to the next job (SQLite).
    assert.equal(await store.deleteJobs({ ids: [every[0].id] }, T0 + 6), 1);
    await store.enqueue([newJob("fresh", { command: "run needle" })], T0 + 7);
    assert.deepEqual(ids(await store.listJobs({ text: "needle" })), ["fresh"]);
    assert.deepEqual(ids(await store.listJobs({ text: "run", limit: 1 })), ["fresh"]);
  });
}

function exercisePositions(test: ConformanceTest): void {
  test("listJobs after a position goes on below the oldest of its jobs still stored", async (store) => {
    const jobs = Array.from(
      { length: 12 },
      (_, i) =>
        newJob(`p${String(i).padStart(2, "0")}`, { command: i % 2 === 0 ? "echo even" : "true" }),
    );
    for (const [i, job] of jobs.entries()) await store.enqueue([job], T0 + i * 10);
    const all = ids(await store.listJobs({}));
    assert.equal(all[0], "p11");
    const at = (id: string) => T0 + Number(id.slice(1)) * 10;
    const after = (...anchors: string[]) => ({ ids: anchors, createdAt: at(anchors[0]) });

    assert.deepEqual(ids(await store.listJobs({ after: after("p08"), limit: 3 })), [
      "p07",
      "p06",
      "p05",
    ]);
    // The oldest of the anchors still stored decides, whatever its state now.
    assert.deepEqual(
      ids(await store.listJobs({ after: after("p08", "p09"), limit: 2 })),
      ["p07", "p06"],
    );
    assert.deepEqual(ids(await store.listJobs({ after: after("p08"), text: "even" })), [
      "p06",
      "p04",
      "p02",
      "p00",
    ]);
    assert.deepEqual(ids(await store.listJobs({ after: after("p08"), text: "ev", limit: 1 })), [
      "p06",
    ]);
    assert.deepEqual(
      ids(await store.listJobs({ after: after("p08"), text: "even", limit: 2 })),
      ["p06", "p04"],
    );
    assert.deepEqual(
      ids(await store.listJobs({ after: after("p08"), states: ["pending"], limit: 2 })),
      ["p07", "p06"],
    );
    assert.deepEqual(
      ids(await store.listJobs({ after: after("p08"), queue: "default", limit: 2 })),
      ["p07", "p06"],
    );
    // The anchor deleted: the next one still stored.
    assert.equal(await store.deleteJobs({ ids: ["p08"] }, T0 + 500), 1);
    assert.deepEqual(
      ids(await store.listJobs({ after: after("p08", "p09"), limit: 2 })),
      ["p07", "p06"],
    );
    // Every anchor gone: the jobs created no later than the first of them.
    assert.deepEqual(ids(await store.listJobs({ after: after("p08"), limit: 2 })), [
      "p07",
      "p06",
    ]);
    assert.deepEqual(ids(await store.listJobs({ after: after("p00") })), []);
    assert.deepEqual(
      ids(await store.listJobs({ after: { ids: ["gone"], createdAt: T0 - 1 } })),
      [],
    );
  });
}
