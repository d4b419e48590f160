/**
 * The SQLite schema's migrations (lib/store/sqlite_migrations.ts): frozen as
 * they shipped, reading no constant of today's code; a database upgraded
 * from any older version ends with the same schema as a new one, keeping its
 * jobs, attempts and dependencies; and the schema agrees with the states of
 * lib/states.ts.
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { CLAIMABLE_STATES, JOB_STATES } from "../lib/states.ts";
import { UNIQUE_HOLDING_STATES } from "../lib/store/rules.ts";
import { RUN_DURATION_BOUNDS_MS } from "../lib/store/rows.ts";
import { MIGRATIONS } from "../lib/store/sqlite_migrations.ts";
import { APPLICATION_ID, SCHEMA_VERSION } from "../lib/store/sqlite_open.ts";
import { migrateSqliteDatabase, openSqliteStore } from "../lib/store/sqlite_store.ts";
import { lockInAnotherProcess, withQueue } from "./helpers.ts";
import { ended, newJob, T0, UPGRADED_TALLY } from "./store_builders.ts";

/** One object of a schema, its SQL with whitespace runs made one space. */
interface SchemaObject {
  type: string;
  name: string;
  table: string;
  sql: string;
}

/** The tables, indexes and triggers of a database file, and its user_version. */
function schemaOf(path: string): { version: number; objects: SchemaObject[] } {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const objects = db.prepare(
      `SELECT type, name, tbl_name, sql FROM sqlite_master
       WHERE type IN ('table', 'index', 'trigger') AND sql IS NOT NULL
       ORDER BY type, name`,
    ).all().map((row) => ({
      type: row.type as string,
      name: row.name as string,
      table: row.tbl_name as string,
      sql: (row.sql as string).replace(/\s+/g, " ").trim(),
    }));
    const version = db.prepare("PRAGMA user_version").get()!.user_version as number;
    return { version, objects };
  } finally {
    db.close();
  }
}

/**
 * Makes a queuectl database at schema `version` the way that version made
 * it: the frozen migrations up to it, applied as the version that shipped
 * them applied them.
 */
function makeDatabaseAt(path: string, version: number): void {
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA foreign_keys = OFF");
    db.exec("BEGIN IMMEDIATE");
    for (const migration of MIGRATIONS.slice(0, version)) db.exec(migration);
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    db.exec(`PRAGMA user_version = ${version}`);
    db.exec("COMMIT");
  } finally {
    db.close();
  }
}

Deno.test("a database upgraded from each older version has the schema of a new one", async () => {
  await withQueue(async ({ dir }) => {
    const fresh = `${dir}/fresh.db`;
    await (await openSqliteStore(fresh)).close();
    const expected = schemaOf(fresh);
    assert.equal(expected.version, SCHEMA_VERSION);
    assert.ok(expected.objects.length > 10, "the new schema has its tables, indexes and triggers");

    for (let version = 1; version < SCHEMA_VERSION; version++) {
      const old = `${dir}/v${version}.db`;
      makeDatabaseAt(old, version);
      assert.equal(schemaOf(old).version, version);
      assert.deepEqual(await migrateSqliteDatabase(old), { from: version, to: SCHEMA_VERSION });
      assert.deepEqual(schemaOf(old), expected, `upgraded from version ${version}`);
    }
  });
});

Deno.test("migrating a database already up to date reports nothing to do", async () => {
  await withQueue(async ({ db }) => {
    assert.deepEqual(await migrateSqliteDatabase(db), { from: 0, to: SCHEMA_VERSION });
    assert.deepEqual(await migrateSqliteDatabase(db), {
      from: SCHEMA_VERSION,
      to: SCHEMA_VERSION,
    });
  });
});

