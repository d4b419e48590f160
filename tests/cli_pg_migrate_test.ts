/**
 * `queuectl migrate` and the schema check on PostgreSQL: a new schema is
 * made once however many processes open it at the same moment (the
 * advisory lock), one made by a newer queuectl is refused by every command
 * and left untouched, one recording a version no queuectl writes is refused
 * as changed by hand, and a schema holding another program's tables is
 * refused too; `public`, PostgreSQL's own schemas and names not in lower
 * case are refused before anything is made. The shipped migration keeps
 * the text it shipped with.
 *
 * @module
 */

import assert from "node:assert/strict";
import { FIRST_PG_VERSION, PG_MIGRATIONS, PG_SCHEMA_VERSION } from "../lib/store/pg_migrations.ts";
import { RUN_DURATION_BOUNDS_MS } from "../lib/store/rows.ts";
import { UPGRADED_TALLY } from "./store_builders.ts";
import { SCHEMA_VERSION } from "../lib/store/sqlite_open.ts";
import { assertRefused, cli, cliOk, openQueueStore } from "./helpers.ts";
import { freshSchema, PG_IGNORE, pgUrl, withSql } from "./pg_helpers.ts";

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
const SHIPPED = [
  "e50b5811009f3689eef7ad24529e22a06a6eb0e5022219100e5ffdaebc3d4d67",
  "b4f2854682bec613ed61b53a5f526d0cecae58fa91093cd85a1dd38eb8289453",
  "8d80e527f1bc8ece5d65742c397b898c2157cd1c140f80d1048c3f06861cfc07",
  "cf2eda6f3978f5f07ffbbec96617177170e5c6586733e815fd895ee6626082f8",
  "f04d83cac51e0dbc27483bddf35419b0af7ce045c3e4a8e390d9b1cd7eaf8b16",
  "a1d25f70f5c81c136f796e590a2e64fd3767d8cc65c983d321c31b05bd4cc831",
];

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

pgSchemaTest(
  "postgres schema: a recorded version below the first (set by hand) is refused in one line by every command and left untouched",
  async (db, schema) => {
    await cliOk(["enqueue", "--id", "kept", "true"], { db });
    for (const [set, recorded] of [[3, "schema version 3"], [undefined, "no schema version"]]) {
      await withSql(
        db,
        (sql) =>
          set === undefined
            ? sql`DELETE FROM schema_version`
            : sql`UPDATE schema_version SET version = ${set as number}`,
      );
      for (const args of [["status"], ["enqueue", "true"], ["migrate"]]) {
        const run = await cli(args, { db });
        assertRefused(run, 1, `${args.join(" ")} at ${recorded}`);
        assert.match(
          run.stderr,
          new RegExp(
            `\\(schema ${schema}\\) records ${recorded}, which no queuectl writes .*` +
              "changed by hand; restore it from a backup, or use a new schema",
          ),
        );
      }
    }
    const rows = await withSql(db, (sql) => sql`SELECT id FROM jobs`);
    assert.deepEqual(rows.map((row) => row.id), ["kept"]);
    const versions = await withSql(db, (sql) => sql`SELECT version FROM schema_version`);
    assert.equal(versions.length, 0);
  },
);

Deno.test({
  name:
    "postgres schema: public, PostgreSQL's own schemas and names not in lower case are refused (exit 2), nothing made",
  ignore: PG_IGNORE,
  fn: async () => {
    const server = pgUrl();
    const tablesIn = (schema: string) =>
      withSql(
        server,
        async (sql) =>
          (await sql`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = ${schema}`)[0]
            .n as number,
      );
    const publicBefore = await tablesIn("public");
    const refused = async (schema: string, message: RegExp) => {
      const run = await cli(["enqueue", "true"], { db: `${server}?schema=${schema}` });
      assertRefused(run, 2, schema);
      assert.match(run.stderr, message, schema);
    };
    const lowerCase = /a schema name is 1 to 63 lower-case letters, digits and _, not starting/;
    for (const name of ["Jobs", "QUEUE", "1jobs", "my-jobs", "x".repeat(64)]) {
      await refused(name, lowerCase);
    }
    const notItsOwn = /give queuectl a schema of its own \(the default is queuectl\)$/m;
    for (const name of ["pg_catalog", "pg_jobs", "information_schema", "public"]) {
      await refused(name, notItsOwn);
    }
    assert.equal(await tablesIn("public"), publicBefore, "tables made in public");
    const made = await withSql(
      server,
      (sql) => sql`SELECT nspname FROM pg_namespace WHERE nspname IN ('jobs', 'queue', 'pg_jobs')`,
    );
    assert.deepEqual([...made], []);
  },
});

Deno.test("postgres migration 6's duration buckets are RUN_DURATION_BOUNDS_MS, in the tally and its trigger", () => {
  const arrays = [...PG_MIGRATIONS[1].matchAll(/ARRAY\[([^\]]*)\]/g)]
    .map((m) => m[1].split(",").map(Number));
  assert.deepEqual(arrays, [[...RUN_DURATION_BOUNDS_MS], [...RUN_DURATION_BOUNDS_MS]]);
});

pgSchemaTest(
  "postgres migrate: a version-5 schema is brought to 6 with the runs it stores already tallied",
  async (db) => {
    await withSql(db, async (sql) => {
      await sql.unsafe(PG_MIGRATIONS[0]);
      await sql`INSERT INTO schema_version (id, version) VALUES (1, ${FIRST_PG_VERSION})`;
      await sql`
        INSERT INTO jobs (id, queue, command, state, attempts, max_retries, run_at, created_at,
          updated_at, finished_at, cwd) VALUES
          ('done', 'a', 'true', 'completed', 2, 1, 0, 0, 0, 5000, '/'),
          ('gone', 'b', 'false', 'dead', 1, 0, 0, 0, 0, 6000, '/')`;
      await sql`
        INSERT INTO job_attempts (job_id, attempt, started_at, finished_at, exit_code, error,
          stdout, stderr) VALUES ('done', 1, 0, 40, 1, 'exited with code 1', '', ''),
          ('done', 2, 1000, 5000, 0, NULL, '', ''),
          ('gone', 1, NULL, 6000, NULL, 'could not start: no such file', '', '')`;
    });
    assert.match(await cliOk(["migrate"], { db }), new RegExp(`\\b${PG_SCHEMA_VERSION}\\b`));
    const store = await openQueueStore(db);
    try {
      assert.deepEqual((await store.runTotals()).map((t) => ({ ...t })), UPGRADED_TALLY);
    } finally {
      await store.close();
    }
  },
);
