/**
 * Crash recovery: jobs that a killed worker process left `processing` go back
 * to the queue, with the attempt counted, and live workers are never robbed.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { WorkerRecord } from "../lib/store/store.ts";
import { processStartTime } from "../lib/worker/process_info.ts";
import { isWorkerAlive, pruneDeadWorkers, rescueOrphanedJobs } from "../lib/worker/rescuer.ts";
import {
  cli,
  cliOk,
  drain,
  enqueueIn,
  exitWithin,
  holdWriteLock,
  killProcess,
  liveWorkers,
  MAIN,
  openQueueStore,
  pathExists,
  processExists,
  readIfExists,
  readLines,
  runsFolder,
  showJob,
  shQuote,
  startWorker,
  waitFor,
  watchProcess,
  withQueue,
  type WorkerProcess,
} from "./helpers.ts";

/**
 * Starts a worker, waits until its job has written its pid to `pidFile`,
 * and kills the worker with SIGKILL. Returns the pid of the job's shell,
 * which outlives its worker (it has its own session).
 */
async function crashWorkerMidJob(db: string, pidFile: string): Promise<number> {
  const crashed = startWorker(db);
  try {
    const orphan = Number(
      await waitFor("the run to start", async () => (await readIfExists(pidFile)).trim()),
    );
    crashed.signal("SIGKILL");
    await crashed.exit();
    return orphan;
  } finally {
    killProcess(crashed);
  }
}

/** Kills a process group left behind by a failed test. */
function cleanUp(pgid: number): void {
  try {
    Deno.kill(-pgid, "SIGKILL");
  } catch {
    // Already gone, as it should be.
  }
}

/**
 * Kills a worker while its run (which writes `run.pid`, then `done` when it
 * has finished its work) goes on; lets the orphaned run finish and exit; then
 * drains the queue with a new worker.
 */
async function crashThenLetRunFinish(db: string, dir: string): Promise<void> {
  const orphan = await crashWorkerMidJob(db, `${dir}/run.pid`);
  try {
    await waitFor(
      "the orphaned run to finish",
      async () => (await readIfExists(`${dir}/done`)) !== "",
    );
    await waitFor("its shell to exit", () => !processExists(orphan));
    await drain(db);
  } finally {
    cleanUp(orphan);
  }
}

Deno.test("a job left processing by a SIGKILLed worker is recovered and finished by the next worker", () =>
  withQueue(async ({ dir, db }) => {
    await cliOk(["config", "set", "backoff-base", "1"], { db });
    // The first run records its process group and hangs; the second succeeds.
    const id = await enqueueIn(
      dir,
      db,
      `if [ "$QUEUECTL_ATTEMPT" = 1 ]; then echo $$ > first.pid; sleep 300; fi; echo recovered`,
    );
    const orphan = await crashWorkerMidJob(db, `${dir}/first.pid`);
    let printed: string;
    try {
      assert.ok(processExists(orphan), "the lost run outlives its worker");
      assert.equal((await showJob(db, id)).state, "processing", "the crash left it processing");
      printed = await drain(db);
      assert.ok(!processExists(orphan), "recovery ended the lost run before retrying");
    } finally {
      cleanUp(orphan);
    }
    const job = await showJob(db, id);
    assert.equal(job.state, "completed");
    assert.equal(job.attempts, 2, "the lost run counts as an attempt");
    assert.match(printed, new RegExp(`${id} recovered`));
    assert.equal(await cliOk(["logs", id], { db }), "recovered\n");
  }));

Deno.test("a lost run with no retries left goes to the DLQ as 'worker lost'", () =>
  withQueue(async ({ dir, db }) => {
    const id = await enqueueIn(dir, db, "echo $$ > run.pid; sleep 300", "--max-retries", "0");
    const orphan = await crashWorkerMidJob(db, `${dir}/run.pid`);
    try {
      await drain(db);
      assert.ok(!processExists(orphan), "recovery ended the lost run");
    } finally {
      cleanUp(orphan);
    }
    const job = await showJob(db, id);
    assert.equal(job.state, "dead");
    assert.equal(job.attempts, 1);
    assert.match(job.last_error ?? "", /worker lost/);
  }));

