/**
 * Tests of the SQLite store, through `openSqliteStore` on real database
 * files in temp directories.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { DEFAULT_CONFIG } from "../lib/config.ts";
import { DatabaseError, DuplicateJobError, JobNotFoundError } from "../lib/errors.ts";
import { JOB_STATES } from "../lib/states.ts";
import { SCHEMA_VERSION } from "../lib/store/sqlite_migrations.ts";
import { listJobsSql } from "../lib/store/sqlite_queries.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import type { Store } from "../lib/store/store.ts";
import type { FromClaimWorker, ToClaimWorker } from "./fixtures/claim_worker.ts";
import { type TempQueue, waitFor, withQueue } from "./helpers.ts";
import { claimOne, newJob, outcome, printed, T0, worker } from "./store_builders.ts";

const encoder = new TextEncoder();

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

/** Enqueues one job and takes it to `dead`. */
async function makeDead(store: Store, id: string): Promise<void> {
  await store.enqueue([newJob(id, { maxRetries: 0 })], T0);
  const job = await store.claim("w1", T0);
  assert.equal(job?.id, id, `expected to claim ${id}`);
  assert.equal(await store.finishAttempt(job, outcome("dead")), true);
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
// enqueue and getJob

Deno.test("enqueue() and getJob() round-trip every field", async () => {
  await withStore(async (store) => {
    const command = `printf '%s\\n' "héllo wörld ✓ 日本語 🚀" 'it''s "quoted"' \`date\` $HOME`;
    const jobs = [
      newJob("job-1", {
        command,
        maxRetries: 7,
        priority: -3,
        runAt: T0 + 60_000,
        timeoutMs: 1_500,
        cwd: "/tmp/a folder/ünï",
      }),
      newJob("job 2 'ü'", { timeoutMs: null, priority: 9 }),
    ];
    await store.enqueue(jobs, T0 + 1);
    for (const job of jobs) {
      const { after: _after, ...stored } = job;
      assert.deepEqual({ ...await store.getJob(job.id) }, {
        ...stored,
        state: "pending",
        attempts: 0,
        createdAt: T0 + 1,
        updatedAt: T0 + 1,
        startedAt: null,
        finishedAt: null,
        exitCode: null,
        lastError: null,
        workerId: null,
      });
    }
    assert.equal(await store.getJob("no-such-job"), undefined);
  });
});

Deno.test("enqueue() stores none of a batch whose third job duplicates an existing id", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("taken", { command: "echo original" })], T0);
    await assert.rejects(
      store.enqueue([newJob("new-1"), newJob("new-2"), newJob("taken"), newJob("new-4")], T0 + 1),
      (error) => error instanceof DuplicateJobError && error.id === "taken",
    );
    assert.equal(await store.getJob("new-1"), undefined);
    assert.equal(await store.getJob("new-2"), undefined);
    assert.equal(await store.getJob("new-4"), undefined);
    assert.equal((await store.getJob("taken"))?.command, "echo original");
    assert.equal((await store.countByState()).pending, 1);
    // The connection is usable after the rolled-back batch.
    await store.enqueue([newJob("new-1")], T0 + 2);
    assert.equal((await store.countByState()).pending, 2);
  });
});

Deno.test("enqueue() stores none of a batch that repeats an id within itself", async () => {
  await withStore(async (store) => {
    await assert.rejects(
      store.enqueue([newJob("a"), newJob("b"), newJob("a")], T0),
      (error) => error instanceof DuplicateJobError && error.id === "a",
    );
    assert.equal((await store.countByState()).pending, 0);
  });
});

// ---------------------------------------------------------------------------
// claim

