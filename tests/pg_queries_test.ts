/**
 * The PostgreSQL store's queue reads and pause/resume (lib/store/pg_queries.ts)
 * beyond what the conformance suite can see, on a real server: resuming a
 * queue is news for the workers listening on every host.
 *
 * @module
 */

import assert from "node:assert/strict";
import postgres from "postgres";
import { openPgStore } from "../lib/store/pg_store.ts";
import { freshSchema, PG } from "./pg_helpers.ts";
import { T0 } from "./store_builders.ts";

Deno.test({
  name:
    "pg_queries: resumeQueue tells listening workers there is work; a pause, or a resume that changes nothing, does not",
  ignore: "skip" in PG,
  async fn() {
    const schema = await freshSchema();
    const worker = await openPgStore(schema.url, "worker", { max: 1 });
    const cli = await openPgStore(schema.url, "cli", { max: 1 });
    const raw = postgres(schema.url.split("?")[0], { max: 1, onnotice: () => {} });
    const heard: string[] = [];
    const listen = worker.notifier.listen;
    assert.ok(listen, "the PostgreSQL notifier listens");
    const subscription = await listen.call(worker.notifier, (what) => heard.push(what));
    try {
      assert.equal(await cli.pauseQueue("mail", T0), true);
      assert.equal(await cli.resumeQueue("mail"), true);
      assert.equal(await cli.resumeQueue("mail"), false);
      // A marker sent last: notices arrive in commit order, so all before it have arrived with it.
      await raw`SELECT pg_notify(${`queuectl.${schema.schema}`}, 'kill')`;
      const deadline = Date.now() + 10_000;
      while (!heard.includes("kill") && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.deepEqual(heard, ["jobs", "kill"], "the one resume that resumed, then the marker");
    } finally {
      await subscription.close();
      await raw.end({ timeout: 1 });
      await worker.close();
      await cli.close();
      await schema.drop();
    }
  },
});
