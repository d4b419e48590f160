/**
 * What only the SQLite store has, on real database files in temp
 * directories: the new file (schema, WAL, modes), the query plans, settings
 * as the file stores them, busy handling, the file's identity, refusing
 * files that are not ours, and claims from many connections and threads.
 * Every behaviour of the Store contract is checked by the conformance suite
 * (tests/store_conformance.ts, run for SQLite by sqlite_conformance_test.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { DatabaseError } from "../lib/errors.ts";
import { JOB_STATES } from "../lib/states.ts";
import { SCHEMA_VERSION } from "../lib/store/sqlite_open.ts";
import { listJobsSql } from "../lib/store/sqlite_queries.ts";
import { SqliteConnection } from "../lib/store/sqlite_connection.ts";
import { compactIndex, indexNewJobs } from "../lib/store/sqlite_search.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import type { Store } from "../lib/store/store.ts";
import type { FromClaimWorker, ToClaimWorker } from "./fixtures/claim_worker.ts";
import { lockInAnotherProcess, type TempQueue, waitFor, withQueue } from "./helpers.ts";
import { newJob, T0, worker } from "./store_builders.ts";

/** Runs `fn` with a store on a fresh database file, closing and removing it afterwards. */
function withStore(fn: (store: Store, queue: TempQueue) => Promise<void>): Promise<void> {
  return withQueue(async (queue) => {
    const store = await openSqliteStore(queue.db);
    try {
      await fn(store, queue);
    } finally {
      await store.close();
    }
  });
}