Deno.test("claim() takes higher priority first, then earlier run_at, then enqueue order", async () => {
  await withStore(async (store) => {
    await store.enqueue([
      newJob("low-early", { priority: 0, runAt: T0 - 5_000 }),
      newJob("high-late-1", { priority: 5, runAt: T0 - 1_000 }),
      newJob("high-late-2", { priority: 5, runAt: T0 - 1_000 }),
      newJob("high-early", { priority: 5, runAt: T0 - 2_000 }),
      newJob("negative", { priority: -1, runAt: T0 - 9_000 }),
      newJob("low-late", { priority: 0, runAt: T0 - 100 }),
    ], T0 - 10_000);
    const order: string[] = [];
    for (let job = await store.claim("w1", T0); job; job = await store.claim("w1", T0)) {
      order.push(job.id);
    }
    assert.deepEqual(order, [
      "high-early",
      "high-late-1",
      "high-late-2",
      "low-early",
      "low-late",
      "negative",
    ]);
  });
});

Deno.test("claim() skips jobs scheduled later and returns them once due", async () => {
  await withStore(async (store) => {
    await store.enqueue([
      newJob("later", { runAt: T0 + 10_000, priority: 10 }),
      newJob("now", { runAt: T0 }),
    ], T0);
    assert.equal((await claimOne(store, T0)).id, "now");
    assert.equal(await store.claim("w1", T0), undefined);
    assert.equal(await store.claim("w1", T0 + 9_999), undefined);
    assert.equal((await claimOne(store, T0 + 10_000)).id, "later");
  });
});

Deno.test("claim() finds due jobs below priority levels that are all scheduled later", async () => {
  await withStore(async (store) => {
    await store.enqueue([
      ...Array.from(
        { length: 50 },
        (_, i) => newJob(`top-${i}`, { priority: 9, runAt: T0 + 5_000 }),
      ),
      newJob("mid", { priority: 5, runAt: T0 + 5_000 }),
      newJob("due-low", { priority: 0, runAt: T0 }),
      newJob("due-high", { priority: 1, runAt: T0 - 1 }),
      newJob("elsewhere", { queue: "other", priority: 7, runAt: T0 + 5_000 }),
    ], T0);
    assert.equal((await claimOne(store, T0)).id, "due-high");
    assert.equal((await claimOne(store, T0)).id, "due-low");
    assert.equal(await store.claim("w1", T0), undefined);
    // Once due, the higher levels come first again, across queues.
    assert.equal((await claimOne(store, T0 + 5_000)).id, "top-0");
    const rest: string[] = [];
    for (
      let job = await store.claim("w1", T0 + 5_000);
      job;
      job = await store.claim("w1", T0 + 5_000)
    ) {
      rest.push(job.id);
    }
    assert.equal(rest.length, 51);
    assert.deepEqual(rest.slice(-2), ["elsewhere", "mid"]);
  });
});

Deno.test("claim() counts the attempt, marks the job processing and hands out a claim token", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("a"), newJob("b")], T0 - 1_000);
    const a = await claimOne(store, T0, "worker-x");
    assert.equal(a.id, "a");
    assert.equal(a.state, "processing");
    assert.equal(a.attempts, 1);
    assert.equal(a.startedAt, T0);
    assert.equal(typeof a.claimToken, "string");
    assert.ok(a.claimToken.length > 0);
    const stored = await store.getJob("a");
    assert.equal(stored?.state, "processing");
    assert.equal(stored?.attempts, 1);
    const b = await claimOne(store, T0, "worker-y");
    assert.notEqual(b.claimToken, a.claimToken);
  });
});

Deno.test("a claimed job is not claimed again", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("only")], T0);
    assert.equal((await claimOne(store, T0, "w1")).id, "only");
    assert.equal(await store.claim("w2", T0), undefined);
    assert.equal(await store.claim("w1", T0 + 3_600_000), undefined);
    assert.equal((await store.getJob("only"))?.attempts, 1);
  });
});

// ---------------------------------------------------------------------------
// finishAttempt and latestOutput

