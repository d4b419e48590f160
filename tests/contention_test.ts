/**
 * Contention: three worker processes of two workers each take jobs while
 * three enqueuer loops add them 50 at a time (`enqueue --file`), 3,000 jobs in
 * all. Each job appends its id to a ledger: a job run twice shows up twice, a
 * lost one not at all.
 */

import assert from "node:assert/strict";
import {
  cli,
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

const WORKER_PROCESSES = 3;
const WORKERS_EACH = 2;
const ENQUEUERS = 3;
const BATCH = 50;
const BATCHES_EACH = 20;
const TOTAL = ENQUEUERS * BATCHES_EACH * BATCH;

Deno.test(`${WORKER_PROCESSES} worker processes × ${WORKERS_EACH} and ${ENQUEUERS} enqueuers run ${TOTAL} jobs exactly once`, () =>
  withQueue(async ({ dir, db }) => {
    assert.equal(TOTAL, 3_000);
    const ledger = `${dir}/ledger`;
    // batches[enqueuer][batch] holds the ids of one `enqueue --file`.
    const batches = Array.from(
      { length: ENQUEUERS },
      (_, e) =>
        Array.from(
          { length: BATCHES_EACH },
          (_, b) => Array.from({ length: BATCH }, (_, j) => `e${e}-b${b}-j${j}`),
        ),
    );
    const allIds = batches.flat(2);
    const batchText = (ids: string[]) =>
      ids.map((id) => JSON.stringify({ id, command: `printf '%s\\n' ${id} >> '${ledger}'` }))
        .join("\n") + "\n";
    for (const [e, mine] of batches.entries()) {
      for (const [b, ids] of mine.entries()) {
        await Deno.writeTextFile(`${dir}/batch-${e}-${b}.jsonl`, batchText(ids));
      }
    }

    // The database exists before anyone races to create it (worker_concurrency_test covers that race).
    await jobCounts(db);
    const workers: WorkerProcess[] = [];
    try {
      for (let i = 0; i < WORKER_PROCESSES; i++) {
        workers.push(startWorker(db, ["--count", String(WORKERS_EACH)]));
      }
      await waitFor("every worker process to register", async () => {
        return (await liveWorkers(db)).length === WORKER_PROCESSES;
      });

      // Each enqueuer adds its batches one after another, beside the other enqueuers and the
      // workers; every other batch comes through stdin.
      await Promise.all(batches.map(async (mine, e) => {
        for (const [b, ids] of mine.entries()) {
          const viaStdin = b % 2 === 1;
          const result = await cli(
            ["enqueue", "--file", viaStdin ? "-" : `${dir}/batch-${e}-${b}.jsonl`],
            { db, cwd: dir, stdin: viaStdin ? batchText(ids) : undefined },
          );
          const what = `enqueuer ${e}, batch ${b}`;
          assert.equal(result.code, 0, `${what}: ${result.stderr}`);
          assert.equal(result.stderr, "", what);
          assert.equal(result.stdout, ids.join("\n") + "\n", `${what}: the ids, in order`);
        }
      }));

      await waitFor("every job to finish", async () => {
        const counts = await jobCounts(db);
        return counts.completed + counts.failed + counts.dead === TOTAL;
      }, { timeoutMs: 90_000, intervalMs: 250 });
      const stop = await cli(["worker", "stop", "--timeout", "30s"], { db });
      assert.equal(stop.code, 0, stop.stderr);
      for (const worker of workers) {
        assert.equal(await exitWithin(worker, 30_000), 0, `pid ${worker.pid}: ${worker.stderr()}`);
        assert.equal(worker.stderr(), "", `worker process ${worker.pid} printed to stderr`);
        assert.match(worker.stdout(), / succeeded /, `worker process ${worker.pid} ran no job`);
        assert.doesNotMatch(worker.stdout(), / failed /, `pid ${worker.pid}: a job failed`);
      }
    } finally {
      workers.forEach(killProcess);
    }

    const lines = await readLines(ledger);
    const seen = new Map<string, number>();
    for (const line of lines) seen.set(line, (seen.get(line) ?? 0) + 1);
    const twice = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
    const missing = allIds.filter((id) => !seen.has(id));
    const strangers = [...seen.keys()].filter((id) => !allIds.includes(id));
    assert.deepEqual(twice, [], "jobs that ran more than once");
    assert.deepEqual(missing, [], "jobs that never ran");
    assert.deepEqual(strangers, [], "ledger lines that are no job's id");
    assert.equal(lines.length, TOTAL);

    assert.deepEqual(await jobCounts(db), {
      blocked: 0,
      pending: 0,
      processing: 0,
      completed: TOTAL,
      failed: 0,
      dead: 0,
    });
    const jobs = await listJobs(db);
    assert.equal(jobs.length, TOTAL, "no job lost");
    assert.deepEqual(
      jobs.filter((job) => job.state !== "completed" || job.attempts !== 1).map((job) => job.id),
      [],
      "every job completed on its first attempt",
    );
    assert.deepEqual(await liveWorkers(db), [], "every worker process deregistered");
  }));
