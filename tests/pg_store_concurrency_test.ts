/**
 * The PostgreSQL store under concurrent writers (lib/store/pg_claim.ts,
 * lib/store/pg_outcomes.ts): many connections, as many hosts would hold,
 * claiming and ending jobs at once under READ COMMITTED. Each test gets a
 * schema of its own on the test server; skipped when there is none.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DuplicateJobError } from "../lib/errors.ts";
import type { ClaimedJob } from "../lib/job.ts";
import { openPgStore } from "../lib/store/pg_store.ts";
import type { Store } from "../lib/store/store.ts";
import type { Tx } from "../lib/store/pg_connection.ts";
import { lockUniqueKeys } from "../lib/store/pg_enqueue.ts";
import { freshSchema, PG, pgUrl, withSql } from "./pg_helpers.ts";
import { waitFor } from "./helpers.ts";
import { newJob, outcome, T0 } from "./store_builders.ts";

/**
 * The deadlocks the server has detected in the test database so far:
 * database-wide, and counted when a session ends (read after closing the
 * test's stores).
 */
function deadlocks(): Promise<number> {
  return withSql(pgUrl(), async (sql) =>
    Number(
      (await sql`SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`)[0]
        .deadlocks,
    ));
}

/** Opens `count` stores (one pool of one connection each) on a fresh schema; runs `body`. */
async function withStores(count: number, body: (stores: Store[]) => Promise<void>) {
  const schema = await freshSchema();
  const stores: Store[] = [];
  try {
    for (let i = 0; i < count; i++) {
      stores.push(await openPgStore(schema.url, `test schema ${schema.schema}`, { max: 1 }));
    }
    await body(stores);
  } finally {
    for (const store of stores) await store.close();
    await schema.drop();
  }
}

/** Claims on `store` until no job is due any more; returns what it claimed. */
async function claimUntilNoneDue(store: Store, worker: string): Promise<ClaimedJob[]> {
  const claimed: ClaimedJob[] = [];
  while (true) {
    const job = await store.claim(worker, T0);
    if (job) claimed.push(job);
    // A claim finds nothing while every due job is held by other claims:
    // only an empty queue ends the loop.
    else if (await store.nextRunAt() === undefined) return claimed;
  }
}

/** Claims the job due now as worker `w`; fails the test when there is none. */
async function claimOne(store: Store): Promise<ClaimedJob> {
  const job = await store.claim("w", T0);
  assert.ok(job, "a job is due");
  return job;
}