Deno.test("finishAttempt() completes a job and records its output", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("a")], T0);
    const job = await claimOne(store);
    const stdout = new Uint8Array([0, 1, 2, 0xff, 0xfe, ...encoder.encode("ok ✓\n")]);
    const stderr = encoder.encode("warning\n");
    const done = await store.finishAttempt(
      job,
      outcome("completed", {
        finishedAt: T0 + 700,
        output: { stdout, stderr, stdoutDropped: 12, stderrDropped: 0 },
      }),
    );
    assert.equal(done, true);
    const stored = await store.getJob("a");
    assert.equal(stored?.state, "completed");
    assert.equal(stored?.finishedAt, T0 + 700);
    assert.equal(stored?.exitCode, 0);
    assert.equal(stored?.lastError, null);
    assert.equal(stored?.attempts, 1);
    assert.equal(stored?.runAt, T0);
    const output = await store.latestOutput("a");
    assert.ok(output);
    assert.equal(output.attempt, 1);
    assert.deepEqual([...output.stdout], [...stdout]);
    assert.deepEqual([...output.stderr], [...stderr]);
    assert.equal(output.stdoutDropped, 12);
    assert.equal(output.stderrDropped, 0);
  });
});

Deno.test("finishAttempt() with failed waits until retryAt before the job can be claimed again", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("a")], T0);
    const first = await claimOne(store);
    const retryAt = T0 + 4_000;
    assert.equal(
      await store.finishAttempt(first, outcome("failed", { retryAt, exitCode: 3, error: "boom" })),
      true,
    );
    const stored = await store.getJob("a");
    assert.equal(stored?.state, "failed");
    assert.equal(stored?.runAt, retryAt);
    assert.equal(stored?.exitCode, 3);
    assert.equal(stored?.lastError, "boom");
    assert.equal(await store.claim("w1", retryAt - 1), undefined);
    const second = await claimOne(store, retryAt);
    assert.equal(second.id, "a");
    assert.equal(second.attempts, 2);
  });
});

Deno.test("finishAttempt() with dead moves the job to the DLQ", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("a")], T0);
    const job = await claimOne(store);
    assert.equal(
      await store.finishAttempt(job, outcome("dead", { exitCode: 127, error: "not found" })),
      true,
    );
    const stored = await store.getJob("a");
    assert.equal(stored?.state, "dead");
    assert.equal(stored?.exitCode, 127);
    assert.equal(stored?.lastError, "not found");
    assert.equal(await store.claim("w1", T0 + 3_600_000), undefined);
    assert.equal((await store.countByState()).dead, 1);
  });
});

Deno.test("finishAttempt() with a wrong claim token returns false and changes nothing", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("a")], T0);
    const job = await claimOne(store);
    const before = await store.getJob("a");
    const forged = { ...job, claimToken: crypto.randomUUID() };
    assert.equal(
      await store.finishAttempt(
        forged,
        outcome("completed", {
          output: {
            stdout: encoder.encode("x"),
            stderr: new Uint8Array(0),
            stdoutDropped: 0,
            stderrDropped: 0,
          },
        }),
      ),
      false,
    );
    assert.deepEqual(await store.getJob("a"), before);
    assert.equal(await store.latestOutput("a"), undefined);
    // The real owner can still finish it.
    assert.equal(await store.finishAttempt(job, outcome("completed")), true);
  });
});

Deno.test("finishAttempt() on a job no longer processing returns false and changes nothing", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("a")], T0);
    const job = await claimOne(store);
    const firstOutput = {
      stdout: encoder.encode("first"),
      stderr: new Uint8Array(0),
      stdoutDropped: 0,
      stderrDropped: 0,
    };
    assert.equal(
      await store.finishAttempt(job, outcome("completed", { output: firstOutput })),
      true,
    );
    const before = await store.getJob("a");
    assert.equal(
      await store.finishAttempt(
        job,
        outcome("dead", {
          finishedAt: T0 + 9_000,
          output: { ...firstOutput, stdout: encoder.encode("second") },
        }),
      ),
      false,
    );
    assert.deepEqual(await store.getJob("a"), before);
    assert.equal(new TextDecoder().decode((await store.latestOutput("a"))?.stdout), "first");
  });
});

