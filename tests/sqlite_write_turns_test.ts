/**
 * Write turns among the threads of one process (WriteTurns in
 * lib/store/sqlite_connection.ts): the Web Workers of `worker start` take
 * turns in the process instead of colliding in SQLite's busy handler.
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import { WriteTurns } from "../lib/store/sqlite_connection.ts";
import { newJob, T0 } from "./store_builders.ts";
import { withQueue } from "./helpers.ts";

/** A thread that takes the turn of `shared`, holds it `holdMs`, gives it back, and says when. */
const HOLDER = `
  import { WriteTurns } from ${
  JSON.stringify(new URL("../lib/store/sqlite_connection.ts", import.meta.url).href)
};
  self.onmessage = ({ data: { shared, holdMs } }) => {
    const turns = new WriteTurns(shared);
    turns.take();
    self.postMessage("taken");
    const until = Date.now() + holdMs;
    while (Date.now() < until) { /* holding the turn */ }
    const givenAt = Date.now();
    turns.give();
    self.postMessage(givenAt);
  };
`;

function holder(shared: SharedArrayBuffer, holdMs: number) {
  const url = `data:application/typescript,${encodeURIComponent(HOLDER)}`;
  const worker = new Worker(url, { type: "module" });
  const messages: unknown[] = [];
  const waiting: ((message: unknown) => void)[] = [];
  worker.onmessage = ({ data }) => {
    const next = waiting.shift();
    if (next) next(data);
    else messages.push(data);
  };
  worker.postMessage({ shared, holdMs });
  return {
    next: () =>
      messages.length > 0
        ? Promise.resolve(messages.shift())
        : new Promise<unknown>((resolve) => waiting.push(resolve)),
    stop: () => worker.terminate(),
  };
}

Deno.test("write turns: a free turn is taken at once, and given back", () => {
  const turns = new WriteTurns(new SharedArrayBuffer(4));
  const started = performance.now();
  turns.take();
  turns.give();
  turns.take();
  turns.give();
  assert.ok(performance.now() - started < 100);
});

Deno.test("write turns: a thread waits while another thread writes, and goes on when it is done", async () => {
  const shared = new SharedArrayBuffer(4);
  const other = holder(shared, 300);
  try {
    assert.equal(await other.next(), "taken");
    new WriteTurns(shared).take();
    const tookAt = Date.now();
    const givenAt = await other.next() as number;
    assert.ok(tookAt >= givenAt, `took the turn ${givenAt - tookAt} ms before it was given`);
    assert.ok(tookAt - givenAt < 200, `took it ${tookAt - givenAt} ms after it was given`);
  } finally {
    other.stop();
  }
});

Deno.test("write turns: a turn never given back (its thread ended) is taken after a second", async () => {
  const shared = new SharedArrayBuffer(4);
  const other = holder(shared, 60_000);
  assert.equal(await other.next(), "taken");
  other.stop();
  const started = performance.now();
  const turns = new WriteTurns(shared);
  turns.take();
  const waited = performance.now() - started;
  assert.ok(waited >= 900 && waited < 5_000, `waited ${waited} ms`);
  turns.give();
  const again = performance.now();
  turns.take();
  assert.ok(performance.now() - again < 100, "taken at once once given back");
});

Deno.test("write turns: stores that share them still write correctly", () =>
  withQueue(async ({ db }) => {
    const shared = new SharedArrayBuffer(4);
    const stores = await Promise.all([0, 1].map(() => openSqliteStore(db, { writeTurns: shared })));
    try {
      await Promise.all(
        stores.map((store, s) =>
          store.enqueue(Array.from({ length: 50 }, (_, i) => newJob(`j${s}-${i}`)), T0)
        ),
      );
      const claimed = await Promise.all(stores.map((store, s) => store.claim(`w${s}`, T0)));
      assert.equal(claimed.filter((job) => job !== undefined).length, 2);
      assert.equal(new Int32Array(shared)[0], 0, "every turn was given back");
    } finally {
      for (const store of stores) await store.close();
    }
    const check = new DatabaseSync(db);
    assert.equal((check.prepare("SELECT count(*) AS n FROM jobs").get() as { n: number }).n, 100);
    check.close();
  }));
