/**
 * Taking the wheel with real workers: `pause` and `resume`, `worker start
 * --queue`, `kill` of a running job and its children, `retry` of finished
 * jobs, and `delete` (by ids, by state and age, and its confirmation on a
 * terminal).
 */

import assert from "node:assert/strict";
import {
  ageJobs,
  assertRefused,
  cli,
  cliCommandLine,
  cliOk,
  enqueueIn,
  exitWithin,
  HAS_TMUX,
  killProcess,
  openQueueStore,
  processExists,
  readIfExists,
  readLines,
  showJob,
  startWorker,
  Tmux,
  waitFor,
  withQueue,
  type WorkerProcess,
} from "./helpers.ts";

/**
 * A command that marks its start in `name`.started, then runs until
 * `name`.release exists, or until its folder is gone (a failed test left it).
 */
const held = (name: string) =>
  `touch ${name}.started; while [ -f ${name}.started ] && [ ! -f ${name}.release ]; do sleep 0.05; done; echo ${name} >> ran`;

/** Waits until the file `path` exists. */
function waitForFile(path: string): Promise<boolean> {
  return waitFor(`${path} to appear`, async () => {
    try {
      await Deno.lstat(path);
      return true;
    } catch {
      return false;
    }
  });
}

/** Waits until job `id` is in `state`. */
function waitForState(db: string, id: string, state: string): Promise<boolean> {
  return waitFor(`job ${id} to be ${state}`, async () => (await showJob(db, id)).state === state);
}

/** Stops a worker with SIGTERM (it lets its job finish) and checks that it exits 0. */
async function stopWorker(worker: WorkerProcess): Promise<void> {
  worker.signal("SIGTERM");
  assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
}

/** The numbers, one per line, in `path` once it holds `count` of them. */
async function pidsIn(path: string, count: number): Promise<number[]> {
  const lines = await waitFor(`${count} pids in ${path}`, async () => {
    const lines = await readLines(path);
    return lines.length >= count ? lines : undefined;
  });
  return lines.map(Number);
}

Deno.test("pause stops new claims while the running job finishes; resume runs the rest", () =>
  withQueue(async ({ dir, db }) => {
    const long = await enqueueIn(dir, db, held("long"));
    const worker = startWorker(db, ["--count", "2"]);
    try {
      await waitForFile(`${dir}/long.started`);
      const paused = await cli(["pause"], { db });
      assert.equal(paused.code, 0, paused.stderr);
      assert.match(paused.stdout, /^paused queue 'default'.*1 running job will finish\n$/);

      const first = await enqueueIn(dir, db, "echo first >> ran");
      const second = await enqueueIn(dir, db, "echo second >> ran");
      const again = await cli(["pause", "default"], { db });
      assert.equal(again.code, 0);
      assert.match(again.stderr, /^queue 'default' is already paused \(since .+\)\n$/);

      await Deno.writeTextFile(`${dir}/long.release`, "");
      await waitForState(db, long, "completed");
      // The second worker has been idle all along; give it time to (wrongly) claim.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      assert.equal((await showJob(db, first)).state, "pending");
      assert.equal((await showJob(db, second)).state, "pending");
      assert.deepEqual(await readLines(`${dir}/ran`), ["long"]);

      const resumed = await cli(["resume"], { db });
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.match(resumed.stdout, /^resumed queue 'default'/);
      await waitForState(db, first, "completed");
      await waitForState(db, second, "completed");
      assert.deepEqual((await readLines(`${dir}/ran`)).sort(), ["first", "long", "second"]);

      const notPaused = await cli(["resume"], { db });
      assert.equal(notPaused.code, 0);
      assert.equal(notPaused.stderr, "queue 'default' is not paused\n");
      await stopWorker(worker);
    } finally {
      killProcess(worker);
    }
  }));