Deno.test("latestOutput() returns the output of the latest attempt", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("a"), newJob("b")], T0);
    assert.equal(await store.latestOutput("a"), undefined);
    const first = await claimOne(store);
    assert.equal(first.id, "a");
    await store.finishAttempt(
      first,
      outcome("failed", {
        retryAt: T0 + 10,
        output: {
          stdout: encoder.encode("run one"),
          stderr: encoder.encode("err one"),
          stdoutDropped: 5,
          stderrDropped: 6,
        },
      }),
    );
    const other = await claimOne(store, T0 + 5);
    assert.equal(other.id, "b");
    await store.finishAttempt(
      other,
      outcome("completed", {
        output: {
          stdout: encoder.encode("job b"),
          stderr: new Uint8Array(0),
          stdoutDropped: 0,
          stderrDropped: 0,
        },
      }),
    );
    const second = await claimOne(store, T0 + 10);
    assert.equal(second.id, "a");
    await store.finishAttempt(
      second,
      outcome("completed", {
        output: {
          stdout: encoder.encode("run two"),
          stderr: new Uint8Array(0),
          stdoutDropped: 0,
          stderrDropped: 1,
        },
      }),
    );
    const output = await store.latestOutput("a");
    assert.ok(output);
    const decoder = new TextDecoder();
    assert.equal(output.attempt, 2);
    assert.equal(decoder.decode(output.stdout), "run two");
    assert.equal(decoder.decode(output.stderr), "");
    assert.equal(output.stdoutDropped, 0);
    assert.equal(output.stderrDropped, 1);
    assert.equal(decoder.decode((await store.latestOutput("b"))?.stdout), "job b");
  });
});

Deno.test("attemptOutput() returns one run's output, the newest of that number after a retry", async () => {
  await withStore(async (store) => {
    const decoder = new TextDecoder();
    const text = async (attempt: number) => {
      const output = await store.attemptOutput("a", attempt);
      return output && `${output.attempt}:${decoder.decode(output.stdout)}`;
    };
    await store.enqueue([newJob("a", { maxRetries: 1 })], T0);
    assert.equal(await text(1), undefined, "no run yet");
    await store.finishAttempt(await claimOne(store), printed("failed", "first round, run 1"));
    await store.finishAttempt(await claimOne(store), printed("completed", "first round, run 2"));
    assert.equal(await text(1), "1:first round, run 1");
    assert.equal(await text(2), "2:first round, run 2");
    assert.deepEqual(await store.rerunJobs(["a"], T0 + 600), ["a"]);
    await store.finishAttempt(
      await claimOne(store, T0 + 600),
      printed("completed", "second round"),
    );
    assert.equal(await text(1), "1:second round", "numbers start again at 1 after a retry");
    assert.equal(await text(2), "2:first round, run 2");
    assert.equal(await text(3), undefined);
    assert.equal(await store.attemptOutput("nope", 1), undefined);
  });
});

Deno.test("newestOutputs() reads every job's newest output at once, a running job's so far", async () => {
  await withStore(async (store) => {
    // Priorities set the order claim() takes them in; "never" is not due.
    await store.enqueue([
      newJob("done", { priority: 5 }),
      newJob("retrying", { priority: 4 }),
      newJob("running", { priority: 3 }),
      newJob("silent", { priority: 2 }),
      newJob("never", { runAt: T0 + 60_000 }),
    ], T0);
    await store.finishAttempt(await claimOne(store), printed("completed", "all done"));
    await store.finishAttempt(await claimOne(store), {
      ...printed("failed", "first try"),
      retryAt: T0 + 60_000,
    });
    const running = await claimOne(store);
    assert.ok(
      await store.recordLiveOutput(running, {
        stdout: encoder.encode("tail of it"),
        stderr: encoder.encode("warn"),
        stdoutTotal: 100,
        stderrTotal: 4,
        updatedAt: T0 + 50,
      }),
    );
    assert.equal((await claimOne(store)).id, "silent");

    const ids = ["done", "retrying", "running", "silent", "never", "missing"];
    const decoder = new TextDecoder();
    const shown = Object.fromEntries(
      [...await store.newestOutputs(ids)].map(([id, o]) => [id, {
        attempt: o.attempt,
        finished: o.finished,
        stdout: decoder.decode(o.stdout),
        stderr: decoder.decode(o.stderr),
        dropped: [o.stdoutDropped, o.stderrDropped],
      }]),
    );
    assert.deepEqual(shown, {
      done: { attempt: 1, finished: true, stdout: "all done", stderr: "", dropped: [0, 0] },
      retrying: { attempt: 1, finished: true, stdout: "first try", stderr: "", dropped: [0, 0] },
      running: {
        attempt: 1,
        finished: false,
        stdout: "tail of it",
        stderr: "warn",
        dropped: [90, 0],
      },
      silent: { attempt: 1, finished: false, stdout: "", stderr: "", dropped: [0, 0] },
    });
    assert.deepEqual(await store.newestOutputs([]), new Map());
  });
});

