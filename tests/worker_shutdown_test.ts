/**
 * Stopping workers: SIGTERM and SIGINT let the running job finish, a second
 * signal kills it and gives it back, `worker stop` waits for the workers to
 * exit, and `status` lists live workers only.
 */

import assert from "node:assert/strict";
import {
  cli,
  cliCommandLine,
  enqueueIn,
  exitWithin,
  HAS_TMUX,
  jobCounts,
  killProcess,
  liveWorkers,
  processExists,
  readIfExists,
  readLines,
  showJob,
  startWorker,
  Tmux,
  waitFor,
  withQueue,
} from "./helpers.ts";

/** Waits until the file `path` exists: the job has started. */
function waitForFile(path: string): Promise<boolean> {
  return waitFor(`${path} to appear`, async () => (await readIfExists(path)) !== "");
}

for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
  Deno.test(`${signal} lets the running job finish, claims nothing more, and exits 0`, () =>
    withQueue(async ({ dir, db }) => {
      const running = await enqueueIn(
        dir,
        db,
        "echo started > started; sleep 2; echo done >> out",
        "--priority",
        "1",
      );
      const waiting = await enqueueIn(dir, db, "echo second >> out");
      const worker = startWorker(db, ["--count", "1"]);
      try {
        await waitForFile(`${dir}/started`);
        assert.equal((await showJob(db, running)).state, "processing");
        worker.signal(signal);
        assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
      } finally {
        killProcess(worker);
      }
      const finished = await showJob(db, running);
      assert.equal(finished.state, "completed");
      assert.equal(finished.exit_code, 0);
      assert.deepEqual(await readLines(`${dir}/out`), ["done"]);
      const untouched = await showJob(db, waiting);
      assert.equal(untouched.state, "pending");
      assert.equal(untouched.attempts, 0);
      assert.deepEqual(await liveWorkers(db), []);
    }));
}

Deno.test("a second SIGTERM kills the running job and returns it to pending uncounted", () =>
  withQueue(async ({ dir, db }) => {
    const id = await enqueueIn(
      dir,
      db,
      "echo $$ > group.pid; sleep 60 & echo $! > child.pid; echo started > started; wait; echo done >> out",
    );
    const worker = startWorker(db, ["--count", "1"]);
    let child: number | undefined;
    try {
      await waitForFile(`${dir}/started`);
      child = Number((await readIfExists(`${dir}/child.pid`)).trim());
      assert.ok(processExists(child), "the job's child runs");
      const claimed = await showJob(db, id);
      assert.equal(claimed.state, "processing");
      assert.equal(claimed.attempts, 1);

      worker.signal("SIGTERM");
      // Two signals sent close together may arrive as one: wait for the first to be handled.
      await waitFor("the worker to start stopping", () => /stopping/.test(worker.stdout()));
      worker.signal("SIGTERM");
      assert.equal(await exitWithin(worker, 20_000), 143);
      assert.match(worker.stdout(), /SIGTERM again: killing running jobs/);
      assert.doesNotMatch(worker.stdout(), /already stopping/, "the second SIGTERM forced it");

      const released = await showJob(db, id);
      assert.equal(released.state, "pending");
      assert.equal(released.attempts, 0);
      assert.equal(await readIfExists(`${dir}/out`), "");
      assert.equal(processExists(child), false, `the job's child ${child} is still running`);
      assert.deepEqual(await liveWorkers(db), []);
    } finally {
      killProcess(worker);
      if (child !== undefined && processExists(child)) Deno.kill(child, "SIGKILL");
      // After a failure, the job's shell (its process group leader) may be left over.
      const group = Number((await readIfExists(`${dir}/group.pid`)).trim());
      if (group > 0 && processExists(group)) Deno.kill(-group, "SIGKILL");
    }
  }));

Deno.test("a second SIGHUP forces the stop too, and the worker exits 129", () =>
  withQueue(async ({ dir, db }) => {
    const id = await enqueueIn(dir, db, "echo $$ > group.pid; echo started > started; sleep 60");
    const worker = startWorker(db, ["--count", "1"]);
    try {
      await waitForFile(`${dir}/started`);
      worker.signal("SIGHUP");
      await waitFor("the worker to start stopping", () => /stopping/.test(worker.stdout()));
      worker.signal("SIGHUP");
      assert.equal(await exitWithin(worker, 20_000), 129);
      assert.equal((await showJob(db, id)).state, "pending");
    } finally {
      killProcess(worker);
      const group = Number((await readIfExists(`${dir}/group.pid`)).trim());
      if (group > 0 && processExists(group)) Deno.kill(-group, "SIGKILL");
    }
  }));

