/**
 * The PostgreSQL test helpers (tests/pg_helpers.ts) against the real test
 * server: fresh schemas are distinct, named in their URL and dropped; and,
 * in `deno test` runs of their own, how tests are registered when there is
 * no server (ignored, one line saying why) or when the one named in
 * QUEUECTL_TEST_PG cannot be used (failed), never showing the password.
 *
 * @module
 */

import assert from "node:assert/strict";
import { HOSTS } from "./hosts.ts";
import { freshSchema, pgTest, withFreshSchema, withSql } from "./pg_helpers.ts";

const PROBE_SUITE = new URL("./fixtures/pg_probe_suite.ts", import.meta.url).pathname;

/** Whether schema `name` exists on the server at `url`. */
function schemaExists(url: string, name: string): Promise<boolean> {
  return withSql(url, async (sql) => {
    const rows = await sql`SELECT 1 FROM pg_namespace WHERE nspname = ${name}`;
    return rows.length === 1;
  });
}

pgTest("pg helpers: fresh schemas are distinct, named in their URL, and dropped", async (url) => {
  const fresh = await Promise.all([freshSchema(), freshSchema(), freshSchema()]);
  try {
    assert.equal(new Set(fresh.map(({ schema }) => schema)).size, 3, "three names");
    for (const { url: storeUrl, schema } of fresh) {
      assert.match(schema, /^qt_[0-9a-f]{16}$/);
      assert.equal(new URL(storeUrl).searchParams.get("schema"), schema);
      assert.ok(await schemaExists(url, schema), `${schema} created`);
    }
  } finally {
    for (const { drop } of fresh) await drop();
  }
  for (const { schema } of fresh) assert.equal(await schemaExists(url, schema), false, schema);
});

pgTest(
  "pg helpers: withSql on a schema's URL works in that schema; drop takes its tables",
  (url) =>
    withFreshSchema(async (fresh) => {
      const [{ schema }] = await withSql(
        fresh.url,
        (sql) => sql`SELECT current_schema() AS schema`,
      );
      assert.equal(schema, fresh.schema);
      // Unqualified names are the schema's: a table made here is found there, and only there.
      await withSql(fresh.url, (sql) => sql`CREATE TABLE jobs (id int)`);
      const tables = await withSql(
        url,
        (sql) => sql`SELECT table_schema FROM information_schema.tables WHERE table_name = 'jobs'`,
      );
      assert.ok(tables.some((row) => row.table_schema === fresh.schema), JSON.stringify(tables));
      await fresh.drop();
      assert.equal(await schemaExists(url, fresh.schema), false, "dropped with its table");
    }),
);

/** Runs the probe suite in a `deno test` of its own, under `wrapper` (e.g. a network namespace). */
async function runProbeSuite(env: Record<string, string>, wrapper: string[] = []) {
  const argv = [...wrapper, Deno.execPath(), "test", "-A", "--no-check", PROBE_SUITE];
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    // The whole environment: the probe must not see a QUEUECTL_TEST_PG the caller left out.
    env: { ...env, NO_COLOR: "1" },
    clearEnv: true,
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test({
  name: "pg helpers: with no server, the PostgreSQL tests are ignored and one line says why",
  // A network namespace of its own, where 127.0.0.1 is unreachable: no server for the default URL.
  ignore: "skip" in HOSTS,
  fn: async () => {
    const env = Deno.env.toObject();
    delete env.QUEUECTL_TEST_PG;
    const run = await runProbeSuite(env, ["unshare", "--net"]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const output = run.stdout + run.stderr;
    const lines = output.split("\n").filter((line) => line.includes("PostgreSQL tests skipped"));
    assert.equal(lines.length, 1, output);
    assert.match(
      lines[0],
      /^PostgreSQL tests skipped: no usable server at postgres:\/\/queuectl_test@127\.0\.0\.1:5432\/queuectl_test \(.+\); run \.ci\/postgres, or set QUEUECTL_TEST_PG$/,
    );
    assert.match(run.stdout, /needs the PostgreSQL server \.\.\. ignored/);
    assert.match(run.stdout, /0 passed \| 0 failed \| 1 ignored/);
  },
});

Deno.test("pg helpers: a QUEUECTL_TEST_PG that cannot be used fails the tests, without its password", async () => {
  const run = await runProbeSuite({
    ...Deno.env.toObject(),
    QUEUECTL_TEST_PG: "postgres://queuectl_test:s3cret-pw@127.0.0.1:1/queuectl_test",
  });
  const output = run.stdout + run.stderr;
  assert.equal(run.code, 1, output);
  assert.match(
    output,
    /QUEUECTL_TEST_PG=postgres:\/\/queuectl_test@127\.0\.0\.1:1\/queuectl_test cannot be used \(connection refused\)/,
  );
  assert.doesNotMatch(output, /s3cret-pw/);
  assert.match(run.stdout, /0 passed \| 1 failed/);
});