Deno.test("countFinishedSince() counts exactly the jobs that finished after the mark", async () => {
  await withStore(async (store) => {
    // Before the mark: one job completed, one dead, one running, four waiting.
    await store.enqueue([
      newJob("old-done", { priority: 9 }),
      newJob("old-dead", { priority: 8, maxRetries: 0 }),
    ], T0);
    await store.finishAttempt(await claimOne(store), printed("completed", "", T0 + 100));
    await store.finishAttempt(await claimOne(store), printed("dead", "", T0 + 100));
    await store.enqueue([
      newJob("running", { priority: 7 }),
      newJob("ok", { priority: 6 }),
      newJob("dies", { priority: 5, maxRetries: 0 }),
      newJob("stays", { runAt: T0 + 3_600_000 }),
      newJob("child", { after: ["dies"] }),
    ], T0);
    const running = await claimOne(store, T0 + 200);
    assert.equal(running.id, "running");

    const mark = await store.markHistory(T0 + 1_000);
    assert.equal(mark.unfinished, 5, "running, ok, dies, stays and child");
    assert.deepEqual(await store.countFinishedSince(mark), { completed: 0, dead: 0 });

    await store.finishAttempt(running, printed("completed", "", T0 + 1_100));
    await store.finishAttempt(
      await claimOne(store, T0 + 1_200),
      printed("completed", "", T0 + 1_300),
    );
    const dies = await claimOne(store, T0 + 1_400);
    assert.equal(dies.id, "dies");
    // Its dependent "child" follows it into the DLQ without a run of its own.
    await store.finishAttempt(dies, printed("dead", "", T0 + 1_500));
    assert.equal((await store.getJob("child"))?.state, "dead");
    // A job finished before the mark, run again, counts once it has finished again.
    await store.rerunJobs(["old-done"], T0 + 1_600);
    await store.finishAttempt(
      await claimOne(store, T0 + 1_600),
      printed("completed", "", T0 + 1_700),
    );
    // A job added after the mark that finished and was then retried is unfinished again.
    await store.enqueue([newJob("new")], T0 + 1_800);
    await store.finishAttempt(
      await claimOne(store, T0 + 1_800),
      printed("completed", "", T0 + 1_900),
    );
    await store.rerunJobs(["new"], T0 + 2_000);
    // Deleting jobs finished before the mark (as retention does) takes nothing from the count.
    assert.equal(await store.purgeJobs(["dead"], T0 + 1_000), 1, "old-dead is purged");

    assert.deepEqual(await store.countFinishedSince(mark), { completed: 3, dead: 2 });
    assert.equal((await store.lastRun())?.jobId, "new", "the run that ended last");
  });
});

// ---------------------------------------------------------------------------
// releaseJob and reviveDead