/** Opens the raw SQLite file, runs `fn` on it and closes it. */
function withRawDb<T>(path: string, fn: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(path);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

function fileMode(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

// ---------------------------------------------------------------------------
// A new database

Deno.test("a new database gets the current schema version and WAL journal mode", async () => {
  await withStore(async (store, queue) => {
    await store.close();
    withRawDb(queue.db, (db) => {
      const version = db.prepare("PRAGMA user_version").get()!.user_version;
      assert.equal(version, SCHEMA_VERSION);
      assert.equal(db.prepare("PRAGMA journal_mode").get()!.journal_mode, "wal");
    });
  });
});

Deno.test("the jobs table's state CHECK lists exactly the states of lib/states.ts", async () => {
  await withStore(async (store, queue) => {
    await store.close();
    withRawDb(queue.db, (db) => {
      const sql = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'")
        .get()!.sql as string;
      const match = /CHECK\s*\(\s*state\s+IN\s*\(([^)]*)\)\s*\)/i.exec(sql);
      assert.ok(match, `no state CHECK in: ${sql}`);
      const listed = match[1].split(",").map((s) => s.trim().replace(/^'(.*)'$/, "$1"));
      assert.deepEqual(listed, [...JOB_STATES]);
      // And the constraint really holds.
      assert.throws(
        () =>
          db.prepare(
            `INSERT INTO jobs (id, command, state, max_retries, run_at, created_at, updated_at, cwd)
             VALUES ('x', 'true', 'bogus', 0, 0, 0, 0, '/')`,
          ).run(),
        /CHECK constraint failed/,
      );
    });
  });
});

Deno.test("a new database file is created 0600, and a missing folder 0700", async () => {
  await withQueue(async (queue) => {
    const path = `${queue.dir}/outer/inner/queue.db`;
    const store = await openSqliteStore(path);
    try {
      assert.equal(fileMode(path).toString(8), "600");
      assert.equal(fileMode(`${queue.dir}/outer/inner`).toString(8), "700");
      assert.equal(fileMode(`${queue.dir}/outer`).toString(8), "700");
    } finally {
      await store.close();
    }
  });
});

Deno.test("a 0-byte file is treated as a new database", async () => {
  await withQueue(async (queue) => {
    await Deno.writeFile(queue.db, new Uint8Array(0));
    const store = await openSqliteStore(queue.db);
    try {
      await store.enqueue([newJob("a")], T0);
      assert.equal((await store.getJob("a"))?.state, "pending");
    } finally {
      await store.close();
    }
    withRawDb(queue.db, (db) => {
      assert.equal(db.prepare("PRAGMA user_version").get()!.user_version, SCHEMA_VERSION);
    });
  });
});

// ---------------------------------------------------------------------------
// Queries

Deno.test("listJobs() searches an index for every filter, never scanning or sorting the table", async () => {
  await withQueue(async (queue) => {
    await (await openSqliteStore(queue.db)).close(); // creates the schema
    withRawDb(queue.db, (db) => {
      for (let states = 0; states <= JOB_STATES.length; states++) {
        for (
          const [byQueue, below] of [[false, false], [true, false], [false, true], [true, true]]
        ) {
          const sql = listJobsSql(states, byQueue, below);
          const plan = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all().map((row) => row.detail);
          const what = `${states} states${byQueue ? " and a queue" : ""}${
            below ? " below a seq" : ""
          }: ${plan.join("; ")}`;
          assert.doesNotMatch(plan.join("; "), /TEMP B-TREE/, what);
          if (states === 0 && !byQueue) {
            assert.deepEqual(
              plan,
              [below ? "SEARCH jobs USING INTEGER PRIMARY KEY (rowid<?)" : "SCAN jobs"],
              "all jobs: one pass in seq order",
            );
            continue;
          }
          const searches = plan.filter((step) =>
            /^SEARCH jobs USING INDEX jobs_by_/.test(String(step))
          );
          assert.equal(searches.length, Math.max(states, 1), what);
          assert.ok(plan.every((step) => !/^SCAN/.test(String(step))), what);
        }
      }
    });
  });
});

Deno.test("the text index is filled in batches after enqueue and compacts into one segment, still finding every job", async () => {
  await withQueue(async (queue) => {
    const store = await openSqliteStore(queue.db);
    const db = new DatabaseSync(queue.db, { timeout: 5_000 });
    const conn = new SqliteConnection(db, queue.db);
    try {
      for (let part = 0; part < 3; part++) {
        const jobs = Array.from(
          { length: 1_500 },
          (_, i) => newJob(`p${part}-${i}`, { command: `echo part ${part} item ${i}` }),
        );
        await store.enqueue(jobs, T0);
      }
      const segments = () =>
        (db.prepare("SELECT count(DISTINCT segid) AS n FROM job_text_idx").get() as { n: number })
          .n;
      assert.equal(await indexNewJobs(conn), 4_500, "every job indexed");
      assert.equal(await indexNewJobs(conn), 0, "nothing left to index");
      assert.ok(segments() >= 2, `one segment per batch at first (${segments()})`);
      await compactIndex(conn);
      assert.equal(segments(), 1);
      assert.deepEqual(
        (await store.listJobs({ text: "part 1 item 149" })).map((job) => job.id),
        [
          "p1-1499",
          "p1-1498",
          "p1-1497",
          "p1-1496",
          "p1-1495",
          "p1-1494",
          "p1-1493",
          "p1-1492",
          "p1-1491",
          "p1-1490",
          "p1-149",
        ],
      );
      assert.equal(await store.countMatching({ text: "item 7" }), 3 * 111);
    } finally {
      conn.close();
      await store.close();
    }
  });
});

// ---------------------------------------------------------------------------
// Config

Deno.test("setConfig() persists across connections", async () => {
  await withQueue(async (queue) => {
    const first = await openSqliteStore(queue.db);
    try {
      await first.setConfig("maxRetries", 9);
      await first.setConfig("backoffBase", 3);
      await first.setConfig("jobTimeoutMs", 45_000);
      await first.setConfig("jobTimeoutMs", null);
      await first.setConfig("backoffMaxMs", 60_000);
      await first.setConfig("retentionMs", 86_400_000);
      await first.setConfig("leaseTimeoutMs", 45_000);
    } finally {
      await first.close();
    }
    const second = await openSqliteStore(queue.db);
    try {
      assert.deepEqual({ ...await second.getConfig() }, {
        maxRetries: 9,
        backoffBase: 3,
        backoffMaxMs: 60_000,
        jobTimeoutMs: null,
        retentionMs: 86_400_000,
        leaseTimeoutMs: 45_000,
      });
    } finally {
      await second.close();
    }
    // The keys stored are the file format, the same as before setConfig took fields.
    const keys = withRawDb(
      queue.db,
      (db) => db.prepare("SELECT key FROM config ORDER BY key").all(),
    );
    assert.deepEqual(keys.map((row) => row.key), [
      "backoff-base",
      "backoff-max",
      "job-timeout",
      "lease-timeout",
      "max-retries",
      "retention",
    ]);
  });
});

// ---------------------------------------------------------------------------
// Busy handling and the file's identity

Deno.test("heartbeatWorker() stamps the beat once it holds the write lock, not before", () =>
  withQueue(async ({ db }) => {
    const store = await openSqliteStore(db);
    // Another process holds the write lock for 1 s (in this one, the wait would block its holder).
    const holder = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { DatabaseSync } from "node:sqlite";
         const db = new DatabaseSync(Deno.args[0]);
         db.exec("BEGIN IMMEDIATE");
         console.log("locked");
         setTimeout(() => db.exec("COMMIT"), 1000);`,
        db,
      ],
      stdout: "piped",
    }).spawn();
    try {
      const record = worker("wa");
      await store.registerWorker(record);
      const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
      assert.match((await reader.read()).value ?? "", /^locked/);
      reader.releaseLock();
      const calledAt = Date.now();
      const { beatAt } = await store.heartbeatWorker(record);
      assert.ok(beatAt >= calledAt + 500, `stamped ${beatAt - calledAt} ms after the call`);
      assert.equal((await store.listWorkers())[0].heartbeatAt, beatAt);
    } finally {
      await holder.status;
      await store.close();
    }
  }));

Deno.test("stillAtLocation() turns false once the file is deleted or replaced", () =>
  withQueue(async ({ db }) => {
    const store = await openSqliteStore(db);
    try {
      assert.equal(await store.stillAtLocation(), true);
      await Deno.rename(db, `${db}.moved`);
      assert.equal(await store.stillAtLocation(), false, "moved away");
      await Deno.rename(`${db}.moved`, db);
      assert.equal(await store.stillAtLocation(), true, "moved back");
      await Deno.copyFile(db, `${db}.copy`);
      await Deno.rename(`${db}.copy`, db);
      assert.equal(await store.stillAtLocation(), false, "replaced by a copy");
    } finally {
      await store.close();
    }
  }));

// ---------------------------------------------------------------------------
// Refusing files that are not ours

/** Asserts that opening `path` throws a DatabaseError matching `message` and leaves the file as it was. */
async function assertRefused(path: string, message: RegExp): Promise<void> {
  const before = await Deno.readFile(path);
  // A function, so that a synchronous throw is caught too; see the next test for that.
  await assert.rejects(
    async () => await openSqliteStore(path),
    (error) => error instanceof DatabaseError && message.test(error.message),
  );
  const after = await Deno.readFile(path);
  assert.equal(after.length, before.length);
  assert.ok(after.every((byte, i) => byte === before[i]), "the file's bytes changed");
}

Deno.test("openSqliteStore() reports a refused file through its promise, not by throwing", async () => {
  await withQueue(async (queue) => {
    await Deno.writeFile(queue.db, crypto.getRandomValues(new Uint8Array(4096)));
    let promise: Promise<Store> | undefined;
    let thrown: unknown;
    try {
      promise = openSqliteStore(queue.db);
    } catch (error) {
      thrown = error;
    }
    assert.equal(thrown, undefined, `openSqliteStore() threw synchronously: ${thrown}`);
    await assert.rejects(promise!, DatabaseError);
  });
});

Deno.test("opening a file of random bytes throws DatabaseError and leaves it unchanged", async () => {
  await withQueue(async (queue) => {
    await Deno.writeFile(queue.db, crypto.getRandomValues(new Uint8Array(8192)));
    await assertRefused(queue.db, /not a SQLite database/);
  });
});

Deno.test("opening another program's SQLite database throws DatabaseError and leaves it unchanged", async () => {
  await withQueue(async (queue) => {
    withRawDb(queue.db, (db) => {
      db.exec("CREATE TABLE foo (a INTEGER, b TEXT)");
      db.exec("INSERT INTO foo VALUES (1, 'one'), (2, 'two')");
    });
    await assertRefused(queue.db, /not a queuectl/);
    withRawDb(queue.db, (db) => {
      assert.equal(db.prepare("SELECT count(*) AS n FROM sqlite_master").get()!.n, 1);
      assert.equal(db.prepare("PRAGMA journal_mode").get()!.journal_mode, "delete");
    });
  });
});

Deno.test("opening a database from a newer queuectl throws DatabaseError and leaves it unchanged", async () => {
  await withQueue(async (queue) => {
    await (await openSqliteStore(queue.db)).close();
    withRawDb(queue.db, (db) => db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`));
    await assertRefused(queue.db, /newer/);
    withRawDb(queue.db, (db) => {
      assert.equal(db.prepare("PRAGMA user_version").get()!.user_version, SCHEMA_VERSION + 1);
    });
  });
});

