/**
 * `queuectl migrate` and the schema check on PostgreSQL: a new schema is
 * made once however many processes open it at the same moment (the
 * advisory lock), one made by a newer queuectl is refused by every command
 * and left untouched, and a schema holding another program's tables is
 * refused too. The shipped migration keeps the text it shipped with.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PG_MIGRATIONS, PG_SCHEMA_VERSION } from "../lib/store/pg_migrations.ts";
import { SCHEMA_VERSION } from "../lib/store/sqlite_migrations.ts";
import { assertRefused, cli, cliOk } from "./helpers.ts";
import { freshSchema, PG_IGNORE, withSql } from "./pg_helpers.ts";

/** A test on a fresh schema of the test server, dropped afterwards. */
function pgSchemaTest(name: string, fn: (url: string, schema: string) => Promise<void>): void {
  Deno.test({
    name,
    ignore: PG_IGNORE,
    fn: async () => {
      const fresh = await freshSchema();
      try {
        await fn(fresh.url, fresh.schema);
      } finally {
        await fresh.drop();
      }
    },
  });
}

/** SHA-256 of each PostgreSQL migration's SQL text as it shipped: a shipped migration never changes. */
const SHIPPED = ["e50b5811009f3689eef7ad24529e22a06a6eb0e5022219100e5ffdaebc3d4d67"];

Deno.test("postgres migrations: in step with SQLite's, and unchanged byte for byte", async () => {
  assert.equal(PG_SCHEMA_VERSION, SCHEMA_VERSION, "a schema change is a migration on both");
  const hashes = await Promise.all(PG_MIGRATIONS.map(async (text) => {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }));
  assert.deepEqual(hashes.slice(0, SHIPPED.length), SHIPPED);
});

pgSchemaTest(
  "postgres migrate: four processes opening a new schema at once make it once",
  async (db, schema) => {
    const runs = await Promise.all(
      Array.from(
        { length: 4 },
        (_, i) => cli(i === 0 ? ["migrate"] : ["status", "--json"], { db }),
      ),
    );
    for (const run of runs) assert.equal(run.code, 0, run.stderr);
    const again = await cliOk(["migrate"], { db });
    assert.equal(again.trim(), `database at version ${PG_SCHEMA_VERSION}, nothing to do`);
    const tables = await withSql(
      db,
      (sql) => sql`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = ${schema}`,
    );
    assert.ok(tables[0].n >= 9, `tables made: ${tables[0].n}`);
  },
);

pgSchemaTest(
  "postgres schema: one written by a newer queuectl is refused by every command and left untouched",
  async (db) => {
    await cliOk(["enqueue", "--id", "kept", "true"], { db });
    await withSql(db, (sql) => sql`UPDATE schema_version SET version = 99`);
    for (const args of [["status"], ["enqueue", "true"], ["migrate"], ["worker", "start"]]) {
      const run = await cli(args, { db });
      assertRefused(run, 1, args.join(" "));
      assert.match(run.stderr, /written by a newer queuectl \(schema 99, this one knows \d+\)/);
    }
    const rows = await withSql(db, (sql) => sql`SELECT id FROM jobs`);
    assert.deepEqual(rows.map((row) => row.id), ["kept"]);
  },
);

pgSchemaTest(
  "postgres schema: a schema holding another program's tables is refused and left alone",
  async (db, schema) => {
    await withSql(db, (sql) => sql`CREATE TABLE invoices (id int)`);
    const run = await cli(["status"], { db });
    assertRefused(run, 1, "status");
    assert.match(
      run.stderr,
      new RegExp(`schema ${schema} .* holds tables that are not queuectl's`),
    );
    const tables = await withSql(
      db,
      (sql) => sql`SELECT tablename FROM pg_tables WHERE schemaname = ${schema}`,
    );
    assert.deepEqual(tables.map((row) => row.tablename), ["invoices"]);
  },
);
