/**
 * What the PostgreSQL store's reads and output writes (lib/store/pg_metrics.ts,
 * lib/store/pg_outputs.ts) do while other transactions are open on the same
 * rows, on a real server: things SQLite's single writer never lets happen,
 * so the conformance suite cannot show them. A raw connection holds a
 * transaction open at the moment that matters.
 *
 * @module
 */

import assert from "node:assert/strict";
import postgres from "postgres";
import { openPgStore } from "../lib/store/pg_store.ts";
import type { Store } from "../lib/store/store.ts";
import { freshSchema, PG } from "./pg_helpers.ts";
import { claimOne, newJob, outcome, T0 } from "./store_builders.ts";

type Raw = postgres.Sql<Record<string, unknown>>;

/** Runs `body` with a store and a raw connection on a fresh schema, dropped afterwards. */
async function withStore(body: (store: Store, raw: Raw) => Promise<void>): Promise<void> {
  const schema = await freshSchema();
  const store = await openPgStore(schema.url, `test schema ${schema.schema}`, { max: 2 });
  const raw = postgres(schema.url.split("?")[0], {
    max: 2,
    onnotice: () => {},
    connection: { search_path: schema.schema },
  });
  try {
    await body(store, raw);
  } finally {
    await raw.end({ timeout: 2 });
    await store.close();
    await schema.drop();
  }
}

/** Polls `condition` every 20 ms until it holds, failing after `timeoutMs`. */
async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A transaction on `raw` held open until `release` is called; `body` runs first in it. */
function openTransaction(raw: Raw, body: (tx: postgres.TransactionSql) => Promise<void>) {
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  let started = () => {};
  const ready = new Promise<void>((resolve) => started = resolve);
  const done = raw.begin(async (tx) => {
    await body(tx);
    started();
    await released;
  });
  return { ready, release, done };
}

Deno.test({
  name:
    "pg_metrics: a history mark counts a run whose transaction commits after it, though a later run committed first",
  ignore: "skip" in PG,
  fn: () =>
    withStore(async (store, raw) => {
      await store.enqueue([newJob("early"), newJob("late")], T0);
      await claimOne(store);
      const late = await claimOne(store);
      // "early" ends first: its run gets the lower seq, but its transaction stays open.
      const early = openTransaction(raw, async (tx) => {
        await tx`UPDATE jobs SET state = 'completed', claim_token = NULL, finished_at = ${T0 + 1}
                 WHERE id = 'early'`;
        await tx`INSERT INTO job_attempts (job_id, attempt, started_at, finished_at, exit_code,
                   stdout, stderr) VALUES ('early', 1, ${T0}, ${T0 + 1}, 0, '\\x', '\\x')`;
      });
      await early.ready;
      await store.finishAttempt(late, outcome("completed"));
      let mark: Awaited<ReturnType<Store["markHistory"]>> | undefined;
      const marking = store.markHistory(T0 + 2).then((m) => mark = m);
      // The mark either waits for the open run (which must then commit) or is taken at once.
      await until(
        async () =>
          mark !== undefined ||
          (await raw`SELECT 1 FROM pg_locks WHERE NOT granted AND mode = 'ShareLock'
                   AND relation = 'job_attempts'::regclass`).length > 0,
        "the mark waits or is taken",
      );
      early.release();
      await early.done;
      await marking;
      assert.ok(mark);
      // Every job unfinished at the mark has finished since or is unfinished still (none added).
      const finished = await store.countFinishedSince(mark);
      assert.equal(await store.countUnfinished(), 0);
      assert.equal(
        finished.completed + finished.dead,
        mark.unfinished,
        `unfinished at the mark: ${mark.unfinished}; finished since: ${JSON.stringify(finished)}`,
      );
    }),
});

Deno.test({
  name:
    "pg_outputs: recordLiveOutput gives up within a moment while the job's row is held, and stores once it is free",
  ignore: "skip" in PG,
  fn: () =>
    withStore(async (store, raw) => {
      await store.enqueue([newJob("busy")], T0);
      const job = await claimOne(store);
      const snapshot = {
        stdout: new TextEncoder().encode("so far"),
        stderr: new Uint8Array(),
        stdoutTotal: 6,
        stderrTotal: 0,
        updatedAt: T0 + 1,
      };
      // As an outcome being stored holds it: an update of no key column, which a
      // foreign key's check alone would not wait for.
      const holder = openTransaction(raw, async (tx) => {
        await tx`UPDATE jobs SET updated_at = updated_at + 1 WHERE id = 'busy'`;
      });
      await holder.ready;
      const started = performance.now();
      const settled = store.recordLiveOutput(job, snapshot).then(
        (stored) => ({ stored, ms: performance.now() - started }),
        (error: Error) => ({ error, ms: performance.now() - started }),
      );
      // Let go of the row after 3 s at most, so that a write that waits cannot hang the test.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const result = await Promise.race([
        settled,
        new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 3_000)),
      ]);
      clearTimeout(timer);
      holder.release();
      await holder.done;
      assert.ok(result, "the write was still waiting after 3 s");
      assert.ok("error" in result, "the write went through a row held for an outcome");
      assert.match(result.error.message, /lock timeout/);
      assert.ok(result.ms < 2_000, `waited ${result.ms.toFixed(0)} ms for a busy job`);
      assert.equal(await store.liveOutput("busy"), undefined);
      assert.equal(await store.recordLiveOutput(job, snapshot), true);
      assert.equal((await store.liveOutput("busy"))?.stdoutTotal, 6);
    }),
});
