/**
 * `queuectl migrate`, run as a user runs it: on a new database, one up to
 * date, ones made by older queuectl versions (their data kept), one made by
 * a newer queuectl (refused, untouched), files that are not queuectl
 * databases, and two migrations at once (the lock lets one do the work).
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { MIGRATIONS } from "../lib/store/sqlite_migrations.ts";
import { APPLICATION_ID, SCHEMA_VERSION } from "../lib/store/sqlite_open.ts";
import {
  assertFileUnchanged,
  assertQueueUnchanged,
  assertRefused,
  cli,
  cliOk,
  listJobs,
  pathExists,
  queueExists,
  queueSnapshot,
  sqliteOnlyTest,
  withQueue,
} from "./helpers.ts";

function userVersion(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return db.prepare("PRAGMA user_version").get()!.user_version as number;
  } finally {
    db.close();
  }
}

/**
 * Makes a database as queuectl at schema `version` left it, with one
 * completed job `old-job` and one pending job `waiting`, through the frozen
 * migrations themselves.
 */
function makeOldDatabase(path: string, version: number): void {
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA journal_mode = WAL");
    for (const migration of MIGRATIONS.slice(0, version)) db.exec(migration);
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    db.exec(`PRAGMA user_version = ${version}`);
    const insert = db.prepare(
      `INSERT INTO jobs (id, command, state, attempts, max_retries, run_at, created_at,
         updated_at, finished_at, cwd) VALUES (?, 'true', ?, ?, 0, 0, 0, 0, ?, '/')`,
    );
    insert.run("old-job", "completed", 1, 5);
    insert.run("waiting", "pending", 0, null);
    // Version 2 keeps counts by state; version 1 has none.
    if (version === 2) {
      db.exec("UPDATE job_counts SET n = n + 1 WHERE state IN ('completed', 'pending')");
    }
  } finally {
    db.close();
  }
}

async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.toSorted();
}

Deno.test("migrate creates a new database at the current version", async () => {
  await withQueue(async ({ dir }) => {
    const db = `${dir}/new/queue.db`;
    const out = await cliOk(["migrate"], { db });
    assert.equal(out, `created a new database at version ${SCHEMA_VERSION}\n`);
    assert.equal(userVersion(db), SCHEMA_VERSION);
    assert.equal((await Deno.stat(db)).mode! & 0o777, 0o600, "private to its owner");
    assert.deepEqual(await listJobs(db), []);
  });
});

Deno.test("migrate on a database up to date says so and writes nothing", async () => {
  await withQueue(async ({ db, dir }) => {
    await cliOk(["enqueue", "--id", "kept", "true"], { db });
    const before = await queueSnapshot(db);
    const names = await entries(dir);
    const out = await cliOk(["migrate"], { db });
    assert.equal(out, `database at version ${SCHEMA_VERSION}, nothing to do\n`);
    await assertQueueUnchanged(db, before, "the database");
    assert.deepEqual(await entries(dir), names);
    assert.deepEqual((await listJobs(db)).map((job) => job.id), ["kept"]);
  });
});

for (const version of [1, 2]) {
  sqliteOnlyTest(`migrate upgrades a version-${version} database and keeps its jobs`, async () => {
    await withQueue(async ({ db }) => {
      makeOldDatabase(db, version);
      const out = await cliOk(["migrate"], { db });
      assert.equal(out, `migrated from version ${version} to ${SCHEMA_VERSION}\n`);
      assert.equal(userVersion(db), SCHEMA_VERSION);
      const jobs = await listJobs(db);
      assert.deepEqual(
        jobs.map((job) => [job.id, job.state, job.queue]).toSorted(),
        [["old-job", "completed", "default"], ["waiting", "pending", "default"]],
      );
      const status = JSON.parse(await cliOk(["status", "--json"], { db }));
      assert.equal(status.jobs.pending, 1, "counts carried over");
      assert.equal(status.jobs.completed, 1, "counts carried over");
      assert.equal(
        await cliOk(["migrate"], { db }),
        `database at version ${SCHEMA_VERSION}, nothing to do\n`,
      );
    });
  });
}

sqliteOnlyTest(
  "migrate refuses a database written by a newer queuectl and leaves it untouched",
  async () => {
    await withQueue(async ({ db, dir }) => {
      await cliOk(["enqueue", "--id", "kept", "true"], { db });
      const raw = new DatabaseSync(db);
      raw.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
      raw.close();
      const bytes = await Deno.readFile(db);
      const names = await entries(dir);
      const result = await cli(["migrate"], { db });
      assertRefused(result, 1, "migrate");
      assert.match(result.stderr, /newer queuectl \(schema \d+, this one knows \d+\)/);
      await assertFileUnchanged(db, bytes, "the database file");
      assert.deepEqual(await entries(dir), names, "no file was added beside it");
      assert.equal(userVersion(db), SCHEMA_VERSION + 1);
    });
  },
);

Deno.test("migrate refuses files that are not queuectl databases and leaves them untouched", async () => {
  await withQueue(async ({ dir }) => {
    const text = `${dir}/notes.txt`;
    await Deno.writeTextFile(text, "not a database\n".repeat(100));
    const other = `${dir}/other.db`;
    const raw = new DatabaseSync(other);
    raw.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)");
    raw.close();
    for (const [path, why] of [[text, /not a SQLite database/], [other, /not a queuectl one/]]) {
      const bytes = await Deno.readFile(path as string);
      const result = await cli(["migrate"], { db: path as string });
      assertRefused(result, 1, `migrate ${path}`);
      assert.match(result.stderr, why as RegExp);
      await assertFileUnchanged(path as string, bytes, path as string);
    }
    assert.equal(await pathExists(`${text}-wal`), false);
  });
});

Deno.test("migrate takes no arguments", async () => {
  await withQueue(async ({ db }) => {
    assertRefused(await cli(["migrate", "now"], { db }), 2, "migrate now");
    assert.equal(await queueExists(db), false, "nothing was created");
  });
});

sqliteOnlyTest("two migrations at once: one upgrades, the other finds nothing to do", async () => {
  await withQueue(async ({ db }) => {
    makeOldDatabase(db, 1);
    const results = await Promise.all([cli(["migrate"], { db }), cli(["migrate"], { db })]);
    for (const result of results) assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(results.map((r) => r.stdout).toSorted(), [
      `database at version ${SCHEMA_VERSION}, nothing to do\n`,
      `migrated from version 1 to ${SCHEMA_VERSION}\n`,
    ]);
    assert.equal((await listJobs(db)).length, 2);
  });
});