/** A worker record of this test process, as `worker start` would register it, changed by `fields`. */
function ownRecord(fields: Partial<WorkerRecord> = {}): WorkerRecord {
  const now = Date.now();
  return {
    id: "me",
    pid: Deno.pid,
    host: Deno.hostname(),
    threads: 1,
    startedAt: now,
    heartbeatAt: now,
    stopRequested: false,
    procStart: processStartTime(Deno.pid),
    ...fields,
  };
}

Deno.test("isWorkerAlive() on this host goes by the process, whatever the heartbeat says", async () => {
  const now = Date.now();
  const me = ownRecord();
  assert.equal(isWorkerAlive(me, now), true);
  assert.equal(
    isWorkerAlive({ ...me, heartbeatAt: now - 3_600_000 }, now, 5_000),
    true,
    "a live process with a stale heartbeat (stopped, or blocked by a lock) is alive",
  );
  assert.equal(isWorkerAlive({ ...me, procStart: "1" }, now), false, "same pid, other start time");
  assert.equal(isWorkerAlive({ ...me, pid: 2 ** 22 + 1 }, now), false, "no such process");
  // A zombie has exited: only its parent (here `sleep`, which never reaps) has yet to reap it.
  const parent = new Deno.Command("sh", {
    args: ["-c", "sh -c 'exit 0' & exec sleep 30"],
    stdin: "null",
  }).spawn();
  try {
    const zombie = await waitFor("the zombie", () => {
      for (const entry of Deno.readDirSync("/proc")) {
        const stat = readIfExistsSync(`/proc/${entry.name}/stat`);
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        if (fields[0] === "Z" && Number(fields[1]) === parent.pid) return Number(entry.name);
      }
      return undefined;
    });
    const record = { ...me, pid: zombie, procStart: processStartTime(zombie) };
    assert.equal(isWorkerAlive(record, now), false, "a zombie is dead");
  } finally {
    parent.kill("SIGKILL");
    await parent.status;
  }
  assert.equal(
    isWorkerAlive({ ...me, host: "another-host", pid: 2 ** 22 + 1 }, now),
    true,
    "another host's worker is judged by its heartbeat alone",
  );
  assert.equal(
    isWorkerAlive({ ...me, host: "another-host", heartbeatAt: now - 60_000 }, now, 5_000),
    false,
    "and shown as gone once its heartbeat is older than the lease",
  );
});