Deno.test("worker start --queue serves only its queues; a paused queue is skipped by all", () =>
  withQueue(async ({ dir, db }) => {
    const inA = await enqueueIn(dir, db, "echo a >> ran", "--queue", "a");
    const inB = await enqueueIn(dir, db, "echo b >> ran", "--queue", "b");
    const inDefault = await enqueueIn(dir, db, "echo default >> ran");

    const onlyA = startWorker(db, ["--queue", "a", "--drain"]);
    try {
      assert.equal(await exitWithin(onlyA, 20_000), 0, onlyA.stderr());
    } finally {
      killProcess(onlyA);
    }
    assert.deepEqual(await readLines(`${dir}/ran`), ["a"]);
    assert.equal((await showJob(db, inA)).state, "completed");
    assert.equal((await showJob(db, inB)).state, "pending");
    assert.equal((await showJob(db, inDefault)).state, "pending");

    assert.match(await cliOk(["pause", "b"], { db }), /^paused queue 'b'/);
    const all = startWorker(db, ["--drain"]);
    try {
      // --drain does not wait for jobs of a paused queue.
      assert.equal(await exitWithin(all, 20_000), 0, all.stderr());
    } finally {
      killProcess(all);
    }
    assert.deepEqual(await readLines(`${dir}/ran`), ["a", "default"]);
    assert.equal((await showJob(db, inB)).state, "pending");

    await cliOk(["resume", "b"], { db });
    await cliOk(["worker", "start", "--drain"], { db });
    assert.deepEqual(await readLines(`${dir}/ran`), ["a", "default", "b"]);
  }));

Deno.test("pause and resume refuse a bad queue name and extra arguments", () =>
  withQueue(async ({ db }) => {
    assertRefused(await cli(["pause", "no spaces"], { db }), 2, "pause 'no spaces'");
    assertRefused(await cli(["resume", "-x-"], { db }), 2, "resume -x-");
    assertRefused(await cli(["pause", "a", "b"], { db }), 2, "pause a b");
  }));

Deno.test("kill stops a job and every child it spawned; the run counts as a failed attempt", () =>
  withQueue(async ({ dir, db }) => {
    // A long backoff: the retry must not start while the test looks.
    await cliOk(["config", "set", "backoff-base", "60"], { db });
    const id = await enqueueIn(
      dir,
      db,
      `sh -c 'sleep 300 & echo $! >> pids; sleep 300 & echo $! >> pids; echo $$ >> pids; wait'`,
      "--max-retries",
      "2",
    );
    const worker = startWorker(db);
    let pids: number[] = [];
    try {
      pids = await pidsIn(`${dir}/pids`, 3);
      for (const pid of pids) assert.ok(processExists(pid), `process ${pid} runs before the kill`);

      const killed = await cli(["kill", id], { db });
      assert.equal(killed.code, 0, killed.stderr);
      assert.match(killed.stdout, new RegExp(`^killed job '${id}': failed, retry at \\S+Z`));
      await waitFor("every process of the job to be gone", () => !pids.some(processExists), {
        timeoutMs: 5_000,
      });

      const job = await showJob(db, id);
      assert.equal(job.state, "failed");
      assert.equal(job.attempts, 1);
      assert.equal(job.last_error, "killed by 'queuectl kill'");
      assert.ok(Date.parse(job.run_at) > Date.now() + 30_000, "the retry waits for its backoff");
      await stopWorker(worker);
    } finally {
      killProcess(worker);
      for (const pid of pids) if (processExists(pid)) Deno.kill(pid, "SIGKILL");
    }
  }));

Deno.test("kill --no-retry sends the job straight to the DLQ", () =>
  withQueue(async ({ dir, db }) => {
    const id = await enqueueIn(dir, db, held("job"), "--max-retries", "3");
    const worker = startWorker(db);
    try {
      await waitForFile(`${dir}/job.started`);
      const killed = await cli(["kill", "--no-retry", id], { db });
      assert.equal(killed.code, 0, killed.stderr);
      assert.match(killed.stdout, new RegExp(`^killed job '${id}': dead`));
      const job = await showJob(db, id);
      assert.equal(job.state, "dead");
      assert.match(job.last_error ?? "", /^killed by 'queuectl kill'/);
      assert.equal(await readIfExists(`${dir}/ran`), "", "the job did not run on");
      await stopWorker(worker);
    } finally {
      killProcess(worker);
      await Deno.writeTextFile(`${dir}/job.release`, "");
    }
  }));

