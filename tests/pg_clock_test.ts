/**
 * Job times on the PostgreSQL server's clock (lib/store/pg_clock.ts,
 * `Store.now()`): a machine whose own clock is off still enqueues delays
 * and claims due jobs on the queue's one clock. A machine's clock is set an
 * hour ahead or behind with libfaketime (`faketime -f +1h`, Debian's
 * `faketime` package, which .ci/run installs): real processes, real server.
 *
 * @module
 */

import assert from "node:assert/strict";
import { openPgStore } from "../lib/store/pg_store.ts";
import { cli, exitWithin, killProcess, startWorker } from "./helpers.ts";
import { freshSchema, PG_IGNORE, pgTest, pgUrl, withSql } from "./pg_helpers.ts";

const MINUTE_MS = 60_000;

/** Why the faketime tests cannot run here, or undefined when they can. */
const NO_FAKETIME = await new Deno.Command("faketime", { args: ["-f", "+1h", "true"] }).output()
  .then((out) => out.success ? undefined : "faketime does not run", () => "faketime is missing");
if (NO_FAKETIME !== undefined && !PG_IGNORE) {
  console.error(`skipping the faketime clock tests: ${NO_FAKETIME} (apt-get install faketime)`);
}

/** The server's clock now, in epoch ms. */
async function serverNow(url: string): Promise<number> {
  return await withSql(
    url,
    async (sql) =>
      (await sql`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`)[0]
        .ms as number,
  );
}

/** A test with the server and faketime, on a fresh schema. */
function skewTest(name: string, body: (db: string, url: string) => Promise<void>): void {
  Deno.test({
    name,
    ignore: PG_IGNORE || NO_FAKETIME !== undefined,
    fn: async () => {
      const url = pgUrl();
      const schema = await freshSchema(url);
      try {
        await body(schema.url, url);
      } finally {
        await schema.drop();
      }
    },
  });
}

pgTest("pg clock: a store's now() is the server's time", async (url) => {
  const schema = await freshSchema(url);
  const store = await openPgStore(schema.url, "test");
  try {
    const before = await serverNow(url);
    const seen = store.now();
    const after = await serverNow(url);
    // A margin for the round trips and a loaded machine.
    assert.ok(seen >= before - 250 && seen <= after + 250, `${seen} within [${before}, ${after}]`);
  } finally {
    await store.close();
    await schema.drop();
  }
});

skewTest(
  "pg clock: enqueue on a machine an hour ahead: --delay 10m is ten minutes from the server's now",
  async (db, url) => {
    const ahead = { db, runner: ["faketime", "-f", "+1h"] };
    const result = await cli(["enqueue", "--id", "later", "--delay", "10m", "true"], ahead);
    assert.equal(result.code, 0, result.stderr);
    const now = await serverNow(url);
    const [row] = await withSql(db, (sql) => sql`SELECT run_at FROM jobs WHERE id = 'later'`);
    const dueIn = (row.run_at as number) - now;
    assert.ok(dueIn > 9 * MINUTE_MS && dueIn <= 10 * MINUTE_MS, `due in ten minutes: ${dueIn} ms`);
  },
);

skewTest(
  "pg clock: a job enqueued now on a machine an hour ahead is run at once by a worker an hour behind",
  async (db) => {
    const ahead = await cli(["enqueue", "--id", "now", "true"], {
      db,
      runner: ["faketime", "-f", "+1h"],
    });
    assert.equal(ahead.code, 0, ahead.stderr);
    // Two hours apart: on either machine's own clock the job would be due two hours off.
    const worker = startWorker(db, ["--drain"], { runner: ["faketime", "-f", "-1h"] });
    try {
      assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
    const [row] = await withSql(db, (sql) => sql`SELECT state FROM jobs WHERE id = 'now'`);
    assert.equal(row.state, "completed");
  },
);
