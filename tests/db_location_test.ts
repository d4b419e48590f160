/**
 * Database locations (lib/db_location.ts): which `--db` / `QUEUECTL_DB`
 * values are PostgreSQL URLs, which are SQLite paths, which are refused, and
 * the display form that never shows a password.
 *
 * @module
 */

import assert from "node:assert/strict";
import { describeLocation, parseDbLocation, resolveDbLocation } from "../lib/db_location.ts";
import { UsageError } from "../lib/errors.ts";

const CWD = "/home/me/work";

Deno.test("parseDbLocation() takes postgres:// and postgresql:// in any case as PostgreSQL URLs", () => {
  for (
    const url of [
      "postgres://alice:s3cret@db.example:5432/jobs",
      "postgresql://alice:s3cret@db.example/jobs",
      "POSTGRES://db.example/jobs",
      "PostgreSQL://alice@db.example/jobs",
      "postgres://",
    ]
  ) {
    assert.deepEqual(parseDbLocation(url, "--db", CWD), { kind: "postgres", url }, url);
  }
});

Deno.test("parseDbLocation() takes everything else as a SQLite path, from the current directory", () => {
  const cases: [string, string][] = [
    ["/var/lib/queue.db", "/var/lib/queue.db"],
    ["queue.db", `${CWD}/queue.db`],
    // `:` and `//` anywhere but after a scheme at the start are part of the path.
    ["a:b.db", `${CWD}/a:b.db`],
    ["data//queue.db", `${CWD}/data//queue.db`],
    ["/tmp/postgres://x", "/tmp/postgres://x"],
    ["dir/postgres://alice@host/db", `${CWD}/dir/postgres://alice@host/db`],
    // No prefixes: these are files of that name.
    ["file:queue.db", `${CWD}/file:queue.db`],
    ["sqlite:queue.db", `${CWD}/sqlite:queue.db`],
    // A one-letter "scheme" is a drive letter or a file name, never a URL.
    ["c://queue.db", `${CWD}/c://queue.db`],
    // ./ in front makes any name a path.
    ["./postgres://alice@host/db", `${CWD}/./postgres://alice@host/db`],
    ["./mysql://host/db", `${CWD}/./mysql://host/db`],
  ];
  for (const [text, path] of cases) {
    assert.deepEqual(parseDbLocation(text, "--db", CWD), { kind: "sqlite", path }, text);
  }
});

Deno.test("parseDbLocation() refuses other URLs and postgres: without //, naming the source", () => {
  const cases: [string, RegExp][] = [
    ["mysql://alice:s3cret@host/db", /^QUEUECTL_DB: mysql:\/\/ is not a database queuectl can use/],
    ["sqlite:///var/q.db", /^QUEUECTL_DB: sqlite:\/\/ is not a database/],
    ["file:///var/q.db", /^QUEUECTL_DB: file:\/\/ is not a database/],
    ["postgress://alice:s3cret@host/db", /^QUEUECTL_DB: postgress:\/\/ is not a database/],
    ["postgres:/alice:s3cret@host/db", /^QUEUECTL_DB: a PostgreSQL URL starts with postgres:\/\//],
    ["PostgreSQL:alice:s3cret@host", /^QUEUECTL_DB: a PostgreSQL URL starts with postgresql:\/\//],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseDbLocation(text, "QUEUECTL_DB", CWD), (error: Error) => {
      assert.ok(error instanceof UsageError, text);
      assert.match(error.message, message);
      assert.match(error.message, /start it with \.\/\)$/, "says how to name such a file");
      assert.ok(!error.message.includes("s3cret"), `${text}: ${error.message}`);
      return true;
    });
  }
});

Deno.test("describeLocation() shows a SQLite path as it is", () => {
  assert.equal(describeLocation({ kind: "sqlite", path: "/a:b//c.db" }), "/a:b//c.db");
});

Deno.test("describeLocation() shows a PostgreSQL URL without its password", () => {
  const cases: [string, string][] = [
    ["postgres://alice:s3cret@db.example:5432/jobs", "postgres://alice@db.example:5432/jobs"],
    ["postgres://alice@db.example/jobs", "postgres://alice@db.example/jobs"],
    ["postgres://db.example/jobs", "postgres://db.example/jobs"],
    ["postgres://:s3cret@db.example/jobs", "postgres://db.example/jobs"],
    // A password with unescaped @ / ? # in it: the user part ends at the last @.
    ["postgres://alice:s3@c/r?e#t@db.example/jobs", "postgres://alice@db.example/jobs"],
    // Password parameters go, with everything after them (a password may hold an &).
    [
      "postgresql://alice@db.example/jobs?sslmode=require&password=s3cret&x=1",
      "postgresql://alice@db.example/jobs?sslmode=require",
    ],
    ["postgres://db.example/jobs?PassWord=s3cret", "postgres://db.example/jobs"],
    ["postgres://db.example/jobs?sslpassword=s3cret", "postgres://db.example/jobs"],
    ["postgres://db.example/jobs?%70assword=s3cret", "postgres://db.example/jobs"],
    ["postgres://db.example/jobs?password=s3&cret", "postgres://db.example/jobs"],
    ["postgres://db.example/jobs?sslmode=require", "postgres://db.example/jobs?sslmode=require"],
  ];
  for (const [url, shown] of cases) {
    assert.equal(describeLocation({ kind: "postgres", url }), shown, url);
  }
});

Deno.test("resolveDbLocation(): --db, else QUEUECTL_DB, else a file under XDG_DATA_HOME", () => {
  const saved = ["QUEUECTL_DB", "XDG_DATA_HOME", "HOME"].map((name) => [name, Deno.env.get(name)]);
  try {
    Deno.env.set("QUEUECTL_DB", "postgres://alice:s3cret@db.example/jobs");
    Deno.env.set("XDG_DATA_HOME", "/xdg");
    assert.deepEqual(resolveDbLocation("/flag.db"), { kind: "sqlite", path: "/flag.db" });
    assert.deepEqual(resolveDbLocation(undefined), {
      kind: "postgres",
      url: "postgres://alice:s3cret@db.example/jobs",
    });
    Deno.env.set("QUEUECTL_DB", "");
    assert.deepEqual(resolveDbLocation(undefined), {
      kind: "sqlite",
      path: "/xdg/queuectl/queue.db",
    });
    // The default is a file whatever its folder is called: the URL rules are for what users name.
    Deno.env.set("XDG_DATA_HOME", "mysql://x");
    assert.deepEqual(resolveDbLocation(undefined), {
      kind: "sqlite",
      path: `${Deno.cwd()}/mysql://x/queuectl/queue.db`,
    });
    assert.throws(() => resolveDbLocation("mysql://x"), /^UsageError: --db: mysql:\/\//);
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) Deno.env.delete(name!);
      else Deno.env.set(name!, value);
    }
  }
});
