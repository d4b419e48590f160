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
  cliOk,
  type CliProcess,
  drain,
  enqueue,
  HAS_SCRIPT,
  HAS_TMUX,
  hasQueueOpen,
  jobCounts,
  killProcess,
  onPty,
  showJob,
  shQuote,
  spawnCli,
  Tmux,
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
    assert.equal(
      result.stderr,
      "queuectl: timed out after 300ms with 1 job unfinished: " +
        "no worker is running (start one: queuectl worker start)\n",
    );
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

/** A job that waits for the file `gate` to exist, then for 0.3 s more, then exits `code`. */
function gated(gate: string, code = 0): string {
  return `while [ ! -e '${gate}' ]; do sleep 0.02; done; sleep 0.3; exit ${code}`;
}

/** Starts `wait <args>` in the background and waits until it has the database open. */
async function startWaiting(db: string, args: string[]): Promise<CliProcess> {
  const waiting = spawnCli(["wait", ...args], { db });
  await waitFor("wait to open the database", () => hasQueueOpen(waiting.pid, db));
  return waiting;
}

Deno.test("wait --all with nothing waiting or running says so, and when the last run ended", () =>
  withQueue(async ({ db }) => {
    const empty = await cli(["wait", "--all"], { db });
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(
      empty.stdout,
      "nothing to wait for: no job is waiting or running (no job has run yet)\n",
    );
    await enqueue(db, "true", "--id", "first");
    await enqueue(db, "true", "--id", "second");
    await drain(db);
    const done = await cli(["wait", "--all"], { db });
    assert.equal(done.code, 0, done.stderr);
    assert.match(
      done.stdout,
      /^nothing to wait for: no job is waiting or running \(the last run ended (just now|\ds ago): job 'second'\)\n$/,
    );
    assert.equal(done.stderr, "");
  }));

Deno.test("wait --all counts the jobs unfinished when it began, not those finished before", () =>
  withQueue(async ({ db, dir }) => {
    // Three jobs finish before the wait; it must not count them.
    for (const id of ["early-1", "early-2", "early-3"]) await enqueue(db, "true", "--id", id);
    await drain(db);
    // Four more cannot finish before their gate opens, after the wait has begun.
    const gate = `${dir}/gate`;
    for (const code of [0, 0, 0]) await enqueue(db, gated(gate, code));
    await enqueue(db, gated(gate, 3), "--id", "fails", "--max-retries", "0");
    await withWorker(db, WORKERS, async () => {
      let waiting: CliProcess | undefined;
      try {
        waiting = await startWaiting(db, ["--all"]);
      } finally {
        // Opened even on failure: the gated jobs must not loop on after the test.
        await Deno.writeTextFile(gate, "");
      }
      try {
        assert.equal(await waiting.exit(), 1, waiting.stderr());
        assert.match(
          waiting.stdout(),
          /^waited \d+(\.\d)?m?s for 4 jobs: 3 completed, 1 dead\n$/,
          "the four unfinished when it began, and only them",
        );
        assert.equal(waiting.stderr(), "");
      } finally {
        killProcess(waiting);
      }
      const counts = await jobCounts(db);
      assert.deepEqual([counts.completed, counts.dead], [6, 1]);
    });
  }));

