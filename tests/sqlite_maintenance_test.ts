/**
 * The SQLite store's upkeep: migrations of an existing database, the state
 * counters, the claim's query plan, purging a backlog in batches, refusing to
 * create a missing file when told not to.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { JOB_STATES } from "../lib/states.ts";
import { MIGRATIONS } from "../lib/store/sqlite_migrations.ts";
import { APPLICATION_ID, SCHEMA_VERSION } from "../lib/store/sqlite_open.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import type { AttemptOutcome, Store } from "../lib/store/store.ts";
import { withQueue } from "./helpers.ts";
import { ended, newJob as job, T0 } from "./store_builders.ts";

/** Runs the next due job to `state`, finishing at `finishedAt`. */
async function runNext(store: Store, state: AttemptOutcome["state"], finishedAt: number) {
  const claimed = await store.claim("w", finishedAt);
  assert.ok(claimed, "expected a job to claim");
  assert.equal(await store.finishAttempt(claimed, ended(state, finishedAt)), true);
  return claimed.id;
}

function rawCounts(path: string): Record<string, number> {
  const db = new DatabaseSync(path);
  try {
    const rows = db.prepare("SELECT state, count(*) AS n FROM jobs GROUP BY state").all();
    const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0]));
    for (const row of rows) counts[row.state as string] = row.n as number;
    return counts;
  } finally {
    db.close();
  }
}

Deno.test("a schema-1 database with jobs is migrated forward with correct counts", async () => {
  await withQueue(async ({ db: path }) => {
    const raw = new DatabaseSync(path);
    raw.exec(MIGRATIONS[0]);
    raw.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    raw.exec("PRAGMA user_version = 1");
    const insert = raw.prepare(
      `INSERT INTO jobs (id, command, state, max_retries, run_at, created_at, updated_at, cwd)
       VALUES (?, 'true', ?, 0, 0, 0, 0, '/')`,
    );
    for (let i = 0; i < 7; i++) insert.run(`p${i}`, "pending");
    for (let i = 0; i < 3; i++) insert.run(`c${i}`, "completed");
    insert.run("d0", "dead");
    raw.close();

    const store = await openSqliteStore(path);
    try {
      assert.deepEqual(await store.countByState(), {
        blocked: 0,
        pending: 7,
        processing: 0,
        completed: 3,
        failed: 0,
        dead: 1,
      });
      assert.equal(await store.countUnfinished(), 7);
    } finally {
      await store.close();
    }
    const check = new DatabaseSync(path);
    assert.equal(check.prepare("PRAGMA user_version").get()!.user_version, SCHEMA_VERSION);
    check.close();
  });
});

Deno.test("countByState() agrees with counting rows after every kind of change", async () => {
  await withQueue(async ({ db: path }) => {
    const store = await openSqliteStore(path);
    try {
      await store.enqueue(
        Array.from({ length: 40 }, (_, i) => job(`j${i}`, { maxRetries: 1 })),
        T0,
      );
      for (let i = 0; i < 10; i++) await runNext(store, "completed", T0 + i);
      for (let i = 0; i < 5; i++) await runNext(store, "failed", T0 + 100);
      const held = await store.claim("w", T0);
      assert.ok(held);
      const released = await store.claim("w", T0);
      assert.ok(released);
      assert.equal(await store.releaseJob(released, T0), true);
      await store.enqueue([job("to-die", { priority: 10 })], T0);
      const dying = await store.claim("w", T0);
      assert.equal(dying?.id, "to-die");
      await store.finishAttempt(dying!, ended("dead", T0));
      await store.reviveDead(["to-die"], T0);
      await store.purgeJobs(["completed"], T0 + 5);
      assert.deepEqual(await store.countByState(), rawCounts(path));
      assert.equal((await store.countByState()).completed, 5);
      assert.equal((await store.countByState()).processing, 1);
    } finally {
      await store.close();
    }
  });
});

Deno.test("claim() and nextRunAt() search the partial indexes instead of sorting", async () => {
  await withQueue(async ({ db: path }) => {
    (await openSqliteStore(path)).close();
    const raw = new DatabaseSync(path);
    try {
      const plan = (sql: string) =>
        raw.prepare(`EXPLAIN QUERY PLAN ${sql}`).all().map((r) => r.detail as string).join("; ");
      const claimPlan = plan(
        `SELECT seq FROM jobs INDEXED BY jobs_ready WHERE queue = 'default'
         AND state IN ('pending', 'failed') AND run_at <= 0
         ORDER BY priority DESC, run_at, seq LIMIT 1`,
      );
      assert.match(claimPlan, /jobs_ready/);
      assert.doesNotMatch(claimPlan, /TEMP B-TREE/);
      assert.match(
        plan(`SELECT min(run_at) FROM jobs INDEXED BY jobs_waiting_by_time
              WHERE queue = 'default' AND state IN ('pending', 'failed')`),
        /jobs_waiting_by_time/,
      );
    } finally {
      raw.close();
    }
  });
});

Deno.test("purgeJobs() deletes a backlog larger than one batch", async () => {
  await withQueue(async ({ db: path }) => {
    const store = await openSqliteStore(path);
    try {
      const raw = new DatabaseSync(path, { timeout: 5000 });
      raw.exec("BEGIN");
      const insert = raw.prepare(
        `INSERT INTO jobs (id, command, state, max_retries, run_at, created_at, updated_at,
           finished_at, cwd) VALUES (?, 'true', 'completed', 0, 0, 0, 0, 0, '/')`,
      );
      for (let i = 0; i < 12_345; i++) insert.run(`c${i}`);
      // The store counts the jobs it inserts; rows written behind its back must be counted too.
      raw.exec(
        `INSERT INTO queue_counts (queue, state, n) VALUES ('default', 'completed', 12345)
         ON CONFLICT DO UPDATE SET n = n + 12345`,
      );
      raw.exec("COMMIT");
      raw.close();
      assert.equal(await store.purgeJobs(["completed"], 1), 12_345);
      assert.equal((await store.countByState()).completed, 0);
    } finally {
      await store.close();
    }
  });
});

Deno.test("openSqliteStore() with create: false refuses a missing file and creates nothing", async () => {
  await withQueue(async ({ dir }) => {
    const path = `${dir}/absent/queue.db`;
    await assert.rejects(() => openSqliteStore(path, { create: false }), /no database/);
    await assert.rejects(() => Deno.stat(`${dir}/absent`), Deno.errors.NotFound);
  });
});