for (const noRetry of [true, false]) {
  const how = noRetry ? "kill --no-retry" : "kill";
  Deno.test(`${how} of a job that traps SIGTERM and exits 0 counts it as killed`, () =>
    withQueue(async ({ dir, db }) => {
      // A long backoff: the retry must not start while the test looks.
      await cliOk(["config", "set", "backoff-base", "60"], { db });
      const id = await enqueueIn(
        dir,
        db,
        `trap 'exit 0' TERM; ${held("job")}`,
        "--max-retries",
        "2",
      );
      const worker = startWorker(db);
      try {
        await waitForFile(`${dir}/job.started`);
        const killed = await cli(noRetry ? ["kill", "--no-retry", id] : ["kill", id], { db });
        assert.equal(killed.code, 0, killed.stderr);
        const job = await showJob(db, id);
        // The shell did exit 0 (its trap ran): that stays on record, but the run was killed.
        assert.equal(job.exit_code, 0);
        assert.equal(job.attempts, 1);
        if (noRetry) {
          assert.match(killed.stdout, new RegExp(`^killed job '${id}': dead`));
          assert.equal(job.state, "dead");
          assert.equal(job.last_error, "killed by 'queuectl kill' --no-retry");
        } else {
          assert.match(killed.stdout, new RegExp(`^killed job '${id}': failed, retry at \\S+Z`));
          assert.equal(job.state, "failed");
          assert.equal(job.last_error, "killed by 'queuectl kill'");
          assert.ok(
            Date.parse(job.run_at) > Date.now() + 30_000,
            "the retry waits for its backoff",
          );
        }
        assert.equal(await readIfExists(`${dir}/ran`), "", "the job did not run on");
        await stopWorker(worker);
      } finally {
        killProcess(worker);
        await Deno.writeTextFile(`${dir}/job.release`, "");
      }
    }));
}

Deno.test("kill refuses a job that is not running, a missing job, and bad arguments", () =>
  withQueue(async ({ dir, db }) => {
    const id = await enqueueIn(dir, db, "true");
    const pending = await cli(["kill", id], { db });
    assertRefused(pending, 1, "kill of a pending job");
    assert.match(pending.stderr, /not running/);
    assert.equal((await showJob(db, id)).state, "pending");
    assertRefused(await cli(["kill", "nosuch"], { db }), 1, "kill of a missing job");
    assertRefused(await cli(["kill"], { db }), 2, "kill without an id");
    assertRefused(await cli(["kill", id, "other"], { db }), 2, "kill of two ids");
    assertRefused(await cli(["kill", id, "--timeout", "soon"], { db }), 2, "kill --timeout soon");
  }));

Deno.test("kill exits 1 when the worker does not act in time, and the request stays", () =>
  withQueue(async ({ dir, db }) => {
    const id = await enqueueIn(dir, db, held("job"), "--max-retries", "0");
    const worker = startWorker(db);
    try {
      await waitForFile(`${dir}/job.started`);
      // A stalled worker: its job (in a session of its own) keeps running.
      worker.signal("SIGSTOP");
      const late = await cli(["kill", id, "--timeout", "1s"], { db });
      assertRefused(late, 1, "kill with a stalled worker");
      assert.match(late.stderr, /still running after 1s.*the kill request stays/);
      assert.equal((await showJob(db, id)).state, "processing");

      worker.signal("SIGCONT");
      await waitForState(db, id, "dead");
      assert.equal((await showJob(db, id)).last_error, "killed by 'queuectl kill'");
      await stopWorker(worker);
    } finally {
      try {
        worker.signal("SIGCONT");
      } catch {
        // It has exited.
      }
      killProcess(worker);
      await Deno.writeTextFile(`${dir}/job.release`, "");
    }
  }));

