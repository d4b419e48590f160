/**
 * Connecting to PostgreSQL as libpq users expect: bad credentials and a
 * missing database fail in one line with exit 1 and never show the
 * password; `PGPASSWORD` and `~/.pgpass` supply a password the URL lacks.
 *
 * @module
 */

import assert from "node:assert/strict";
import { assertRefused, cli, cliOk } from "./helpers.ts";
import { freshSchema, PG_IGNORE, pgUrl, withSql } from "./pg_helpers.ts";

/** The test server's URL with `password` (none when empty) and `database` in it. */
function withCredentials(password: string, database?: string): string {
  const url = new URL(pgUrl());
  url.password = password;
  if (database !== undefined) url.pathname = `/${database}`;
  return url.toString();
}

Deno.test({
  name:
    "postgres connect: a wrong password or a missing database fails in one line without the password",
  ignore: PG_IGNORE,
  fn: async () => {
    const secret = "not-the-Pa55word";
    const wrong = await cli(["status"], { db: withCredentials(secret) });
    assertRefused(wrong, 1, "wrong password");
    assert.match(wrong.stderr, /refused the login: password authentication failed/);
    assert.ok(!wrong.stderr.includes(secret));
    const missing = await cli(["status"], { db: withCredentials(secret, "no_such_db") });
    assertRefused(missing, 1, "missing database");
    assert.ok(!missing.stderr.includes(secret));
  },
});

Deno.test({
  name: "postgres connect: PGPASSWORD and ~/.pgpass give the password the URL leaves out",
  ignore: PG_IGNORE,
  fn: async () => {
    const schema = await freshSchema();
    const home = await Deno.makeTempDir({ prefix: "queuectl-pgpass-" });
    try {
      const full = new URL(schema.url);
      const password = decodeURIComponent(full.password);
      const bare = new URL(schema.url);
      bare.password = "";
      const db = bare.toString();
      const noPassword = await cli(["status"], { db, env: { HOME: home } });
      assertRefused(noPassword, 1, "no password anywhere");
      await cliOk(["enqueue", "--id", "a", "true"], {
        db,
        env: { HOME: home, PGPASSWORD: password },
      });
      await Deno.writeTextFile(
        `${home}/.pgpass`,
        `# host:port:database:user:password\n${full.hostname}:${full.port || "5432"}:*:${
          decodeURIComponent(full.username)
        }:${password.replaceAll("\\", "\\\\").replaceAll(":", "\\:")}\n`,
        { mode: 0o600 },
      );
      const listed = await cliOk(["list", "--json"], { db, env: { HOME: home } });
      assert.deepEqual(JSON.parse(listed).map((job: { id: string }) => job.id), ["a"]);
      // libpq ignores a .pgpass that others can read; so does queuectl.
      await Deno.chmod(`${home}/.pgpass`, 0o644);
      assertRefused(await cli(["status"], { db, env: { HOME: home } }), 1, "open .pgpass");
    } finally {
      await Deno.remove(home, { recursive: true });
      await schema.drop();
    }
  },
});

Deno.test({
  name:
    "postgres connect: sslmode is honoured: disable connects, require fails in one line on a server without SSL",
  ignore: PG_IGNORE,
  fn: async () => {
    const schema = await freshSchema();
    try {
      const ssl = await withSql(schema.url, (sql) => sql`SHOW ssl`);
      const url = new URL(schema.url);
      url.searchParams.set("sslmode", "disable");
      await cliOk(["status"], { db: url.toString() });
      if (ssl[0].ssl === "on") return; // A server with SSL accepts require: nothing to refuse here.
      url.searchParams.set("sslmode", "require");
      const required = await cli(["status"], { db: url.toString() });
      assertRefused(required, 1, "sslmode=require");
      assert.match(required.stderr, /sslmode=require: does the server accept SSL\?/);
      // The test role's password may equal its name: look for it where a URL would hold it.
      assert.ok(!required.stderr.includes(`:${url.password}@`), required.stderr);
    } finally {
      await schema.drop();
    }
  },
});

Deno.test({
  name:
    "postgres connect: a URL that cannot be read is refused without its password; ?password= is a password",
  ignore: PG_IGNORE,
  fn: async () => {
    for (const bad of ["127.0.0.1:99999", "127.0.0.1:abc", "ho st"]) {
      const run = await cli(["status"], { db: `postgres://u:S3CRETQ@${bad}/db` });
      assertRefused(run, 2, bad);
      assert.match(run.stderr, /is not a valid PostgreSQL URL/);
      assert.ok(!run.stderr.includes("S3CRETQ"), run.stderr);
    }
    const schema = await freshSchema();
    try {
      const url = new URL(schema.url);
      const password = url.password;
      url.password = "";
      const twice = await cli(["status"], { db: `${url}&schema=other` });
      assertRefused(twice, 2, "two schemas");
      assert.match(twice.stderr, /names \?schema= more than once/);
      url.searchParams.set("password", decodeURIComponent(password));
      await cliOk(["enqueue", "--id", "p", "true"], {
        db: url.toString(),
        env: { HOME: "/nonexistent" },
      });
    } finally {
      await schema.drop();
    }
  },
});