Deno.test("releaseJob() returns the job to pending without counting the attempt", async () => {
  await withStore(async (store) => {
    await store.enqueue([newJob("a")], T0);
    const job = await claimOne(store);
    assert.equal(job.attempts, 1);
    assert.equal(await store.releaseJob(job, T0 + 50), true);
    const stored = await store.getJob("a");
    assert.equal(stored?.state, "pending");
    assert.equal(stored?.attempts, 0);
    // The old claim no longer counts: releasing or finishing it again does nothing.
    assert.equal(await store.releaseJob(job, T0 + 60), false);
    assert.equal(await store.finishAttempt(job, outcome("completed")), false);
    assert.equal((await store.getJob("a"))?.state, "pending");
    const again = await claimOne(store, T0 + 100);
    assert.equal(again.id, "a");
    assert.equal(again.attempts, 1);
  });
});

Deno.test("reviveDead() moves the listed dead jobs to pending with attempts reset to 0", async () => {
  await withStore(async (store) => {
    await makeDead(store, "d1");
    await makeDead(store, "d2");
    await makeDead(store, "d3");
    assert.equal((await store.getJob("d1"))?.attempts, 1);
    const revived = await store.reviveDead(["d1", "d3"], T0 + 1_000);
    assert.deepEqual([...revived].sort(), ["d1", "d3"]);
    for (const id of ["d1", "d3"]) {
      const job = await store.getJob(id);
      assert.equal(job?.state, "pending");
      assert.equal(job?.attempts, 0);
    }
    assert.equal((await store.getJob("d2"))?.state, "dead");
    const again = await claimOne(store, T0 + 1_000);
    assert.equal(again.attempts, 1);
  });
});

Deno.test("reviveDead() with a job that is not dead throws and revives none of the list", async () => {
  await withStore(async (store) => {
    await makeDead(store, "d1");
    await makeDead(store, "d2");
    await store.enqueue([newJob("alive")], T0);
    await assert.rejects(store.reviveDead(["d1", "alive", "d2"], T0 + 1_000), /alive/);
    assert.equal((await store.getJob("d1"))?.state, "dead");
    assert.equal((await store.getJob("d2"))?.state, "dead");
    assert.equal((await store.getJob("d1"))?.attempts, 1);
    assert.equal((await store.getJob("alive"))?.state, "pending");
  });
});

Deno.test("reviveDead() with an unknown id throws JobNotFoundError and changes nothing", async () => {
  await withStore(async (store) => {
    await makeDead(store, "d1");
    await assert.rejects(
      store.reviveDead(["d1", "nope"], T0 + 1_000),
      (error) => error instanceof JobNotFoundError && error.id === "nope",
    );
    assert.equal((await store.getJob("d1"))?.state, "dead");
  });
});

Deno.test("reviveDead() revives a dead job once when its id is listed twice", async () => {
  await withStore(async (store) => {
    await makeDead(store, "d1");
    const revived = await store.reviveDead(["d1", "d1"], T0 + 1_000);
    assert.ok(revived.includes("d1"));
    assert.equal((await store.getJob("d1"))?.state, "pending");
  });
});

Deno.test("reviveDead('all') revives every dead job and nothing else", async () => {
  await withStore(async (store) => {
    await makeDead(store, "d1");
    await makeDead(store, "d2");
    await store.enqueue([newJob("p")], T0 + 10_000);
    assert.deepEqual([...await store.reviveDead("all", T0 + 1_000)].sort(), ["d1", "d2"]);
    const counts = await store.countByState();
    assert.equal(counts.dead, 0);
    assert.equal(counts.pending, 3);
    assert.equal((await store.getJob("d2"))?.attempts, 0);
    assert.deepEqual(await store.reviveDead("all", T0 + 2_000), []);
  });
});

// ---------------------------------------------------------------------------
// Counting and change detection

/** Puts one job in each state: pending, processing, completed, failed, dead (plus one more pending). */
async function oneOfEach(store: Store): Promise<void> {
  await store.enqueue([newJob("c"), newJob("f"), newJob("x"), newJob("p")], T0);
  await store.finishAttempt(await claimOne(store), outcome("completed"));
  await store.finishAttempt(await claimOne(store), outcome("failed", { retryAt: T0 + 7_000 }));
  await store.finishAttempt(await claimOne(store), outcome("dead"));
  assert.equal((await claimOne(store)).id, "p");
  await store.enqueue([newJob("q", { runAt: T0 + 3_000 }), newJob("r", { runAt: T0 + 9_000 })], T0);
}