/** The contents of a file, or "" when it cannot be read. */
function readIfExistsSync(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

// How a stall of the database is left out of every lease is the store's,
// tested for every backend in tests/store_conformance_workers.ts.

Deno.test("only a worker process's rescue prunes a silent worker of another host, by lease", () =>
  withQueue(async ({ db }) => {
    const store = await openQueueStore(db);
    try {
      await store.setConfig("leaseTimeoutMs", 5_000);
      const now = Date.now();
      const silent = { ...ownRecord(), id: "far", host: "another-host", heartbeatAt: now - 60_000 };
      const me = ownRecord({ heartbeatAt: now - 6_000 });
      await store.registerWorker(silent);
      await store.registerWorker(me);
      // A command: silence may be a lock, so it only hides the worker.
      assert.deepEqual((await pruneDeadWorkers(store, null)).map((w) => w.id), ["me"]);
      assert.equal((await store.listWorkers()).length, 2, "nothing removed");
      // A worker process that has watched for 6 s, beating all along: silence proves death.
      for (let at = now - 5_000; at <= now; at += 1_000) {
        await store.heartbeatWorker(me, () => at);
      }
      await rescueOrphanedJobs(store, null, "me");
      assert.deepEqual((await store.listWorkers()).map((w) => w.id), ["me"]);
      // Never itself, even when its own heartbeat is stale and nothing else says it is alive.
      await store.registerWorker({ ...silent, id: "self" });
      await rescueOrphanedJobs(store, null, "self");
      assert.deepEqual((await store.listWorkers()).map((w) => w.id).toSorted(), ["me", "self"]);
    } finally {
      await store.close();
    }
  }));

/** Whether this process may run others in a namespace of their own (root, with unshare). */
const CAN_UNSHARE = Deno.build.os === "linux" && Deno.uid() === 0 &&
  new Deno.Command("unshare", { args: ["--uts", "true"], stdout: "null", stderr: "null" })
    .outputSync().success;

/**
 * Starts `worker start` as if on another machine: in a UTS namespace with
 * the host name `host`, so that other workers know it by its heartbeat alone.
 * Its pid is the one spawned (unshare and sh exec in place).
 */
function startWorkerOnHost(db: string, host: string): WorkerProcess {
  const script = `hostname ${host} && exec "$@"`;
  const child = new Deno.Command("unshare", {
    args: [
      "--uts",
      "sh",
      "-c",
      script,
      "sh",
      Deno.execPath(),
      "run",
      "-A",
      MAIN,
      "--db",
      db,
      "worker",
      "start",
    ],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return watchProcess(child);
}

Deno.test({
  name:
    "a stalled worker on another host loses its job after the lease; its late outcome is discarded",
  ignore: !CAN_UNSHARE,
  fn: () =>
    withQueue(async ({ dir, db }) => {
      await cliOk(["config", "set", "lease-timeout", "5s"], { db });
      await cliOk(["config", "set", "backoff-base", "1"], { db });
      // The first run outlasts the lease (it is still running when recovered); the retry is quick.
      const id = await enqueueIn(
        dir,
        db,
        `echo $QUEUECTL_ATTEMPT >> runs; if [ "$QUEUECTL_ATTEMPT" = 1 ]; then sleep 60; fi`,
      );
      const stalled = startWorkerOnHost(db, "otherhost");
      let rescuer: WorkerProcess | undefined;
      try {
        await waitFor("the first run", async () => (await readIfExists(`${dir}/runs`)) !== "");
        assert.equal((await liveWorkers(db))[0].host, "otherhost");
        stalled.signal("SIGSTOP"); // Alive, but silent: no heartbeats.
        rescuer = startWorker(db, ["--count", "1"]);
        await waitFor(
          "the retry to complete",
          async () => (await showJob(db, id)).state === "completed",
          { timeoutMs: 30_000 },
        );
        assert.match(rescuer.stdout(), new RegExp(`${id} recovered`));
        stalled.signal("SIGCONT");
        await waitFor(
          "the stalled worker to report its outcome discarded",
          () => /no longer this worker's; outcome discarded/.test(stalled.stdout()),
          { timeoutMs: 15_000 },
        );
        const job = await showJob(db, id);
        assert.equal(job.state, "completed", "the late outcome did not overwrite the newer one");
        assert.equal(job.attempts, 2);
        for (const worker of [stalled, rescuer]) worker.signal("SIGTERM");
        assert.equal(await exitWithin(stalled, 20_000), 0, stalled.stderr());
        assert.equal(await exitWithin(rescuer, 20_000), 0, rescuer.stderr());
      } finally {
        for (const worker of rescuer ? [stalled, rescuer] : [stalled]) {
          try {
            worker.signal("SIGCONT");
          } catch {
            // Exited.
          }
          killProcess(worker);
        }
      }
    }),
});

Deno.test("a run that finished after its worker died is settled from its recorded status, not run again", () =>
  withQueue(async ({ dir, db }) => {
    const id = await enqueueIn(
      dir,
      db,
      "echo $$ > run.pid; echo $QUEUECTL_ATTEMPT >> runs; sleep 1; echo finished > done; exit 0",
    );
    await crashThenLetRunFinish(db, dir);
    const job = await showJob(db, id);
    assert.equal(job.state, "completed");
    assert.equal(job.attempts, 1, "the finished run was not run again");
    assert.equal(job.exit_code, 0);
    assert.equal(await readIfExists(`${dir}/runs`), "1\n");
  }));

Deno.test("a failed run recorded after its worker died follows the retry rule", () =>
  withQueue(async ({ dir, db }) => {
    const id = await enqueueIn(
      dir,
      db,
      "echo $$ > run.pid; sleep 1; echo finished > done; exit 7",
      "--max-retries",
      "0",
    );
    await crashThenLetRunFinish(db, dir);
    const job = await showJob(db, id);
    assert.equal(job.state, "dead");
    assert.equal(job.exit_code, 7);
    assert.match(job.last_error ?? "", /exited with code 7/);
  }));

Deno.test("a runs folder removed under a worker: job output stays clean, the folder is made again", () =>
  withQueue(async ({ dir, db }) => {
    const runs = runsFolder(db);
    // The first job removes the folder its own exit status goes to, then fails; the rest
    // run right after it, before or after the worker has made the folder again.
    const remover = await enqueueIn(
      dir,
      db,
      `rm -r ${shQuote(runs)}; echo oops >&2; exit 3`,
      "--priority",
      "9",
      "--max-retries",
      "0",
    );
    const others: string[] = [];
    for (let n = 0; n < 10; n++) others.push(await enqueueIn(dir, db, `echo out ${n}`));
    const worker = startWorker(db);
    let orphan: number | undefined;
    try {
      await waitFor("every job to finish", async () => {
        const done = await Promise.all([remover, ...others].map((id) => showJob(db, id)));
        return done.every((job) => job.state === "completed" || job.state === "dead");
      });
      const removed = await showJob(db, remover);
      assert.equal(removed.state, "dead");
      assert.equal(removed.exit_code, 3, "the shell's exit status is the command's");
      assert.equal(removed.last_error, "exited with code 3: oops");
      const logs = await cli(["logs", remover], { db });
      assert.equal(logs.stderr, "oops\n", "the job's stderr holds only its own output");
      for (const [n, id] of others.entries()) {
        const job = await showJob(db, id);
        assert.equal(job.state, "completed", `${id}: ${job.last_error}`);
        const out = await cli(["logs", id], { db });
        assert.equal(out.stdout, `out ${n}\n`);
        assert.equal(out.stderr, "", `${id}: stderr`);
      }

      await waitFor("the runs folder to come back", () => pathExists(runs), { timeoutMs: 5_000 });
      assert.equal((await Deno.stat(runs)).mode! & 0o777, 0o700, "private, as at start");
      await waitFor("the worker to say so", () => /was gone: made it again/.test(worker.stdout()));

      // Exit statuses are written again: a run that finishes after its worker died is
      // settled from the one it left, not run again.
      const late = await enqueueIn(dir, db, "echo $$ > run.pid; sleep 1; echo finished > done");
      orphan = Number(
        await waitFor(
          "the run to start",
          async () => (await readIfExists(`${dir}/run.pid`)).trim(),
        ),
      );
      worker.signal("SIGKILL");
      await worker.exit();
      await waitFor("the orphaned run to finish", () => !processExists(orphan!));
      assert.equal(await readIfExists(`${dir}/done`), "finished\n");
      await drain(db);
      const settled = await showJob(db, late);
      assert.equal(settled.state, "completed");
      assert.equal(settled.attempts, 1, "settled from its recorded status");

      const said = worker.stdout().match(/was gone: made it again/g) ?? [];
      assert.equal(said.length, 1, `said once:\n${worker.stdout()}`);
      assert.doesNotMatch(worker.stdout() + worker.stderr(), /cannot create|Directory nonexistent/);
    } finally {
      killProcess(worker);
      if (orphan !== undefined) cleanUp(orphan);
    }
  }));

/**
 * Two workers (made by `start`) and a job running on one of them; another
 * connection holds the write lock for 8 s, longer than the 5 s lease, so no
 * heartbeat can be written meanwhile. The job must still run once, to the end.
 */
async function holdLockPastLease(
  { dir, db }: { dir: string; db: string },
  start: (index: number) => WorkerProcess,
): Promise<void> {
  await cliOk(["config", "set", "lease-timeout", "5s"], { db });
  const workers = [start(1), start(2)];
  try {
    await waitFor("both workers to register", async () => (await liveWorkers(db)).length === 2);
    const id = await enqueueIn(dir, db, "echo start $QUEUECTL_ATTEMPT >> ledger; sleep 14");
    await waitFor("the run to start", async () => (await readIfExists(`${dir}/ledger`)) !== "");
    await holdWriteLock(db, 8_000);
    await waitFor(
      "the job to complete",
      async () => (await showJob(db, id)).state === "completed",
      { timeoutMs: 40_000 },
    );
    assert.deepEqual(await readLines(`${dir}/ledger`), ["start 1"], "the job ran once");
    assert.equal((await showJob(db, id)).attempts, 1);
    for (const worker of workers) {
      assert.doesNotMatch(worker.stdout(), /recovered/, worker.stdout());
      worker.signal("SIGTERM");
    }
    for (const worker of workers) assert.equal(await exitWithin(worker, 20_000), 0);
  } finally {
    workers.forEach(killProcess);
  }
}

Deno.test("a write lock held longer than the lease costs no live worker its job", () =>
  withQueue((queue) => holdLockPastLease(queue, () => startWorker(queue.db))));

Deno.test({
  name: "a write lock held longer than the lease costs no job between workers on other hosts",
  ignore: !CAN_UNSHARE,
  fn: () =>
    withQueue((queue) =>
      holdLockPastLease(queue, (index) => startWorkerOnHost(queue.db, `host${index}`))
    ),
});