Deno.test("the migrations module reads no constant of today's code", async () => {
  const source = await Deno.readTextFile(
    new URL("../lib/store/sqlite_migrations.ts", import.meta.url),
  );
  assert.doesNotMatch(source, /^\s*import\b/m, "it imports nothing");
  assert.doesNotMatch(source, /\$\{/, "its SQL interpolates nothing");
});

Deno.test("the schema version opening expects is the number of migrations", () => {
  assert.equal(SCHEMA_VERSION, MIGRATIONS.length);
});

/** SHA-256 of each migration's SQL text as it shipped: a shipped migration never changes. */
const SHIPPED = [
  "2ea79f57675ae61b0045b61f6c6db3d948aaa2fe0e1ee5b8fa5a0e5adaae42cf",
  "485fed26f214dfd39998d96a18ee177b7aeb11ababa432839ae76bbc15e7b40a",
  "03633b7589456cefb48d55f231e8ce71379d0a308ffa38ce1bf9b9eded896d24",
  "d0ba478f497ac1f1a123adef08af9e7f77d579bb15e8ddbe60d8e0e5b1d27fa9",
  "efccedf3e2d2e4b81c7dc2871e34faa1193e39d42b47dda24a6d494b51d79b0f",
  "5d05b86b613070676057c3ed611ccf62d16dbc40f0750ae8ced3c132d505df84",
  "2a397dfe08dbe679dd05f2a25227026b55aa8a4fbf15bef702d2f0420999e76f",
  "974cd53f9220a0775a74d2c73be0ffbb1de657c3203a65568a911fefec000b8b",
  "b39af0dcf23ff3c1fdbb6759e093531d65a08f4b07856737ec96430d052a062a",
  "7227fe22b63fa9f6b5f2709e452f0240426c99b9cd036bb9ba1601d4b3e18880",
];

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("shipped migrations are unchanged, byte for byte", async () => {
  const hashes = await Promise.all(MIGRATIONS.map(sha256));
  assert.deepEqual(hashes.slice(0, SHIPPED.length), SHIPPED);
});

/** The quoted words of the first `<column> IN (…)` list in `sql`. */
function listAfter(sql: string, column: string): string[] {
  const match = new RegExp(`${column} IN \\(([^)]*)\\)`).exec(sql);
  assert.ok(match, `no '${column} IN (…)' in ${sql}`);
  return [...match[1].matchAll(/'([^']*)'/g)].map((m) => m[1]);
}

Deno.test("the schema allows exactly the states of lib/states.ts and indexes the claimable ones", async () => {
  await withQueue(async ({ db }) => {
    await (await openSqliteStore(db)).close();
    const objects = new Map(schemaOf(db).objects.map((o) => [o.name, o.sql]));
    // A state added to lib/states.ts needs a migration that widens these.
    assert.deepEqual(listAfter(objects.get("jobs")!, "state"), [...JOB_STATES]);
    assert.deepEqual(listAfter(objects.get("queue_counts")!, "state"), [...JOB_STATES]);
    // The claim planner's SQL (sqlite_rows.ts CLAIMABLE) must match these partial indexes.
    for (const index of ["jobs_ready", "jobs_waiting_by_time"]) {
      assert.deepEqual(listAfter(objects.get(index)!, "state"), [...CLAIMABLE_STATES], index);
    }
    // The unique-jobs rule (lib/store/rules.ts) and the index that enforces it agree.
    assert.deepEqual(
      listAfter(objects.get("jobs_unique_unfinished")!, "state"),
      [...UNIQUE_HOLDING_STATES],
    );
  });
});

Deno.test("a newer queuectl's migration that commits while this one waits for the lock is not undone", async () => {
  await withQueue(async ({ db }) => {
    makeDatabaseAt(db, SCHEMA_VERSION - 1);
    // Another process takes the write lock, moves the schema past this version, and commits
    // only once this one has read the old version and is waiting for the lock to migrate.
    const newer = SCHEMA_VERSION + 1;
    const holder = await lockInAnotherProcess(db, 1_000, `PRAGMA user_version = ${newer}`);
    await assert.rejects(openSqliteStore(db), /newer queuectl/);
    assert.equal((await holder.released).code, 0);
    assert.equal(schemaOf(db).version, newer, "the newer version stands");
  });
});

Deno.test("migration 4 marks dependencies on jobs that no longer exist as gone", async () => {
  await withQueue(async ({ db: path }) => {
    const raw = new DatabaseSync(path);
    raw.exec("PRAGMA foreign_keys = OFF");
    for (const migration of MIGRATIONS.slice(0, 3)) raw.exec(migration);
    raw.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    raw.exec("PRAGMA user_version = 3");
    const insert = raw.prepare(
      `INSERT INTO jobs (id, queue, command, state, attempts, max_retries, run_at, created_at,
         updated_at, cwd) VALUES (?, 'default', 'true', ?, 0, 0, 0, 0, 0, '/')`,
    );
    insert.run("first", "pending");
    insert.run("second", "blocked");
    raw.exec(
      `INSERT INTO job_dependencies (job_id, depends_on) VALUES
         ('second', 'first'), ('second', 'purged-long-ago')`,
    );
    raw.close();

    const store = await openSqliteStore(path);
    try {
      assert.deepEqual(await store.getDependencies("second"), [
        { id: "first", state: "pending" },
        { id: "purged-long-ago", state: null },
      ]);
      // Gone, so a new job under that id is not taken for it.
      await store.enqueue([newJob("purged-long-ago")], T0);
      assert.deepEqual((await store.getDependencies("second"))[1], {
        id: "purged-long-ago",
        state: null,
      });
    } finally {
      await store.close();
    }
  });
});

Deno.test("a schema-2 database is migrated to 3 keeping every job and every attempt", async () => {
  await withQueue(async ({ db: path }) => {
    const raw = new DatabaseSync(path);
    raw.exec(MIGRATIONS[0]);
    raw.exec(MIGRATIONS[1]);
    raw.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    raw.exec("PRAGMA user_version = 2");
    const insert = raw.prepare(
      `INSERT INTO jobs (id, command, state, attempts, max_retries, run_at, created_at,
         updated_at, finished_at, cwd) VALUES (?, 'true', ?, 1, 0, 0, 0, 0, ?, '/')`,
    );
    insert.run("done", "completed", 5);
    insert.run("gone", "dead", 6);
    insert.run("waiting", "pending", null);
    raw.exec(
      `UPDATE job_counts SET n = n + 1 WHERE state IN ('completed', 'dead', 'pending');
       INSERT INTO job_attempts (job_id, attempt, started_at, finished_at, exit_code, error,
         stdout, stderr) VALUES ('done', 1, 1, 5, 0, NULL, x'6f6b', x''),
         ('gone', 1, 2, 6, 1, 'boom', x'', x'6e6f')`,
    );
    raw.close();

    const store = await openSqliteStore(path);
    try {
      const done = await store.getJob("done");
      assert.equal(done?.state, "completed");
      assert.equal(done?.queue, "default");
      assert.deepEqual((await store.listAttempts("gone")).map((a) => a.error), ["boom"]);
      assert.equal(new TextDecoder().decode((await store.latestOutput("done"))!.stdout), "ok");
      assert.equal((await store.countByState()).pending, 1);
      const waiting = await store.claim("w1", T0);
      assert.equal(waiting?.id, "waiting");
      assert.equal(await store.finishAttempt(waiting, ended("completed", T0 + 10)), true);
      assert.deepEqual((await store.listQueues()).map((q) => [q.name, q.counts.completed]), [
        ["default", 2],
      ]);
    } finally {
      await store.close();
    }
    const check = new DatabaseSync(path);
    try {
      assert.equal(check.prepare("PRAGMA foreign_keys").get()!.foreign_keys, 1);
      assert.deepEqual(check.prepare("PRAGMA foreign_key_check").all(), []);
      assert.equal(check.prepare("PRAGMA integrity_check").get()!.integrity_check, "ok");
    } finally {
      check.close();
    }
  });
});

Deno.test("migration 6's duration buckets are RUN_DURATION_BOUNDS_MS, in the tally and its trigger", () => {
  const bounds = (sql: string) =>
    [...sql.matchAll(/<= (\d+) THEN (\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  const expected = RUN_DURATION_BOUNDS_MS.map((bound, i) => [bound, i]);
  const [seed, trigger] = MIGRATIONS[5].split("CREATE TRIGGER");
  assert.deepEqual(bounds(seed), expected);
  assert.deepEqual(bounds(trigger), expected);
  assert.match(trigger, new RegExp(`ELSE ${RUN_DURATION_BOUNDS_MS.length} END`));
});

Deno.test("a schema-5 database is migrated to 6 with the runs it stores already tallied", async () => {
  await withQueue(async ({ db: path }) => {
    makeDatabaseAt(path, 5);
    const raw = new DatabaseSync(path);
    raw.exec(
      `INSERT INTO jobs (id, queue, command, state, attempts, max_retries, run_at, created_at,
         updated_at, finished_at, cwd) VALUES
         ('done', 'a', 'true', 'completed', 2, 1, 0, 0, 0, 5000, '/'),
         ('gone', 'b', 'false', 'dead', 1, 0, 0, 0, 0, 6000, '/');
       INSERT INTO queue_counts (queue, state, n) VALUES ('a', 'completed', 1), ('b', 'dead', 1);
       INSERT INTO job_attempts (job_id, attempt, started_at, finished_at, exit_code, error,
         stdout, stderr) VALUES ('done', 1, 0, 40, 1, 'exited with code 1', x'', x''),
         ('done', 2, 1000, 5000, 0, NULL, x'', x''),
         ('gone', 1, NULL, 6000, NULL, 'could not start: no such file', x'', x'')`,
    );
    raw.close();
    const store = await openSqliteStore(path);
    try {
      const totals = await store.runTotals();
      assert.deepEqual(totals.map((t) => ({ ...t })), UPGRADED_TALLY);
    } finally {
      await store.close();
    }
  });
});