Deno.test("retry runs completed and dead jobs again, keeping their earlier runs in history", () =>
  withQueue(async ({ dir, db }) => {
    const ok = await enqueueIn(dir, db, "echo ok >> ran");
    const bad = await enqueueIn(dir, db, "echo bad >> ran; exit 3", "--max-retries", "0");
    await cliOk(["worker", "start", "--drain"], { db });
    assert.equal((await showJob(db, ok)).state, "completed");
    assert.equal((await showJob(db, bad)).state, "dead");

    const waiting = await enqueueIn(dir, db, "true", "--delay", "1h", "--queue", "later");
    const refused = await cli(["retry", ok, waiting], { db });
    assertRefused(refused, 1, "retry of a pending job");
    assert.match(refused.stderr, new RegExp(`job '${waiting}' is pending`));
    assert.equal((await showJob(db, ok)).state, "completed", "all or none");
    assertRefused(await cli(["retry", "nosuch"], { db }), 1, "retry of a missing job");
    assertRefused(await cli(["retry"], { db }), 2, "retry without ids");

    const retried = await cli(["retry", bad, ok], { db });
    assert.equal(retried.code, 0, retried.stderr);
    assert.deepEqual(retried.stdout.trim().split("\n").sort(), [bad, ok].sort());
    for (const id of [ok, bad]) {
      const job = await showJob(db, id);
      assert.equal(job.state, "pending");
      assert.equal(job.attempts, 0);
    }

    await cliOk(["worker", "start", "--drain", "--queue", "default"], { db });
    assert.equal((await readLines(`${dir}/ran`)).filter((l) => l === "ok").length, 2);
    assert.equal((await readLines(`${dir}/ran`)).filter((l) => l === "bad").length, 2);
    const store = await openQueueStore(db);
    try {
      const okJob = await store.getJob(ok);
      assert.equal(okJob?.state, "completed");
      assert.equal(okJob?.attempts, 1);
      assert.equal((await store.getJob(bad))?.state, "dead");
      // Both runs of each job are in the history, the earlier one first.
      assert.deepEqual((await store.listAttempts(ok)).map((a) => [a.attempt, a.exitCode]), [
        [1, 0],
        [1, 0],
      ]);
      assert.deepEqual((await store.listAttempts(bad)).map((a) => [a.attempt, a.exitCode]), [
        [1, 3],
        [1, 3],
      ]);
    } finally {
      await store.close();
    }
  }));

Deno.test("delete removes jobs by id, all or none, and refuses a running one", () =>
  withQueue(async ({ dir, db }) => {
    const first = await enqueueIn(dir, db, "true", "--delay", "1h");
    const second = await enqueueIn(dir, db, "true", "--delay", "1h");
    assertRefused(await cli(["delete", first, "nosuch"], { db }), 1, "delete with a missing id");
    assert.equal((await showJob(db, first)).state, "pending", "nothing was deleted");

    const deleted = await cli(["delete", first, second], { db });
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout, "deleted 2 jobs\n");
    assertRefused(await cli(["show", first], { db }), 1, "show of a deleted job");

    const running = await enqueueIn(dir, db, held("job"));
    const kept = await enqueueIn(dir, db, "true", "--delay", "1h");
    const worker = startWorker(db);
    try {
      await waitForFile(`${dir}/job.started`);
      const refused = await cli(["delete", kept, running], { db });
      assertRefused(refused, 1, "delete of a running job");
      assert.match(refused.stderr, new RegExp(`'${running}' is running; kill it first`));
      assert.equal((await showJob(db, kept)).state, "pending", "nothing was deleted");
      await Deno.writeTextFile(`${dir}/job.release`, "");
      await waitForState(db, running, "completed");
      await stopWorker(worker);
    } finally {
      killProcess(worker);
      await Deno.writeTextFile(`${dir}/job.release`, "");
    }
  }));