Deno.test("a stop begun by a signal shows in status as stopping", () =>
  withQueue(async ({ dir, db }) => {
    // The job runs until the test has seen the stop in status.
    await enqueueIn(
      dir,
      db,
      "echo started > started; while [ ! -e release ]; do sleep 0.05; done",
    );
    const worker = startWorker(db, ["--count", "1"]);
    try {
      await waitForFile(`${dir}/started`);
      assert.deepEqual((await liveWorkers(db)).map((w) => w.stopping), [false]);
      worker.signal("SIGINT");
      const [record] = await waitFor("status --json to show it stopping", async () => {
        const workers = await liveWorkers(db);
        return workers.some((w) => w.stopping) ? workers : undefined;
      });
      assert.equal(record.pid, worker.pid);
      const status = await cli(["status"], { db });
      assert.match(status.stdout, new RegExp(`pid ${worker.pid} on .*\\(stopping\\)`));
      await Deno.writeTextFile(`${dir}/release`, "");
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
      await Deno.writeTextFile(`${dir}/release`, "");
    }
  }));

Deno.test({
  name: "closing a foreground worker's terminal lets its running job finish; the worker then exits",
  ignore: !HAS_TMUX,
  fn: () =>
    withQueue(async ({ dir, db }) => {
      const id = await enqueueIn(dir, db, "echo started > started; sleep 2; echo done >> out");
      const tmux = new Tmux();
      let pid: number | undefined;
      try {
        await tmux.start(cliCommandLine(["worker", "start"], db));
        await waitForFile(`${dir}/started`);
        pid = (await liveWorkers(db))[0].pid;
        // The terminal goes away: a SIGHUP, and nowhere left to print.
        await tmux.kill();
        await waitFor("the worker to exit", () => !processExists(pid!), { timeoutMs: 20_000 });
        const job = await showJob(db, id);
        assert.equal(job.state, "completed");
        assert.deepEqual(await readLines(`${dir}/out`), ["done"]);
        assert.deepEqual(await liveWorkers(db), []);
      } finally {
        await tmux.kill();
        if (pid !== undefined && processExists(pid)) Deno.kill(pid, "SIGKILL");
      }
    }),
});

Deno.test("worker stop returns once the worker has exited, after its job completed", () =>
  withQueue(async ({ dir, db }) => {
    const id = await enqueueIn(dir, db, "echo started > started; sleep 2; echo done >> out");
    const worker = startWorker(db, ["--count", "2"]);
    try {
      await waitForFile(`${dir}/started`);
      const stop = await cli(["worker", "stop", "--timeout", "30s"], { db });
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal(processExists(worker.pid), false, "the worker process is still running");
      assert.equal(await exitWithin(worker, 5_000), 0, worker.stderr());
      assert.equal((await showJob(db, id)).state, "completed");
      assert.deepEqual(await readLines(`${dir}/out`), ["done"]);
      assert.deepEqual(await liveWorkers(db), []);
    } finally {
      killProcess(worker);
    }
  }));

Deno.test("worker stop with no workers running exits 0 quickly", () =>
  withQueue(async ({ dir, db }) => {
    await enqueueIn(dir, db, "true");
    const started = Date.now();
    const stop = await cli(["worker", "stop"], { db });
    const tookMs = Date.now() - started;
    assert.equal(stop.code, 0, stop.stderr);
    assert.ok(tookMs < 5_000, `worker stop took ${tookMs} ms`);
  }));

Deno.test("status lists a live worker process, and none once it has stopped", () =>
  withQueue(async ({ db }) => {
    // Create the database first: processes opening a brand-new one at the same
    // moment can fail (see worker_concurrency_test.ts).
    await jobCounts(db);
    const before = Date.now();
    const worker = startWorker(db, ["--count", "2"]);
    try {
      const [record, ...others] = await waitFor("the worker to register", async () => {
        const workers = await liveWorkers(db);
        return workers.length > 0 ? workers : undefined;
      });
      assert.deepEqual(others, []);
      assert.equal(record.pid, worker.pid);
      assert.equal(record.host, Deno.hostname());
      assert.equal(record.threads, 2);
      assert.match(record.started_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
      const startedAt = Date.parse(record.started_at);
      assert.ok(startedAt >= before - 1000 && startedAt <= Date.now(), record.started_at);

      worker.signal("SIGTERM");
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
      assert.deepEqual(await liveWorkers(db), []);
    } finally {
      killProcess(worker);
    }
  }));

Deno.test("the first SIGINT after worker stop keeps the stop graceful", () =>
  withQueue(async ({ dir, db }) => {
    const id = await enqueueIn(dir, db, "echo started > started; sleep 2; echo done >> out");
    const worker = startWorker(db, ["--count", "1"]);
    try {
      await waitForFile(`${dir}/started`);
      // worker stop gives up waiting (exit 1) but its request stands.
      const stop = await cli(["worker", "stop", "--timeout", "200ms"], { db });
      assert.equal(stop.code, 1, stop.stderr);
      await waitFor("the worker to start stopping", () => /stopping/.test(worker.stdout()));
      worker.signal("SIGINT");
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stdout());
    } finally {
      killProcess(worker);
    }
    assert.equal((await showJob(db, id)).state, "completed");
    assert.deepEqual(await readLines(`${dir}/out`), ["done"]);
  }));