Deno.test({
  name:
    "wait --all's bar names paused queues and later jobs instead of an ETA, and counts arrivals",
  ignore: !HAS_TMUX,
  fn: () =>
    withQueue(async ({ db, dir }) => {
      const gate = `${dir}/gate`;
      await cliOk(["pause", "mail"], { db });
      await enqueue(db, "true", "--id", "mailed", "--queue", "mail");
      await enqueue(db, "true", "--id", "later", "--delay", "1h");
      await enqueue(db, gated(gate), "--id", "gated");
      const tmux = new Tmux();
      try {
        const scenario = async () => {
          await waitFor("the gated job to run", async () =>
            (await showJob(db, "gated")).state === "processing");
          await tmux.start(
            `${cliCommandLine(["wait", "--all"], db)}; echo "WAIT-EXITED $?"; sleep 60`,
            120,
          );
          // While a job runs, the bar has a rate and an ETA.
          await tmux.waitForScreen("the bar", (text) =>
            /0\/3 \| 0 completed, 0 dead \|/.test(text));
          await Deno.writeTextFile(gate, "");
          const stalled = await tmux.waitForScreen(
            "the bar to say why nothing moves",
            (text) => text.includes("1/3 | 1 completed, 0 dead | 2 left:"),
          );
          const line = stalled.join("\n");
          assert.match(line, /2 left: 1 in paused queue mail, 1 scheduled in 59m\d\ds/);
          assert.doesNotMatch(line, /ETA/, "no frozen ETA");

          // Jobs added while it waits are waited for too.
          await enqueue(db, "true", "--id", "added-1");
          await enqueue(db, "true", "--id", "added-2");
          await tmux.waitForScreen("the added jobs", (text) => text.includes("3/5 | 3 completed"));
          await cliOk(["resume", "mail"], { db });
          const resumed = await tmux.waitForScreen(
            "the paused job to run",
            (text) => text.includes("4/5 | 4 completed, 0 dead | 1 left: 1 scheduled in 59m"),
          );
          assert.doesNotMatch(resumed.join("\n"), /paused/);
          // Deleted, the job scheduled for later is no longer waited for.
          await cliOk(["delete", "later", "--yes"], { db });
          const done = (await tmux.waitForScreen(
            "wait to end",
            (text) => text.includes("WAIT-EXITED"),
          )).join("\n");
          assert.match(
            done,
            /^waited \d+(\.\d)?m?s for 4 jobs: 4 completed, 0 dead \(3 were waiting or running when it began\)$/m,
            "gated, mailed and the two added; not the deleted one",
          );
          assert.match(done, /^WAIT-EXITED 0$/m);
        };
        await withWorker(db, WORKERS, async () => {
          // Opened before the worker is stopped, even on failure: a worker stopping gracefully
          // waits for its running job, and a gated job orphaned after that would loop on.
          try {
            await scenario();
          } finally {
            await Deno.writeTextFile(gate, "").catch(() => {});
          }
        });
      } finally {
        await Deno.writeTextFile(gate, "").catch(() => {});
        await tmux.kill();
      }
    }),
});

Deno.test({
  name: "a store module wait first needs while its bar is up leaves the bar alone",
  ignore: !HAS_TMUX || !HAS_SCRIPT,
  fn: () =>
    withQueue(async ({ db, dir }) => {
      // The store compiles some concerns on first use (lib/store/sqlite_store.ts). Deno clears
      // the terminal's line (ESC[0G ESC[2K ESC[J) when it prepares a module that the program's
      // graph lacks, and that wiped the bar; tmux gives `script` a sized terminal, as a user's is.
      const gate = `${dir}/gate`;
      const raw = `${dir}/terminal.raw`;
      await enqueue(db, gated(gate), "--id", "gated");
      const tmux = new Tmux();
      try {
        await withWorker(db, WORKERS, async () => {
          try {
            await waitFor("the gated job to run", async () =>
              (await showJob(db, "gated")).state === "processing");
            const waitAll = cliCommandLine(["wait", "--all"], db);
            await tmux.start(`script -qfc ${shQuote(waitAll)} ${shQuote(raw)}; sleep 60`, 120);
            await tmux.waitForScreen("the bar", (text) =>
              text.includes("0/1 | 0 completed"));
            // A job for later makes wait ask when the next one is due: the claim planner's
            // first use in this process, with the bar up.
            await enqueue(db, "true", "--id", "later", "--delay", "1h");
            await Deno.writeTextFile(gate, "");
            await tmux.waitForScreen("the later job", (text) => text.includes("1 scheduled in"));
            await cliOk(["delete", "later", "--yes"], { db });
            await tmux.waitForScreen("wait to end", (text) => /^waited /m.test(text));
          } finally {
            await Deno.writeTextFile(gate, "").catch(() => {});
          }
        });
        const terminal = await Deno.readTextFile(raw);
        const barAt = terminal.indexOf("0/1 | 0 completed");
        assert.ok(barAt !== -1, "the bar was drawn");
        assert.ok(terminal.includes("1 scheduled in"), "the claim planner was asked");
        assert.ok(
          !terminal.slice(barAt).includes(`${ESC}[0G${ESC}[2K${ESC}[J`),
          "Deno cleared the line while the bar was up",
        );
      } finally {
        await tmux.kill();
      }
    }),
});

for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const) {
  Deno.test(`${signal} stops wait with exit ${code} and leaves the job alone`, () =>
    withQueue(async ({ db }) => {
      const id = await enqueue(db, "true");
      const waiting = spawnCli(["wait", id], { db });
      try {
        // `wait` listens before it opens the database. (Deno catches these
        // signals from its start, so /proc cannot tell when queuectl does.)
        await waitFor("wait to open the database", () => hasQueueOpen(waiting.pid, db));
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