Deno.test("delete --state with --older-than removes only jobs unchanged for that long", () =>
  withQueue(async ({ dir, db }) => {
    const oldDead = await enqueueIn(dir, db, "exit 1", "--max-retries", "0");
    const oldCompleted = await enqueueIn(dir, db, "true");
    await cliOk(["worker", "start", "--drain"], { db });
    const oldPending = await enqueueIn(dir, db, "true", "--delay", "1h");
    const newPending = await enqueueIn(dir, db, "true", "--delay", "1h");
    const newDead = await enqueueIn(dir, db, "true", "--after", oldDead);
    // Age three of them by two hours, as if they had been left alone that long.
    await ageJobs(db, [oldDead, oldCompleted, oldPending], 7_200_000);

    const deleted = await cli(["delete", "--state", "pending,dead", "--older-than", "1h"], { db });
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout, "deleted 2 jobs\n");
    assertRefused(await cli(["show", oldDead], { db }), 1, "show of the old dead job");
    assertRefused(await cli(["show", oldPending], { db }), 1, "show of the old pending job");
    assert.equal((await showJob(db, oldCompleted)).state, "completed");
    assert.equal((await showJob(db, newPending)).state, "pending");
    assert.equal((await showJob(db, newDead)).state, "dead");

    const all = await cli(["delete", "--state", "dead"], { db });
    assert.equal(all.stdout, "deleted 1 job\n");
    assertRefused(await cli(["show", newDead], { db }), 1, "show of the new dead job");
  }));

Deno.test("delete refuses ids with --state, --older-than alone, and states it cannot delete", () =>
  withQueue(async ({ dir, db }) => {
    const id = await enqueueIn(dir, db, "true", "--delay", "1h");
    for (
      const args of [
        ["delete", id, "--state", "pending"],
        ["delete", id, "--older-than", "1h"],
        ["delete", "--state", "processing"],
        ["delete", "--state", "pending,bogus"],
        ["delete", "--state", "pending", "--older-than", "a while"],
        ["delete"],
      ]
    ) {
      assertRefused(await cli(args, { db }), 2, args.join(" "));
    }
    assert.equal((await showJob(db, id)).state, "pending");
  }));

/**
 * Runs `queuectl <args>` on a real terminal (a private tmux server), waits
 * for `prompt`, types `answer` and Enter, and returns the screen and exit code.
 */
async function answerOnTerminal(
  db: string,
  args: string[],
  prompt: string,
  answer: string,
): Promise<{ screen: string; code: number }> {
  const tmux = new Tmux();
  try {
    await tmux.start(`NO_COLOR=1 ${cliCommandLine(args, db)}; echo "EXIT=$?"; sleep 60`, 200, 50);
    await tmux.waitForScreen(`the prompt '${prompt}'`, (text) => text.includes(prompt));
    await tmux.keys(answer, "Enter");
    const exited = await tmux.waitForScreen("the command to exit", (text) => /EXIT=\d+/.test(text));
    const screen = exited.join("\n");
    return { screen, code: Number(/EXIT=(\d+)/.exec(screen)![1]) };
  } finally {
    await tmux.kill();
  }
}

Deno.test("delete on a terminal asks first: n keeps the jobs, y deletes them", {
  ignore: !HAS_TMUX,
}, () =>
  withQueue(async ({ dir, db }) => {
    const ids = [
      await enqueueIn(dir, db, "true", "--delay", "1h"),
      await enqueueIn(dir, db, "true", "--delay", "1h"),
    ];
    const no = await answerOnTerminal(db, ["delete", ...ids], "Delete 2 jobs? [y/N]", "n");
    assert.equal(no.code, 1, no.screen);
    assert.match(no.screen, /queuectl: not confirmed: nothing deleted/);
    for (const id of ids) assert.equal((await showJob(db, id)).state, "pending");

    const yes = await answerOnTerminal(db, ["delete", ...ids], "Delete 2 jobs? [y/N]", "y");
    assert.equal(yes.code, 0, yes.screen);
    assert.match(yes.screen, /deleted 2 jobs/);
    for (const id of ids) assertRefused(await cli(["show", id], { db }), 1, `show ${id}`);

    // Not on a terminal (and with --yes on one) nothing is asked.
    const another = await enqueueIn(dir, db, "true", "--delay", "1h");
    const quiet = await cli(["delete", another], { db, stdin: "n\n" });
    assert.equal(quiet.stdout, "deleted 1 job\n");
  }));
