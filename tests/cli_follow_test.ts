/**
 * Following a job's output live with real worker processes: `logs --follow`
 * (lines arrive while the job runs, in order, once each, through retries,
 * with a note when output was too fast to keep up with) and `enqueue --wait`
 * (the job's output, then its exit code).
 */

import assert from "node:assert/strict";
import {
  assertRefused,
  cli,
  cliOk,
  enqueue,
  killProcess,
  showJob,
  spawnCli,
  waitFor,
  withQueue,
  withWorker,
} from "./helpers.ts";

const LINES = 8;
const lineJob = `for i in $(seq 1 ${LINES}); do echo "line $i"; echo "err $i" >&2; sleep 0.2; done`;
const expected = (prefix: string) => Array.from({ length: LINES }, (_, i) => `${prefix} ${i + 1}`);

Deno.test("logs --follow prints a job's lines while it runs, in order, once each", () =>
  withQueue(async ({ db }) => {
    const id = await enqueue(db, lineJob);
    const follower = spawnCli(["logs", id, "--follow"], { db });
    try {
      // The job has not started: the follower waits for it.
      await waitFor("the follower to wait", () => follower.stderr().includes("waiting for it"));
      await withWorker(db, [], async () => {
        await waitFor("the first line", () => follower.stdout().includes("line 1\n"));
        const stateAtFirstLine = (await showJob(db, id)).state;
        assert.equal(stateAtFirstLine, "processing", "a line arrived before the job ended");
        const status = await follower.status();
        assert.equal(status.code, 0, follower.stderr());
        assert.equal((await showJob(db, id)).state, "completed");
      });
      assert.deepEqual(follower.stdout().trimEnd().split("\n"), expected("line"));
      const errLines = follower.stderr().split("\n").filter((l) => l.startsWith("err "));
      assert.deepEqual(errLines, expected("err"));
    } finally {
      killProcess(follower);
    }
  }));

Deno.test("logs --follow follows a job through its retries", () =>
  withQueue(async ({ dir, db }) => {
    await cliOk(["config", "set", "backoff-base", "1"], { db });
    // Each run waits for the gate, so the first is still running when the follower attaches,
    // however slowly the follower starts on a loaded machine.
    const gate = `${dir}/gate`;
    const id = await enqueue(
      db,
      `echo "run $QUEUECTL_ATTEMPT"; while [ ! -e ${gate} ]; do sleep 0.05; done; ` +
        'echo "end $QUEUECTL_ATTEMPT"; [ "$QUEUECTL_ATTEMPT" -ge 2 ]',
      "--max-retries",
      "2",
    );
    await withWorker(db, [], async () => {
      await waitFor("the job to start", async () => (await showJob(db, id)).state === "processing");
      const follower = spawnCli(["logs", id, "-f"], { db });
      await waitFor("the follower to show the first run", () => follower.stdout() === "run 1\n");
      await Deno.writeTextFile(gate, "");
      assert.equal(await follower.exit(), 0, follower.stderr());
      assert.equal(follower.stdout(), "run 1\nend 1\nrun 2\nend 2\n");
      assert.match(follower.stderr(), /^queuectl: attempt 1 of 3 failed \(exited with code 1\)/m);
      assert.equal((await showJob(db, id)).state, "completed");
    });
  }));

Deno.test("logs --follow of a finished job prints its latest output and exits 0", () =>
  withQueue(async ({ db }) => {
    const id = await enqueue(db, "echo done; echo oops >&2; exit 2", "--max-retries", "0");
    await withWorker(db, [], async () => {
      await waitFor("the job to die", async () => (await showJob(db, id)).state === "dead");
    });
    const result = await cli(["logs", id, "--follow"], { db });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "done\n");
    assert.equal(result.stderr, "oops\n");
    assertRefused(await cli(["logs", "nope", "--follow"], { db }), 1, "a missing job");
  }));

Deno.test("logs --follow notes the bytes it skipped when output outran it, and never repeats any", () =>
  withQueue(async ({ db }) => {
    // 200 KiB at once, far more than the 64 KiB a live read holds, then a last line.
    const burst = 200 * 1024;
    const id = await enqueue(db, `yes 0123456789abcde | head -c ${burst}; sleep 0.6; echo end`);
    const follower = spawnCli(["logs", id, "--follow"], { db });
    try {
      await waitFor("the follower to wait", () => follower.stderr().includes("waiting for it"));
      await withWorker(db, [], async () => {
        assert.equal(await follower.exit(), 0, follower.stderr());
      });
      const skipped = /queuectl: (\d+) bytes of stdout were skipped/.exec(follower.stderr());
      assert.ok(skipped, `a note on skipped bytes: ${follower.stderr()}`);
      const printed = new TextEncoder().encode(follower.stdout()).length;
      assert.equal(Number(skipped[1]) + printed, burst + "end\n".length, "no gap, no repeat");
      assert.ok(
        follower.stdout().endsWith("\n0123456789abcde\nend\n"),
        "the tail and the last line",
      );
    } finally {
      killProcess(follower);
    }
  }));