Deno.test("countByState() lists all five states even when they are zero", async () => {
  await withStore(async (store) => {
    assert.deepEqual(
      { ...await store.countByState() },
      { blocked: 0, pending: 0, processing: 0, completed: 0, failed: 0, dead: 0 },
    );
    await oneOfEach(store);
    assert.deepEqual(
      { ...await store.countByState() },
      { blocked: 0, pending: 2, processing: 1, completed: 1, failed: 1, dead: 1 },
    );
  });
});

Deno.test("countUnfinished() counts pending, failed and processing jobs", async () => {
  await withStore(async (store) => {
    assert.equal(await store.countUnfinished(), 0);
    await oneOfEach(store);
    assert.equal(await store.countUnfinished(), 4);
  });
});

Deno.test("nextRunAt() gives the earliest run_at of the jobs waiting to run", async () => {
  await withStore(async (store) => {
    assert.equal(await store.nextRunAt(), undefined);
    await oneOfEach(store);
    // Waiting: failed "f" (T0+7000), pending "q" (T0+3000), pending "r" (T0+9000).
    assert.equal(await store.nextRunAt(), T0 + 3_000);
    assert.equal((await claimOne(store, T0 + 3_000)).id, "q");
    assert.equal(await store.nextRunAt(), T0 + 7_000);
  });
});

Deno.test("notifier.changed() is true after another connection commits and false when nothing changed", async () => {
  await withStore(async (store, queue) => {
    assert.equal(await store.notifier.changed(), true, "the first call takes a baseline");
    assert.equal(await store.notifier.changed(), false);
    const other = await openSqliteStore(queue.db);
    try {
      await other.enqueue([newJob("a")], T0);
      assert.equal(await store.notifier.changed(), true);
      assert.equal(await store.notifier.changed(), false);
      await other.getJob("a"); // a read is not a change
      assert.equal(await store.notifier.changed(), false);
      await other.claim("w1", T0);
      assert.equal(await store.notifier.changed(), true);
    } finally {
      await other.close();
    }
  });
});

Deno.test("listJobs() takes several states: their jobs newest first, limit and queue applied", async () => {
  await withStore(async (store) => {
    await oneOfEach(store);
    await makeDead(store, "d2");
    await store.enqueue([newJob("m", { queue: "mail" })], T0);
    const ids = async (filter: Parameters<Store["listJobs"]>[0]) =>
      (await store.listJobs(filter)).map((job) => job.id);
    // Enqueued in the order c, f, x, p, q, r, d2, m (newest last).
    assert.deepEqual(await ids({ states: ["dead", "failed"] }), ["d2", "x", "f"]);
    assert.deepEqual(await ids({ states: ["failed", "dead", "failed"] }), ["d2", "x", "f"]);
    assert.deepEqual(await ids({ states: ["dead", "failed"], limit: 2 }), ["d2", "x"]);
    assert.deepEqual(await ids({ states: ["pending", "completed"] }), ["m", "r", "q", "c"]);
    assert.deepEqual(await ids({ states: ["pending", "completed"], queue: "mail" }), ["m"]);
    assert.deepEqual(await ids({ states: ["pending"], queue: "default", limit: 1 }), ["r"]);
    assert.deepEqual(await ids({ states: [...JOB_STATES] }), await ids({}));
    assert.deepEqual(await ids({ states: [] }), await ids({}));
    assert.deepEqual(await ids({ states: ["blocked", "processing"] }), ["p"]);
  });
});