// ---------------------------------------------------------------------------
// Concurrency

Deno.test("eight connections in one thread claiming at once never hold a job twice", async () => {
  await withQueue(async (queue) => {
    const stores = await Promise.all(Array.from({ length: 8 }, () => openSqliteStore(queue.db)));
    try {
      const ids = Array.from({ length: 500 }, (_, i) => `job-${i}`);
      await stores[0].enqueue(ids.map((id) => newJob(id)), T0);
      const results = await Promise.all(
        Array.from({ length: 600 }, (_, i) => stores[i % 8].claim(`w${i % 8}`, T0)),
      );
      const claimed = results.filter((job) => job !== undefined);
      assert.equal(claimed.length, 500);
      const claimedIds = claimed.map((job) => job.id);
      assert.equal(new Set(claimedIds).size, 500, "a job was claimed twice");
      assert.deepEqual([...claimedIds].sort(), [...ids].sort());
      assert.equal(new Set(claimed.map((job) => job.claimToken)).size, 500);
      assert.ok(claimed.every((job) => job.attempts === 1));
      const counts = await stores[3].countByState();
      assert.equal(counts.processing, 500);
      assert.equal(counts.pending, 0);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });
});

Deno.test("four Web Workers claiming at once never hold a job twice, and finish every job", async () => {
  await withQueue(async (queue) => {
    const ids = Array.from({ length: 1000 }, (_, i) => `job-${i}`);
    const setup = await openSqliteStore(queue.db);
    try {
      await setup.enqueue(ids.map((id) => newJob(id, { runAt: 0 })), T0);
    } finally {
      await setup.close();
    }

    const workers: Worker[] = [];
    const messages: FromClaimWorker[][] = [];
    const failures: string[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const w = new Worker(new URL("./fixtures/claim_worker.ts", import.meta.url), {
          type: "module",
        });
        const inbox: FromClaimWorker[] = [];
        w.onmessage = (event: MessageEvent<FromClaimWorker>) => {
          inbox.push(event.data);
          if (event.data.type === "error") failures.push(event.data.message);
        };
        w.onerror = (event) => {
          event.preventDefault();
          failures.push(event.message);
        };
        workers.push(w);
        messages.push(inbox);
        const open: ToClaimWorker = { type: "open", path: queue.db, name: `w${i}` };
        w.postMessage(open);
      }
      const has = (type: FromClaimWorker["type"]) => () => {
        if (failures.length > 0) throw new Error(`worker failed: ${failures.join("; ")}`);
        return messages.every((inbox) => inbox.some((m) => m.type === type));
      };
      // Each Web Worker loads the store's modules in its own isolate: slow on a loaded machine.
      await waitFor("all workers to open their stores", has("ready"), {
        intervalMs: 5,
        timeoutMs: 90_000,
      });
      const go: ToClaimWorker = { type: "go" };
      for (const w of workers) w.postMessage(go);
      await waitFor("all workers to finish", has("done"), { intervalMs: 10, timeoutMs: 90_000 });
    } finally {
      for (const w of workers) w.terminate();
    }

    const done = messages.map((inbox) => {
      const message = inbox.find((m) => m.type === "done");
      assert.ok(message?.type === "done");
      return message;
    });
    const all = done.flatMap((d) => d.claimed);
    assert.equal(new Set(all).size, all.length, "a job was claimed twice");
    assert.deepEqual([...all].sort(), [...ids].sort());
    assert.deepEqual(done.flatMap((d) => d.notFinished), []);
    assert.ok(
      done.filter((d) => d.claimed.length > 0).length >= 2,
      `only one worker got jobs: ${done.map((d) => d.claimed.length).join(", ")}`,
    );

    const check = await openSqliteStore(queue.db);
    try {
      assert.deepEqual(
        { ...await check.countByState() },
        { blocked: 0, pending: 0, processing: 0, completed: 1000, failed: 0, dead: 0 },
      );
      assert.ok((await check.listJobs({})).every((job) => job.attempts === 1));
    } finally {
      await check.close();
    }
  });
});

Deno.test("a claim given a clock dates its start, and a rate window, after waiting for another process's lock", () =>
  withQueue(async ({ db }) => {
    const store = await openSqliteStore(db);
    try {
      await store.setQueueLimits("api", { rate: { starts: 1, periodMs: 60_000 } });
      await store.enqueue([newJob("first", { queue: "api" })], Date.now());
      const holder = await lockInAnotherProcess(db, 600);
      const asked = Date.now();
      const job = await store.claim("w", () => Date.now());
      assert.equal((await holder.released).success, true);
      assert.ok(job, "the job is claimed once the lock is free");
      // Read before the wait, the start would be `asked`: a rate window would open that much early.
      assert.ok(job.startedAt! >= asked + 300, `started ${job.startedAt! - asked} ms after asking`);
      const [api] = (await store.listQueues(Date.now())).filter((q) => q.name === "api");
      assert.equal(api.recentStarts, 1);
    } finally {
      await store.close();
    }
  }));