Deno.test("logs of a running job prints its output so far and says it still runs", () =>
  withQueue(async ({ db, dir }) => {
    const gate = `${dir}/gate`;
    const waitForGate = `while [ ! -e '${gate}' ]; do sleep 0.02; done`;
    await enqueue(db, `echo first; echo warning >&2; ${waitForGate}; echo second`, "--id", "talks");
    await enqueue(db, `${waitForGate}; echo late`, "--id", "quiet");
    await withWorker(db, ["--count", "2"], async () => {
      try {
        // Workers store a running job's output every 100 ms while it prints.
        const talks = await waitFor("the first line of the running job", async () => {
          const result = await cli(["logs", "talks"], { db });
          return result.stdout === "first\n" && result.stderr.endsWith("warning\n")
            ? result
            : undefined;
        });
        assert.equal(talks.code, 0, talks.stderr);
        assert.equal(
          talks.stderr,
          "queuectl: job 'talks' is still running (attempt 1 of 4); this is its output so far; " +
            "'queuectl logs talks -f' follows it\nwarning\n",
        );
        assert.equal((await showJob(db, "talks")).state, "processing", "it ran all along");

        await waitFor(
          "the quiet job to run",
          async () => (await showJob(db, "quiet")).state === "processing",
        );
        const quiet = await cli(["logs", "quiet"], { db });
        assert.equal(quiet.code, 0, quiet.stderr);
        assert.equal(quiet.stdout, "");
        assert.equal(
          quiet.stderr,
          "queuectl: job 'quiet' is still running (attempt 1 of 4) and has printed nothing yet; " +
            "'queuectl logs quiet -f' follows it\n",
        );
      } finally {
        await Deno.writeTextFile(gate, "");
      }
      await waitFor(
        "both jobs to complete",
        async () =>
          (await showJob(db, "talks")).state === "completed" &&
          (await showJob(db, "quiet")).state === "completed",
      );
    });
    const finished = await cli(["logs", "talks"], { db });
    assert.equal(finished.code, 0, finished.stderr);
    assert.equal(finished.stdout, "first\nsecond\n");
    assert.equal(finished.stderr, "warning\n", "no note once it has finished");
  }));

Deno.test("enqueue --wait prints the job's output and exits with its exit code", () =>
  withQueue(async ({ db }) => {
    await withWorker(db, [], async () => {
      const ok = await cli(["enqueue", "--wait", "--id", "ok", lineJob], { db });
      assert.equal(ok.code, 0, ok.stderr);
      assert.deepEqual(ok.stdout.trimEnd().split("\n"), expected("line"));
      assert.match(ok.stderr, /^queuectl: enqueued ok\n/);
      assert.deepEqual(ok.stderr.split("\n").filter((l) => l.startsWith("err ")), expected("err"));
      assert.equal((await showJob(db, "ok")).state, "completed");

      const bad = await cli(
        ["enqueue", "--wait", "--id", "bad", "--max-retries", "0", "echo before; exit 3"],
        { db },
      );
      assert.equal(bad.code, 3, bad.stderr);
      assert.equal(bad.stdout, "before\n");
      assert.match(bad.stderr, /job 'bad' is dead: exited with code 3/);

      // A job that dies without an exit code of its own (it never ran) gives 1.
      const orphan = await cli(["enqueue", "--wait", "--after", "bad", "true"], { db });
      assert.equal(orphan.code, 1, orphan.stderr);
    });
  }));

Deno.test("enqueue --wait refuses --file, and Ctrl+C leaves the job queued", () =>
  withQueue(async ({ dir, db }) => {
    await Deno.writeTextFile(`${dir}/jobs.jsonl`, '{"command":"true"}\n');
    const refused = await cli(["enqueue", "--wait", "--file", `${dir}/jobs.jsonl`], { db });
    assertRefused(refused, 2, "--wait with --file");

    // No worker runs: the job stays pending while enqueue waits for it.
    const waiting = spawnCli(["enqueue", "--wait", "--id", "later", "echo hi"], { db });
    try {
      // It announces the id only once it listens for Ctrl+C. (Deno catches
      // SIGINT from its start, so /proc cannot tell when queuectl does.)
      await waitFor("the enqueued id", () => waiting.stderr().includes("enqueued later"));
      waiting.signal("SIGINT");
      const status = await waiting.status();
      assert.equal(status.code, 130);
      assert.equal(status.signal, null, "it exited on its own");
      assert.match(waiting.stderr(), /stopped waiting/);
      assert.equal((await showJob(db, "later")).state, "pending");
    } finally {
      killProcess(waiting);
    }
  }));
