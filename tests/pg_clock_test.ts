/**
 * The PostgreSQL store's clock (lib/store/pg_clock.ts): `Store.now()` is
 * the server's time, so that a host whose own clock is off still stamps and
 * compares job times on the queue's one clock. A host's clock is skewed by
 * giving the store a local clock an hour ahead (the store's `localClock`
 * option); the server and its clock are real.
 *
 * @module
 */

import assert from "node:assert/strict";
import { openPgStore } from "../lib/store/pg_store.ts";
import type { Store } from "../lib/store/store.ts";
import { freshSchema, pgTest, withSql } from "./pg_helpers.ts";
import { newJob } from "./store_builders.ts";

const HOUR_MS = 3_600_000;

/** The server's clock now, in epoch ms. */
async function serverNow(url: string): Promise<number> {
  return await withSql(
    url,
    async (sql) =>
      (await sql`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`)[0]
        .ms as number,
  );
}

/** Runs `body` with two stores on a fresh schema: one on a host an hour ahead, one on this host. */
function withSkewedHosts(
  name: string,
  body: (ahead: Store, here: Store, url: string) => Promise<void>,
): void {
  pgTest(name, async (url) => {
    const schema = await freshSchema(url);
    const stores: Store[] = [];
    try {
      stores.push(
        await openPgStore(schema.url, "ahead", { localClock: () => Date.now() + HOUR_MS }),
      );
      stores.push(await openPgStore(schema.url, "here"));
      await body(stores[0], stores[1], url);
    } finally {
      for (const store of stores) await store.close();
      await schema.drop();
    }
  });
}

withSkewedHosts(
  "pg clock: a store's now() is the server's time, even on a host an hour ahead",
  async (ahead, _here, url) => {
    const before = await serverNow(url);
    const seen = ahead.now();
    const after = await serverNow(url);
    // A margin for the two round trips and a loaded machine.
    assert.ok(seen >= before - 250 && seen <= after + 250, `${seen} within [${before}, ${after}]`);
  },
);

withSkewedHosts(
  "pg clock: a job enqueued now on a host an hour ahead is due now on another; one due in an hour is not",
  async (ahead, here) => {
    const now = ahead.now();
    await ahead.enqueue([
      newJob("now", { runAt: now }),
      newJob("later", { runAt: now + HOUR_MS }),
    ], now);
    const claimed = await here.claim("w", here.now());
    assert.equal(claimed?.id, "now", "the job enqueued now is due now on the other host");
    assert.equal(await here.claim("w", here.now()), undefined, "the other is an hour away");
    const later = await here.getJob("later");
    const dueIn = later!.runAt - here.now();
    assert.ok(dueIn > HOUR_MS - 60_000 && dueIn <= HOUR_MS, `due in about an hour (${dueIn} ms)`);
  },
);
