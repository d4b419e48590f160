/**
 * Connecting to PostgreSQL as libpq users expect: bad credentials, a
 * missing database, a refused or silent peer, an unknown host, a missing
 * socket and a server that wants SSL fail in one line with exit 1 that
 * names the cause and never shows the password; `PGPASSWORD` and
 * `~/.pgpass` supply a password the URL lacks; an empty host with
 * `?host=<folder>`, or no host at all, goes through the Unix socket.
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
    // With the right password, the server says what is missing.
    const password = new URL(pgUrl()).password;
    const noDb = await cli(["status"], { db: withCredentials(password, "no_such_db") });
    assertRefused(noDb, 1, "missing database, right password");
    assert.match(noDb.stderr, /: database "no_such_db" does not exist$/m);
    assert.ok(!noDb.stderr.includes(`:${password}@`), noDb.stderr);
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

/**
 * The folder of the test server's Unix socket, when the server runs on this
 * machine with its socket in one of the usual folders (where it is
 * configured is readable only by superusers).
 */
function localSocket(): { dir: string; port: string } | undefined {
  const url = new URL(pgUrl());
  if (!["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) return undefined;
  const port = url.port || "5432";
  const dir = ["/var/run/postgresql", "/tmp"].find((dir) => {
    try {
      return Deno.statSync(`${dir}/.s.PGSQL.${port}`).isSocket;
    } catch {
      return false;
    }
  });
  return dir === undefined ? undefined : { dir, port };
}

Deno.test({
  name:
    "postgres connect: an empty host with ?host=<folder>, or no host at all, goes through the server's Unix socket",
  ignore: PG_IGNORE,
  fn: async () => {
    const socket = localSocket();
    if (socket === undefined) {
      console.error("no local socket of the test server: the socket forms are not tried");
      return;
    }
    const schema = await freshSchema();
    const folder = await Deno.makeTempDir({ prefix: "queuectl-pgsocket-" });
    try {
      const tcp = new URL(schema.url);
      const user = tcp.username;
      const password = tcp.password;
      const database = tcp.pathname.slice(1);
      const env = { PGPORT: socket.port, PGHOST: "" };
      // A folder of the test's own holding a link to the server's socket: a connection that
      // works through it, and fails once the link is gone, went through the socket.
      await Deno.symlink(
        `${socket.dir}/.s.PGSQL.${socket.port}`,
        `${folder}/.s.PGSQL.${socket.port}`,
      );
      const linked =
        `postgres://${user}:${password}@/${database}?host=${folder}&schema=${schema.schema}`;
      await cliOk(["enqueue", "--id", "over-socket", "true"], { db: linked, env });
      const withPort =
        `postgres://${user}:${password}@:${socket.port}/${database}?host=${folder}&schema=${schema.schema}`;
      await cliOk(["enqueue", "--id", "with-port", "true"], { db: withPort });
      await Deno.remove(`${folder}/.s.PGSQL.${socket.port}`);
      const gone = await cli(["status"], { db: linked, env });
      assertRefused(gone, 1, "socket link removed");
      assert.match(
        gone.stderr,
        new RegExp(`no server socket at ${folder}/\\.s\\.PGSQL\\.${socket.port}`),
      );
      assert.ok(!gone.stderr.includes(`:${password}@`), gone.stderr);
      // No host at all: libpq's default socket folder, where this server has its socket.
      const noHost = `postgresql://${user}@/${database}?schema=${schema.schema}`;
      await cliOk(["enqueue", "--id", "no-host", "true"], {
        db: noHost,
        env: { ...env, PGPASSWORD: decodeURIComponent(password) },
      });
      const listed = await cliOk(["list", "--json"], { db: schema.url });
      const ids = JSON.parse(listed).map((job: { id: string }) => job.id).sort();
      assert.deepEqual(ids, ["no-host", "over-socket", "with-port"]);
    } finally {
      await Deno.remove(folder, { recursive: true });
      await schema.drop();
    }
  },
});

/**
 * A TCP peer on a free port of `hostname` that accepts connections and,
 * when `answer` is given, answers a client's first message with it; else
 * says nothing. For failures the test server cannot be made to show.
 */
function fakePeer(answer?: Uint8Array, hostname = "127.0.0.1"): { port: number; close(): void } {
  const listener = Deno.listen({ hostname, port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      if (answer === undefined) continue;
      (async () => {
        const buffer = new Uint8Array(1024);
        while ((await conn.read(buffer).catch(() => null)) !== null) {
          await conn.write(answer).catch(() => {});
        }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close: () => {
      listener.close();
      for (const conn of conns) conn.close();
    },
  };
}

/** A PostgreSQL ErrorResponse message with these fields (S, C, M, ...). */
function errorResponse(fields: Record<string, string>): Uint8Array {
  const body = Object.entries(fields).map(([key, value]) => `${key}${value}\0`).join("") + "\0";
  const bytes = new TextEncoder().encode(body);
  const message = new Uint8Array(5 + bytes.length);
  message[0] = "E".charCodeAt(0);
  new DataView(message.buffer).setUint32(1, 4 + bytes.length);
  message.set(bytes, 5);
  return message;
}

Deno.test({
  name:
    "postgres connect: refused (IPv4, IPv6), unknown host, no answer, missing role, SSL required each name their cause; IPv6 reaches its server",
  ignore: PG_IGNORE,
  fn: async () => {
    const secret = "S3CRETQ";
    const expect = async (db: string, cause: RegExp, what: string) => {
      const run = await cli(["status"], { db });
      assertRefused(run, 1, what);
      assert.match(run.stderr, cause, what);
      assert.ok(!run.stderr.includes(secret), `${what}: ${run.stderr}`);
    };
    await expect(`postgres://u:${secret}@127.0.0.1:1/db`, /: connection refused$/m, "refused");
    await expect(`postgres://u:${secret}@[::1]:1/db`, /\[::1\]:1\/db: connection refused$/m, "v6");
    await expect(`postgres://u:${secret}@nosuchhost.invalid/db`, /: unknown host$/m, "no host");
    const silent = fakePeer();
    try {
      await expect(
        `postgres://u:${secret}@127.0.0.1:${silent.port}/db`,
        /: no answer in time$/m,
        "silent",
      );
    } finally {
      silent.close();
    }
    // An IPv6 address reaches its server (here one that answers only that the database is missing).
    let v6: { port: number; close(): void } | undefined;
    try {
      v6 = fakePeer(
        errorResponse({ S: "FATAL", C: "3D000", M: 'database "db" does not exist' }),
        "::1",
      );
    } catch {
      console.error("no IPv6 loopback here: an IPv6 server is not tried");
    }
    if (v6 !== undefined) {
      try {
        await expect(
          `postgres://u:${secret}@[::1]:${v6.port}/db`,
          /\[::1\]:\d+\/db: database "db" does not exist$/m,
          "IPv6 server",
        );
      } finally {
        v6.close();
      }
    }
    // PostgreSQL does not say whether a role exists to a client that has not logged in.
    const server = new URL(pgUrl());
    server.username = "no_such_role_qt";
    server.password = secret;
    await expect(
      server.toString(),
      /refused the login: password authentication failed for user "no_such_role_qt" \(check the user/,
      "missing role",
    );
    // What a server whose pg_hba.conf has only hostssl lines says to a client without SSL.
    const sslOnly = fakePeer(errorResponse({
      S: "FATAL",
      V: "FATAL",
      C: "28000",
      M: 'no pg_hba.conf entry for host "127.0.0.1", user "u", database "db", SSL off',
    }));
    try {
      await expect(
        `postgres://u:${secret}@127.0.0.1:${sslOnly.port}/db`,
        /SSL off \(the server may accept it over SSL: add \?sslmode=require\)$/m,
        "SSL required",
      );
    } finally {
      sslOnly.close();
    }
  },
});