Deno.test("listJobs() searches an index for every filter, never scanning or sorting the table", async () => {
  await withQueue(async (queue) => {
    await (await openSqliteStore(queue.db)).close(); // creates the schema
    withRawDb(queue.db, (db) => {
      for (let states = 0; states <= JOB_STATES.length; states++) {
        for (const byQueue of [false, true]) {
          const sql = listJobsSql(states, byQueue);
          const plan = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all().map((row) => row.detail);
          const what = `${states} states${byQueue ? " and a queue" : ""}: ${plan.join("; ")}`;
          assert.doesNotMatch(plan.join("; "), /TEMP B-TREE/, what);
          if (states === 0 && !byQueue) {
            assert.deepEqual(plan, ["SCAN jobs"], "all jobs: one pass in seq order");
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

// ---------------------------------------------------------------------------
// Config

Deno.test("getConfig() returns the defaults on a new database", async () => {
  await withStore(async (store) => {
    assert.deepEqual({ ...await store.getConfig() }, { ...DEFAULT_CONFIG });
  });
});

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
// The workers registry

Deno.test("registerWorker() and listWorkers() round-trip worker records", async () => {
  await withStore(async (store) => {
    assert.deepEqual(await store.listWorkers(), []);
    const a = worker("wa", { startedAt: T0 + 5, heartbeatAt: T0 + 6, threads: 4 });
    const b = worker("wb", { pid: 99, host: "hôst-b", stopRequested: true });
    await store.registerWorker(a);
    await store.registerWorker(b);
    assert.deepEqual((await store.listWorkers()).map((w) => ({ ...w })), [b, a]);
  });
});

Deno.test("heartbeatWorker() records the beat and reports a stop once requested", async () => {
  await withStore(async (store) => {
    const record = worker("wa");
    await store.registerWorker(record);
    assert.deepEqual(await store.heartbeatWorker(record, () => T0 + 1_000), {
      beatAt: T0 + 1_000,
      stopRequested: false,
    });
    assert.equal((await store.listWorkers())[0].heartbeatAt, T0 + 1_000);
    await store.requestWorkerStop(["wa"]);
    assert.equal((await store.listWorkers())[0].stopRequested, true);
    assert.deepEqual(await store.heartbeatWorker(record, () => T0 + 2_000), {
      beatAt: T0 + 2_000,
      stopRequested: true,
    });
    assert.equal((await store.listWorkers())[0].heartbeatAt, T0 + 2_000);
    // A beat stamped earlier than the stored one (another clock, say) never moves it back.
    assert.equal((await store.heartbeatWorker(record, () => T0 + 1_500)).beatAt, T0 + 2_000);
  });
});

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

Deno.test("heartbeatWorker() re-registers a worker whose row was removed", async () => {
  await withStore(async (store) => {
    const record = worker("wa");
    await store.registerWorker(record);
    await store.removeWorkers(["wa"]);
    assert.deepEqual(await store.listWorkers(), []);
    assert.deepEqual(await store.heartbeatWorker(record, () => T0 + 5_000), {
      beatAt: T0 + 5_000,
      stopRequested: false,
    });
    assert.deepEqual((await store.listWorkers()).map((w) => ({ ...w })), [
      { ...record, heartbeatAt: T0 + 5_000 },
    ]);
  });
});

Deno.test("pruneWorkers() removes a worker only while its heartbeat is the one judged", async () => {
  await withStore(async (store) => {
    const a = worker("wa", { heartbeatAt: T0 });
    const b = worker("wb", { heartbeatAt: T0 });
    await store.registerWorker(a);
    await store.registerWorker(b);
    // wb beat after the judgement read its row: it was not dead.
    await store.heartbeatWorker(b, () => T0 + 1_000);
    assert.deepEqual(await store.pruneWorkers([a, b]), ["wa"]);
    assert.deepEqual((await store.listWorkers()).map((w) => w.id), ["wb"]);
  });
});

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

Deno.test("removeWorkers() removes only the given workers", async () => {
  await withStore(async (store) => {
    await store.registerWorker(worker("wa", { startedAt: T0 }));
    await store.registerWorker(worker("wb", { startedAt: T0 + 1 }));
    await store.registerWorker(worker("wc", { startedAt: T0 + 2 }));
    await store.removeWorkers(["wa", "wc", "unknown"]);
    assert.deepEqual((await store.listWorkers()).map((w) => w.id), ["wb"]);
  });
});

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
