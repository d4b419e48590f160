/**
 * `queuectl top`, driven in a real terminal: tmux runs it in an 80×24 pane
 * on a private server, the test reads the screen with `capture-pane` and
 * types with `send-keys`. Plus the line fitting the screen relies on.
 */

import assert from "node:assert/strict";
import { displayWidth, fitWidth, sanitize } from "../lib/cli/output.ts";
import { layoutSections } from "../lib/cli/screen.ts";
import {
  assertRefused,
  cli,
  cliCommandLine,
  cliOk,
  enqueueIn,
  exitWithin,
  HAS_TMUX,
  killProcess,
  liveWorkers,
  processExists,
  readIfExists,
  showJob,
  startWorker,
  Tmux,
  waitFor,
  withQueue,
} from "./helpers.ts";

/** The shell command a pane runs: `top`, then a marker with its exit code, then a pause. */
function topCommand(db: string): string {
  return `${cliCommandLine(["top"], db)}; echo "TOP-EXITED $?"; sleep 60`;
}

/** Columns a captured row takes (the test's texts hold no wide characters). */
function columnsOf(line: string): number {
  return [...line].length;
}

/** Asserts that top's screen no longer shows, and the terminal is back as a shell wants it. */
async function assertRestored(tmux: Tmux, code: number): Promise<void> {
  const screen = await tmux.waitForScreen(
    "the shell to report top's exit",
    (text) => text.includes("TOP-EXITED"),
  );
  assert.ok(screen.includes(`TOP-EXITED ${code}`), `exit code ${code}:\n${screen.join("\n")}`);
  assert.equal(await tmux.display("#{alternate_on}"), "0", "left the alternate screen");
  assert.equal(await tmux.display("#{cursor_flag}"), "1", "the cursor is shown");
  assert.ok(await tmux.cooked(), "raw mode is off");
  const text = screen.join("\n");
  for (const gone of ["queuectl top", "Workers", "Latest failures", "q quit"]) {
    assert.ok(!text.includes(gone), `'${gone}' is still on the screen:\n${text}`);
  }
}

