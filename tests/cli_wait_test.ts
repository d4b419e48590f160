/**
 * `queuectl wait` with real worker processes: exit codes for jobs that end
 * either way, timeouts, `--all`, bad usage, Ctrl+C, and the progress bar,
 * which is drawn on a terminal (a pty made by `script`) and nowhere else.
 */

import assert from "node:assert/strict";
import {
  assertRefused,
  cli,
  cliCommandLine,
  enqueue,
  HAS_SCRIPT,
  hasOpen,
  jobCounts,
  killProcess,
  onPty,
  showJob,
  spawnCli,
  waitFor,
  withQueue,
  withWorker,
} from "./helpers.ts";

const ESC = "\x1b";

/** Two workers, so that jobs waited for together run together. */
const WORKERS = ["--count", "2"];

Deno.test("wait exits 0 once every job has completed, and prints one summary line", () =>
  withQueue(async ({ db }) => {
    const slow = await enqueue(db, "sleep 0.5");
    const quick = await enqueue(db, "true");
    await withWorker(db, WORKERS, async () => {
      const result = await cli(["wait", slow, quick], { db });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "2 completed, 0 dead\n");
      assert.equal(result.stderr, "");
      // It returned only once both had finished.
      assert.equal((await showJob(db, slow)).state, "completed");
      assert.equal((await showJob(db, quick)).state, "completed");
    });
  }));

Deno.test("wait exits 1 when one of the jobs ends dead, naming it", () =>
  withQueue(async ({ db }) => {
    const good = await enqueue(db, "sleep 0.3");
    const bad = await enqueue(db, "exit 5", "--id", "bad-one", "--max-retries", "0");
    await withWorker(db, WORKERS, async () => {
      const result = await cli(["wait", good, bad, good], { db });
      assert.equal(result.code, 1, result.stderr);
      assert.equal(result.stdout, "1 completed, 1 dead (dead: bad-one)\n");
      assert.equal((await showJob(db, bad)).state, "dead");
    });
  }));

Deno.test("wait exits 124 when the timeout passes with a job unfinished", () =>
  withQueue(async ({ db }) => {
    // No worker runs, so the job stays pending.
    const id = await enqueue(db, "true");
    const result = await cli(["wait", id, "--timeout", "300ms"], { db });
    assert.equal(result.code, 124);
    assert.equal(result.stdout, "0 completed, 0 dead, 1 unfinished\n");
    assert.match(result.stderr, /^queuectl: timed out after 300ms with 1 job unfinished\n$/);
    assert.equal((await showJob(db, id)).state, "pending");
  }));

Deno.test("wait refuses missing ids (exit 1) and bad usage (exit 2)", () =>
  withQueue(async ({ db }) => {
    const id = await enqueue(db, "true");
    assertRefused(await cli(["wait", id, "nope"], { db }), 1, "a missing id");
    assert.match((await cli(["wait", "nope"], { db })).stderr, /no job with id 'nope'/);
    assertRefused(await cli(["wait", "bad id!"], { db }), 2, "a malformed id");
    assertRefused(await cli(["wait"], { db }), 2, "no ids");
    assertRefused(await cli(["wait", "--all", id], { db }), 2, "ids with --all");
    assertRefused(await cli(["wait", id, "--timeout", "soon"], { db }), 2, "a bad timeout");
    assert.equal((await showJob(db, id)).state, "pending");
  }));

Deno.test("wait --all returns once no job is waiting or running, 1 if one died meanwhile", () =>
  withQueue(async ({ db, dir }) => {
    const empty = await cli(["wait", "--all"], { db });
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout, "0 completed, 0 dead\n");

    for (const delay of ["0.2", "0.4", "0.6"]) await enqueue(db, `sleep ${delay}`);
    await withWorker(db, WORKERS, async () => {
      const ok = await cli(["wait", "--all"], { db });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, "3 completed, 0 dead\n");
      const counts = await jobCounts(db);
      assert.deepEqual([counts.pending, counts.processing, counts.completed], [0, 0, 3]);

      // The failing job waits for a gate that opens only once `wait` has the
      // database open: it must die after `wait` took its starting counts.
      const gate = `${dir}/gate`;
      await enqueue(db, "sleep 0.3");
      await enqueue(
        db,
        `while [ ! -e '${gate}' ]; do sleep 0.02; done; sleep 0.2; exit 1`,
        "--max-retries",
        "0",
      );
      const waiting = spawnCli(["wait", "--all"], { db });
      try {
        const dbFile = Deno.realPathSync(db);
        await waitFor("wait to open the database", () => hasOpen(waiting.pid, dbFile));
      } finally {
        // Opened even on failure: the gated job must not loop on after the test.
        await Deno.writeTextFile(gate, "");
      }
      try {
        assert.equal(await waiting.exit(), 1, waiting.stderr());
        // Counted from the start of this wait: the earlier three are not in it, and the
        // sleep 0.3 may already have completed before it began.
        assert.match(waiting.stdout(), /^[01] completed, 1 dead\n$/);
      } finally {
        killProcess(waiting);
      }
    });
  }));

for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const) {
  Deno.test(`${signal} stops wait with exit ${code} and leaves the job alone`, () =>
    withQueue(async ({ db }) => {
      const id = await enqueue(db, "true");
      const waiting = spawnCli(["wait", id], { db });
      try {
        // `wait` listens before it opens the database. (Deno catches these
        // signals from its start, so /proc cannot tell when queuectl does.)
        const dbFile = Deno.realPathSync(db);
        await waitFor("wait to open the database", () => hasOpen(waiting.pid, dbFile));
        waiting.signal(signal);
        const status = await waiting.status();
        assert.equal(status.code, code);
        // It exited on its own, not killed by the signal, so a progress bar was cleaned up.
        assert.equal(status.signal, null);
        assert.match(waiting.stderr(), /stopped waiting/);
        assert.equal((await showJob(db, id)).state, "pending");
      } finally {
        killProcess(waiting);
      }
    }));
}

Deno.test({
  name: "wait draws a progress bar on a terminal and none into a pipe",
  ignore: !HAS_SCRIPT,
  fn: () =>
    withQueue(async ({ db }) => {
      const first = await enqueue(db, "sleep 0.8");
      const second = await enqueue(db, "sleep 1.2");
      await withWorker(db, WORKERS, async () => {
        const tty = await onPty(cliCommandLine(["wait", first, second], db));
        assert.equal(tty.code, 0, tty.screen);
        assert.match(tty.screen, /█/, "the bar");
        assert.match(tty.screen, /\d\/2 \| \d completed, 0 dead \| \S+\/s \| ETA \S+/);
        assert.ok(tty.screen.includes(ESC), "cursor control");
        assert.match(tty.screen, /2 completed, 0 dead\r?\n/, "the summary");
      });

      const third = await enqueue(db, "sleep 0.5");
      await withWorker(db, WORKERS, async () => {
        const piped = await cli(["wait", third], { db });
        assert.equal(piped.code, 0, piped.stderr);
        assert.equal(piped.stdout, "1 completed, 0 dead\n");
        assert.equal(piped.stderr, "");
        assert.ok(!piped.stdout.includes(ESC) && !piped.stderr.includes(ESC), "escape codes");
        assert.doesNotMatch(piped.stdout + piped.stderr, /[█░]/);
      });
    }),
});