if ("skip" in PG) {
  Deno.test({ name: "pg store concurrency: skipped", ignore: true, fn() {} });
  console.error(PG.skip);
} else {
  Deno.test("pg store concurrency: 8 connections claiming 500 jobs hand out each once and leave none", async () => {
    await withStores(8, async (stores) => {
      const ids = Array.from({ length: 500 }, (_, i) => `job-${i}`);
      await stores[0].enqueue(
        ids.map((id, i) => newJob(id, { queue: `q${i % 3}`, priority: i % 4 })),
        T0,
      );
      const claimed = (await Promise.all(
        stores.map((store, i) => claimUntilNoneDue(store, `w${i}`)),
      )).flat();
      assert.equal(claimed.length, 500, "every job claimed exactly once in all");
      assert.deepEqual(claimed.map((job) => job.id).sort(), [...ids].sort());
      assert.equal(new Set(claimed.map((job) => job.claimToken)).size, 500);
      assert.ok(claimed.every((job) => job.state === "processing" && job.attempts === 1));
      assert.equal(await stores[3].claim("late", T0), undefined);
    });
  });

  Deno.test("pg store concurrency: outcomes that claim next on limited queues running dry never deadlock", async () => {
    const before = await deadlocks();
    await withStores(4, async (stores) => {
      for (const queue of ["a", "b"]) await stores[0].setQueueLimits(queue, { concurrency: 100 });
      for (let round = 0; round < 25; round++) {
        const jobs = stores.map((_, i) => newJob(`r${round}-${i}`, { queue: i % 2 ? "a" : "b" }));
        await stores[0].enqueue(jobs, T0);
        const held = await Promise.all(stores.map((store, i) => store.claim(`w${i}`, T0)));
        // Each finds both queues empty, having passed over the one the other holds.
        await Promise.all(held.map((job, i) => {
          assert.ok(job, "each store claimed one job of the round");
          return stores[i].finishAndClaim(job, outcome("completed"), `w${i}`, T0);
        }));
      }
    });
    assert.equal(await deadlocks() - before, 0, "deadlocks the server detected");
  });

  Deno.test("pg store concurrency: a retry and an enqueue after the retried job, of one unique key, never deadlock", async () => {
    const waitingForKeys = () =>
      withSql(pgUrl(), async (sql) =>
        Number(
          (await sql`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)[
            0
          ]
            .n,
        ));
    const before = await deadlocks();
    const schema = await freshSchema();
    const [enqueuer, retrier] = [
      await openPgStore(schema.url, "enqueuer", { max: 1 }),
      await openPgStore(schema.url, "retrier", { max: 1 }),
    ];
    try {
      await enqueuer.enqueue([newJob("J", { uniqueKey: "K" })], T0);
      const job = await claimOne(enqueuer);
      await enqueuer.finishAttempt(job, outcome("dead"));
      // A third session holds the key's lock, so that the enqueue queues for it first, then the retry.
      let release = () => {};
      const released = new Promise<void>((resolve) => release = resolve);
      let held = () => {};
      const holding = new Promise<void>((resolve) => held = resolve);
      const holder = withSql(schema.url, (sql) =>
        sql.begin(async (tx) => {
          await lockUniqueKeys(tx as unknown as Tx, ["default"], ["K"]);
          held();
          await released;
        }));
      await holding;
      const enqueue = enqueuer.enqueue([newJob("E", { uniqueKey: "K", after: ["J"] })], T0 + 1);
      await waitFor("the enqueue to wait for the key", async () => await waitingForKeys() >= 1);
      const retry = retrier.reviveDead(["J"], T0 + 2).catch((error) => error);
      // The old order: the retry locked J's row, then queued for the key behind the enqueue.
      await waitFor("the retry to wait", async () =>
        (await waitingForKeys()) >= 2 ||
        await withSql(pgUrl(), async (sql) =>
          Number(
            (await sql`SELECT count(*) AS n FROM pg_stat_activity
              WHERE wait_event_type = 'Lock' AND datname = current_database()`)[0].n,
          ) >= 2));
      release();
      await holder;
      await Promise.all([enqueue, retry]);
    } finally {
      await enqueuer.close();
      await retrier.close();
      await schema.drop();
    }
    assert.equal(await deadlocks() - before, 0, "deadlocks the server detected");
  });

  Deno.test("pg store concurrency: an enqueue after a job racing its completion never leaves the new job blocked", async () => {
    await withStores(2, async ([finisher, enqueuer]) => {
      for (let round = 0; round < 40; round++) {
        await finisher.enqueue([newJob(`dep-${round}`)], T0);
        const dependency = await claimOne(finisher);
        await Promise.all([
          finisher.finishAttempt(dependency, outcome("completed")),
          enqueuer.enqueue([newJob(`after-${round}`, { after: [`dep-${round}`] })], T0),
        ]);
        // Released (or pending from the start): it is the one job due.
        assert.equal((await claimOne(finisher)).id, `after-${round}`, `round ${round}`);
        assert.equal(await finisher.claim("w", T0), undefined);
      }
    });
  });

  Deno.test("pg store concurrency: two jobs completing at once release the job that runs after both", async () => {
    await withStores(2, async (stores) => {
      for (let round = 0; round < 40; round++) {
        await stores[0].enqueue([newJob(`a-${round}`), newJob(`b-${round}`)], T0);
        await stores[0].enqueue(
          [newJob(`c-${round}`, { after: [`a-${round}`, `b-${round}`] })],
          T0,
        );
        const first = await claimOne(stores[0]);
        const second = await claimOne(stores[1]);
        await Promise.all([
          stores[0].finishAttempt(first, outcome("completed")),
          stores[1].finishAttempt(second, outcome("completed")),
        ]);
        assert.equal((await claimOne(stores[0])).id, `c-${round}`, `round ${round}`);
      }
    });
  });

  Deno.test("pg store concurrency: an enqueue after a job racing its death puts the new job in the DLQ", async () => {
    await withStores(2, async ([finisher, enqueuer]) => {
      for (let round = 0; round < 40; round++) {
        await finisher.enqueue([newJob(`dep-${round}`, { maxRetries: 0 })], T0);
        const dependency = await claimOne(finisher);
        await Promise.all([
          finisher.finishAttempt(dependency, outcome("dead")),
          enqueuer.enqueue([newJob(`after-${round}`, { after: [`dep-${round}`] })], T0),
        ]);
        // Dead (abandoned, or dead from the start), never blocked: reviving the
        // whole DLQ brings back both jobs, the later one waiting for the first.
        assert.deepEqual(await finisher.reviveDead("all", T0), [`dep-${round}`, `after-${round}`]);
        const revived = await claimOne(finisher);
        assert.equal(revived.id, `dep-${round}`);
        assert.equal(await finisher.claim("w", T0), undefined, "the job after waits");
        await finisher.finishAttempt(revived, outcome("completed"));
        const released = await claimOne(finisher);
        assert.equal(released.id, `after-${round}`);
        await finisher.finishAttempt(released, outcome("completed"));
      }
    });
  });
}

if (!("skip" in PG)) {
  Deno.test("pg store concurrency: an enqueue after a job and its dependent racing the job's completion succeeds", async () => {
    await withStores(2, async ([finisher, enqueuer]) => {
      for (let round = 0; round < 20; round++) {
        // The enqueue locks "blocked-…" before "dep-…"; the completion locks them the other way.
        await finisher.enqueue([newJob(`dep-${round}`)], T0);
        await finisher.enqueue([newJob(`blocked-${round}`, { after: [`dep-${round}`] })], T0);
        const dependency = await claimOne(finisher);
        await Promise.all([
          finisher.finishAttempt(dependency, outcome("completed")),
          enqueuer.enqueue(
            [newJob(`last-${round}`, { after: [`blocked-${round}`, `dep-${round}`] })],
            T0,
          ),
        ]);
        const released = await claimOne(finisher);
        assert.equal(released.id, `blocked-${round}`, `round ${round}`);
        await finisher.finishAttempt(released, outcome("completed"));
        assert.equal((await claimOne(finisher)).id, `last-${round}`, `round ${round}`);
      }
    });
  });
}

if (!("skip" in PG)) {
  Deno.test("pg store concurrency: of two enqueues of one id at once, one stores it and the other names it taken", async () => {
    await withStores(2, async (stores) => {
      for (let round = 0; round < 20; round++) {
        const results = await Promise.allSettled(
          stores.map((store, i) =>
            store.enqueue([newJob(`other-${round}-${i}`), newJob(`same-${round}`)], T0)
          ),
        );
        const refused = results.filter((r) => r.status === "rejected");
        assert.equal(refused.length, 1, `round ${round}`);
        const error = (refused[0] as PromiseRejectedResult).reason;
        assert.ok(error instanceof DuplicateJobError, String(error));
        assert.equal(error.id, `same-${round}`);
      }
      // The refused batches stored nothing: one job of each round's pair, and the shared one.
      const claimed = await claimUntilNoneDue(stores[0], "w");
      assert.equal(claimed.length, 40);
    });
  });
}