Deno.test("top shows live workers, their running jobs and the counts within 80x24, and q quits", {
  ignore: !HAS_TMUX,
}, () =>
  withQueue(async ({ dir, db }) => {
    const tmux = new Tmux();
    const longCommand = `echo $$ > group.pid; exec sleep 300 # ${"padding ".repeat(12)}end`;
    await enqueueIn(dir, db, longCommand, "--id", "long-run");
    await enqueueIn(dir, db, "exit 3", "--id", "fails", "--max-retries", "0");
    // A command holding escape sequences must not reach the terminal as such.
    await cliOk([
      "enqueue",
      JSON.stringify({ id: "later", command: "echo \u001b[2Jred", delay: "1h" }),
    ], {
      db,
    });
    const worker = startWorker(db, ["--count", "2"], { cwd: dir });
    try {
      await waitFor(
        "the long job to run",
        async () => (await showJob(db, "long-run")).state === "processing",
      );
      await waitFor(
        "the failing job to die",
        async () => (await showJob(db, "fails")).state === "dead",
      );
      const [live] = await liveWorkers(db);
      assert.ok(live, "a live worker");

      await tmux.start(topCommand(db));
      const screen = await tmux.waitForScreen(
        "top to show the worker, its job and the counts",
        (text) =>
          text.includes(live.id) && /long-run\s+\d/.test(text) &&
          /processing 1\b/.test(text) && /dead 1\b/.test(text) && /pending 1\b/.test(text),
      );
      const text = screen.join("\n");
      assert.ok(screen.length <= 24, `at most 24 rows, got ${screen.length}`);
      for (const line of screen) {
        assert.ok(columnsOf(line) <= 80, `a row wider than 80 columns: ${JSON.stringify(line)}`);
      }
      assert.match(text, /^queuectl top /m);
      assert.match(text, new RegExp(`pid ${live.pid}\\b`));
      assert.match(text, /1\/2 busy/);
      // The running job's line: its id, for how long, and its command cut with "…".
      const jobLine = screen.find((line) => line.includes("long-run"))!;
      assert.match(jobLine, /long-run\s+\d+(\.\d+)?(ms|s)\s+echo \$\$ > group\.pid/);
      assert.ok(jobLine.endsWith("…"), `the long command is cut: ${jobLine}`);
      assert.match(text, /Next scheduled\n\s+in \d+m\s+later\s+echo \?\[2Jred/);
      assert.match(
        text,
        /Latest failures\n\s+(just now|\d+[smhd] ago)\s+fails\s+#1\s+exited with code 3/,
      );
      assert.match(text, /jobs\/s over the last minute \(1 run: 0 ok, 1 failed\)/);
      assert.equal(await tmux.display("#{alternate_on}"), "1", "on the alternate screen");
      assert.equal(await tmux.cooked(), false, "raw mode is on");

      // Narrower and shorter: redrawn to fit, the counts split over two rows.
      await tmux.run("resize-window", "-t", tmux.target, "-x", "60", "-y", "15");
      const small = await tmux.waitForScreen(
        "top to redraw for 60x15",
        (text) => /^ {6}completed \d+/m.test(text),
      );
      assert.ok(small.length <= 15, `at most 15 rows, got ${small.length}`);
      for (const line of small) {
        assert.ok(columnsOf(line) <= 60, `a row wider than 60 columns: ${JSON.stringify(line)}`);
      }
      assert.match(small.join("\n"), /long-run/);

      await tmux.keys("q");
      await assertRestored(tmux, 0);
    } finally {
      await tmux.kill();
      worker.signal("SIGTERM");
      await waitFor("the worker to start stopping", () => /stopping/.test(worker.stdout()))
        .catch(() => {});
      worker.signal("SIGTERM");
      await exitWithin(worker, 20_000).catch(() => killProcess(worker));
      const group = Number((await readIfExists(`${dir}/group.pid`)).trim());
      if (group > 0 && processExists(group)) Deno.kill(-group, "SIGKILL");
    }
  }));

Deno.test(
  "Ctrl+C quits top and gives the terminal back",
  { ignore: !HAS_TMUX },
  () =>
    withQueue(async ({ dir, db }) => {
      const tmux = new Tmux();
      await enqueueIn(dir, db, "true", "--id", "waiting");
      try {
        await tmux.start(topCommand(db));
        await tmux.waitForScreen(
          "top to show the pending job",
          (text) => /^queuectl top /m.test(text) && /pending 1\b/.test(text),
        );
        await tmux.keys("C-c");
        await assertRestored(tmux, 0);
      } finally {
        await tmux.kill();
      }
    }),
);

Deno.test(
  "top gives the terminal back when it is sent SIGTERM",
  { ignore: !HAS_TMUX },
  () =>
    withQueue(async ({ db }) => {
      const tmux = new Tmux();
      try {
        await tmux.start(topCommand(db));
        await tmux.waitForScreen("top to draw", (text) => /^queuectl top /m.test(text));
        const shell = await tmux.display("#{pane_pid}");
        const children = (await Deno.readTextFile(`/proc/${shell}/task/${shell}/children`)).trim();
        const pid = Number(children.split(" ")[0]);
        assert.ok(pid > 0, `top's pid under the pane's shell ${shell}: '${children}'`);
        Deno.kill(pid, "SIGTERM");
        await assertRestored(tmux, 143);
      } finally {
        await tmux.kill();
      }
    }),
);

Deno.test("top refuses to run without a terminal and points to status and stats", () =>
  withQueue(async ({ db }) => {
    const result = await cli(["top"], { db });
    assertRefused(result, 2, "top without a terminal");
    assert.match(result.stderr, /status/);
    assert.match(result.stderr, /stats/);
  }));

Deno.test("screen lines are cut to the width with an ellipsis, wide characters counted as two", () => {
  assert.equal(fitWidth("abcdef", 6), "abcdef");
  assert.equal(fitWidth("abcdefg", 6), "abcde…");
  assert.equal(displayWidth("日本語"), 6);
  assert.equal(fitWidth("日本語x", 6), "日本…");
  assert.equal(
    displayWidth(fitWidth("a日本語", 5)),
    4,
    "a wide character never straddles the edge",
  );
  // Colours take no columns and are reset after a cut.
  assert.equal(displayWidth("\x1b[31mred\x1b[0m"), 3);
  assert.equal(fitWidth("\x1b[31mredder\x1b[0m", 4), "\x1b[31mred…\x1b[0m");
  assert.equal(sanitize("a\x1b[2Jb\tc\nd\u202ee"), "a?[2Jb c d?e");
});

Deno.test("screen sections share the rows, each showing its heading and what is left out", () => {
  const sections = [
    { heading: "A", items: ["a1", "a2", "a3", "a4"] },
    { heading: "B", items: ["b1"] },
    { heading: "C", items: ["c1", "c2", "c3"] },
  ];
  assert.deepEqual(layoutSections(sections, 8), [
    ["A  (2 more not shown)", "a1", "a2"],
    ["B", "b1"],
    ["C  (1 more not shown)", "c1", "c2"],
  ]);
  assert.deepEqual(layoutSections(sections, 11), [["A", "a1", "a2", "a3", "a4"], ["B", "b1"], [
    "C",
    "c1",
    "c2",
    "c3",
  ]]);
  assert.deepEqual(layoutSections(sections, 2), [["A"], ["B"]]);
  // A `first` section takes what it needs once the others show a few items.
  const workers = { heading: "W", items: ["w1", "w2", "w3", "w4", "w5"], first: true };
  const failures = { heading: "F", items: ["f1", "f2", "f3", "f4", "f5"], partial: true };
  assert.deepEqual(layoutSections([workers, failures], 10), [
    ["W", "w1", "w2", "w3", "w4", "w5"],
    ["F  (more not shown)", "f1", "f2", "f3"],
  ]);
  assert.deepEqual(layoutSections([workers, failures], 7), [
    ["W  (2 more not shown)", "w1", "w2", "w3"],
    ["F  (more not shown)", "f1", "f2"],
  ]);
});
