/**
 * Many workers in several processes over one queue: every job runs exactly
 * once. Each job appends its id to a shared ledger; a job claimed twice
 * would show up twice.
 */

import assert from "node:assert/strict";
import {
  cli,
  cliOk,
  exitWithin,
  jobCounts,
  killProcess,
  listJobs,
  liveWorkers,
  readLines,
  startWorker,
  waitFor,
  withQueue,
  type WorkerProcess,
} from "./helpers.ts";

const JOBS = 300;
/** Rounds of the fresh-database race test. */
const ROUNDS = 40;

Deno.test("two processes of three workers each run 300 jobs exactly once", () =>
  withQueue(async ({ dir, db }) => {
    const ids = Array.from({ length: JOBS }, (_, i) => `job-${String(i + 1).padStart(3, "0")}`);
    const file = `${dir}/jobs.jsonl`;
    await Deno.writeTextFile(
      file,
      ids.map((id) => JSON.stringify({ id, command: 'echo "$QUEUECTL_JOB_ID" >> ledger' }))
        .join("\n") + "\n",
    );

    // Create the database first: the next test covers processes racing to create it.
    await jobCounts(db);
    const workers: WorkerProcess[] = [];
    try {
      // Both processes are up and idle before the jobs arrive, so they race for them.
      workers.push(startWorker(db, ["--count", "3"]), startWorker(db, ["--count", "3"]));
      await waitFor("both worker processes to register", async () => {
        return (await liveWorkers(db)).length === 2;
      });
      const enqueued = await cliOk(["enqueue", "--file", file], { db, cwd: dir });
      assert.equal(enqueued.trim().split("\n").length, JOBS);

      await waitFor("every job to finish", async () => {
        const counts = await jobCounts(db);
        return counts.completed + counts.dead === JOBS;
      }, { timeoutMs: 60_000, intervalMs: 250 });

      const stop = await cli(["worker", "stop", "--timeout", "30s"], { db });
      assert.equal(stop.code, 0, stop.stderr);
      for (const worker of workers) {
        assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
      }
    } finally {
      workers.forEach(killProcess);
    }

    const ledger = await readLines(`${dir}/ledger`);
    assert.equal(ledger.length, JOBS, "the ledger holds one line per run");
    assert.deepEqual([...new Set(ledger)].sort(), ids);
    assert.deepEqual(await jobCounts(db), {
      blocked: 0,
      pending: 0,
      processing: 0,
      completed: JOBS,
      failed: 0,
      dead: 0,
    });
    const jobs = await listJobs(db);
    assert.equal(jobs.length, JOBS);
    assert.deepEqual(jobs.filter((job) => job.attempts !== 1).map((job) => job.id), []);
    // Both processes took part.
    for (const worker of workers) {
      assert.match(worker.stdout(), /job-\d{3} succeeded/, `pid ${worker.pid} ran no job`);
    }
  }));

Deno.test("processes that open a brand-new database at the same moment all succeed", async () => {
  // Each round starts a worker, enqueues and asks for the status on a database
  // that does not exist yet, all at once. A race in creating the schema shows
  // up as some of them failing; it does not happen every time, hence the rounds.
  for (let round = 1; round <= ROUNDS; round++) {
    await withQueue(async ({ dir, db }) => {
      const worker = startWorker(db, ["--drain"]);
      try {
        const results = await Promise.all([
          cli(["enqueue", "true"], { db, cwd: dir }),
          cli(["enqueue", "true"], { db, cwd: dir }),
          cli(["status", "--json"], { db }),
          cli(["status", "--json"], { db }),
          cli(["status", "--json"], { db }),
        ]);
        for (const result of results) {
          assert.equal(result.code, 0, `round ${round}: ${result.stderr.split("\n")[0]}`);
        }
        const code = await exitWithin(worker, 20_000);
        assert.equal(code, 0, `round ${round}: ${worker.stderr().split("\n")[0]}`);
      } finally {
        killProcess(worker);
      }
    });
  }
});
