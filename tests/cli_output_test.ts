/**
 * How `list`, `dlq list`, `status` and `show` read for people: tables fitted
 * to the terminal, long commands cut with `…` but ids and queue names never
 * cut, colours on a terminal only, relative times for people and ISO 8601 in
 * JSON, per-queue counts, and a job's run history; and that printing a table
 * loads no npm package. Terminals are real ptys made by `script`.
 */

import assert from "node:assert/strict";
import type { JobJson } from "../lib/job.ts";
import {
  displayWidth,
  fitWidth,
  formatTable,
  paintStateCell,
  sanitize,
} from "../lib/cli/output.ts";
import {
  cli,
  cliCommandLine,
  cliOk,
  denoDir,
  HAS_SCRIPT,
  onPty,
  openQueueStore,
  showJob,
  shQuote,
  withQueue,
} from "./helpers.ts";

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;
// deno-lint-ignore no-control-regex
const ANY_ESCAPE = /\x1b/;

/** `text` in the ANSI colour `code`, as a terminal gets it. */
function painted(code: number, text: string): string {
  return `\x1b[${code}m${text}\x1b[0m`;
}

/** Text without colour codes. */
function plain(text: string): string {
  return text.replace(ANSI, "");
}

/** What a run on a terminal printed to stdout (with `\n` line ends) and its exit code. */
interface TerminalResult {
  code: number;
  stdout: string;
}

/**
 * Runs `queuectl <args>` with stdout (and stdin) on a pty `columns` wide,
 * made by `script`. Stderr goes to a file so that only stdout is read. The
 * environment is cleared, so NO_COLOR is set only when `env` sets it.
 */
async function onTerminal(
  dir: string,
  db: string,
  args: string[],
  options: { columns?: number; env?: Record<string, string> } = {},
): Promise<TerminalResult> {
  const stderrFile = shQuote(`${dir}/terminal-stderr.txt`);
  const command = `stty cols ${options.columns ?? 80} rows 40; exec ${
    cliCommandLine(args, db)
  } 2>>${stderrFile}`;
  const { code, screen } = await onPty(command, {
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? dir,
      TERM: "xterm-256color",
      DENO_DIR: await denoDir(),
      DENO_NO_UPDATE_CHECK: "1",
      ...options.env,
    },
  });
  return { code, stdout: screen.replaceAll("\r\n", "\n") };
}

/** The lines of a table, without the final empty one. */
function lines(text: string): string[] {
  return text.replace(/\n$/, "").split("\n");
}

/** A command longer than any terminal line here. */
const LONG_COMMAND = `echo ${"long-argument ".repeat(7)}end`;

/** Enqueues jobs with short, long, wide-character and emoji commands. */
async function varietyQueue(db: string): Promise<void> {
  await cliOk(["enqueue", "--file", "-"], {
    db,
    stdin: [
      { id: "short", command: "true" },
      { id: "long", command: LONG_COMMAND, priority: 5 },
      { id: "wide", command: "echo 日本語のコマンド 🚀🚀 done" },
      { id: "multi", command: "echo one\necho two\techo three" },
    ].map((spec) => JSON.stringify(spec)).join("\n"),
  });
}

Deno.test("displayWidth counts wide characters and emoji as two columns and colour codes as none", () => {
  assert.equal(displayWidth("abc"), 3);
  assert.equal(displayWidth("日本語"), 6);
  assert.equal(displayWidth("🚀"), 2);
  assert.equal(displayWidth("👨‍👩‍👧"), 2, "an emoji family is one picture");
  assert.equal(displayWidth("🇫🇷"), 2, "a flag is one picture");
  assert.equal(displayWidth("e\u0301"), 1, "a combining accent takes no column");
  assert.equal(displayWidth("\x1b[32mok\x1b[0m"), 2);
});

Deno.test("fitWidth and truncate cut to a width with … and never leave a colour on", () => {
  assert.equal(fitWidth("hello world", 20), "hello world", "short text is kept");
  assert.equal(fitWidth("hello world", 6), "hello…");
  assert.equal(displayWidth(fitWidth("hello world", 6)), 6);
  const wide = fitWidth("日本語のコマンド", 6);
  assert.ok(displayWidth(wide) <= 6, `cut at a whole character: ${wide}`);
  assert.ok(wide.endsWith("…"));
  const coloured = fitWidth("\x1b[31mred and long\x1b[0m", 5);
  assert.equal(plain(coloured), "red …");
  assert.ok(coloured.endsWith("\x1b[0m"), "a cut colour is reset");
  assert.equal(
    sanitize("a\r\nb\tc\x1b[2Jd\u202ee"),
    "a b c?[2Jd?e",
    "line breaks and tabs become spaces; escapes and bidi overrides become ?",
  );
});

Deno.test("a table stays aligned with colour codes and wide characters in its cells", () => {
  const table = formatTable(
    [{ header: "STATE", paint: paintStateCell }, { header: "NOTE" }, { header: "AFTER" }],
    [
      ["completed", "日本語", "x"],
      ["dead", "🚀 launch 👨‍👩‍👧", "y"],
      ["pending", "plain", "z"],
    ],
    { width: null, colour: true },
  );
  assert.ok(table.includes(painted(32, "completed")), "states are painted");
  const rows = lines(table).map(plain);
  // Where the last column starts, in terminal columns, must be the same on every line.
  const starts = rows.map((row) => displayWidth(row.slice(0, row.search(/(AFTER|[xyz])$/))));
  assert.equal(new Set(starts).size, 1, `aligned columns:\n${rows.join("\n")}`);
});

Deno.test("a table fitted to a narrow width cuts long values first, then leaves columns out", () => {
  const head = [
    { header: "ID" },
    { header: "PRI", drop: 1 },
    { header: "ERROR", cut: 2, minWidth: 8 },
    { header: "COMMAND", cut: 1, minWidth: 10 },
  ];
  const rows = [["job-1", "0", "exited with code 3: something broke", "x".repeat(80)]];
  const wide = lines(formatTable(head, rows, { width: 200, colour: false }));
  assert.ok(wide[1].endsWith("x".repeat(80)), "a wide terminal shows everything");

  const fitted = lines(formatTable(head, rows, { width: 60, colour: false }));
  assert.ok(fitted.every((line) => displayWidth(line) <= 60), fitted.join("\n"));
  assert.match(fitted[0], /^ID\s+PRI\s+ERROR\s+COMMAND$/);
  assert.match(fitted[1], /exited with code 3: something broke\s+x+…$/, "the command is cut first");

  const narrow = lines(formatTable(head, rows, { width: 30, colour: false }));
  assert.ok(narrow.every((line) => displayWidth(line) <= 30), narrow.join("\n"));
  assert.doesNotMatch(narrow[0], /PRI/, "PRI is left out before values get too short");
  // The command is at its narrowest (10) before the error is cut too.
  assert.match(narrow[1], /^job-1\s+exited wit…\s+x{9}…$/);

  const piped = lines(
    formatTable([{ header: "C", pipedMax: 12 }], rows.map((r) => [r[3]]), {
      width: null,
      colour: false,
    }),
  );
  assert.equal(piped[1], `${"x".repeat(11)}…`, "without a width, pipedMax still cuts");
});

Deno.test("a table never cuts a column not marked cut: ids stay whole, long values go first", () => {
  const id = `job-${"0123456789".repeat(4)}`;
  const head = [
    { header: "ID" },
    { header: "STATE" },
    { header: "QUEUE", drop: 1 },
    { header: "COMMAND", cut: 1, minWidth: 10 },
  ];
  const rows = [[id, "pending", "mail", "echo a long command"], ["b", "dead", "default", "true"]];
  const width = (text: string) => Math.max(...lines(text).map(displayWidth));
  const idCell = (text: string) => text.padEnd(id.length);

  // ID and STATE fit 62 columns with the command cut to its header's width (7), not with QUEUE too.
  const fitted = lines(formatTable(head, rows, { width: 62, colour: false }));
  assert.deepEqual(fitted, [
    `${idCell("ID")}  STATE    COMMAND`,
    `${id}  pending  echo a…`,
    `${idCell("b")}  dead     true`,
  ]);
  // Not even the command's header fits: the command is left out rather than a line cut.
  const narrow = lines(formatTable(head, rows, { width: 60, colour: false }));
  assert.deepEqual(narrow, [`${idCell("ID")}  STATE`, `${id}  pending`, `${idCell("b")}  dead`]);
  // Narrower than the id itself: the id is still whole, and the line longer than the width.
  const tooNarrow = formatTable(head, rows, { width: 30, colour: false });
  assert.ok(lines(tooNarrow)[1].startsWith(`${id}  pending`), tooNarrow);
  assert.equal(width(tooNarrow), id.length + 2 + "pending".length, "no more than it must");
});

Deno.test(
  "list on an 80-column terminal fits every line, cuts long commands with … and colours states",
  { ignore: !HAS_SCRIPT },
  () =>
    withQueue(async ({ dir, db }) => {
      await varietyQueue(db);
      const result = await onTerminal(dir, db, ["list"]);
      assert.equal(result.code, 0);
      const rows = lines(result.stdout);
      assert.equal(rows.length, 5, `a header and four rows:\n${result.stdout}`);
      for (const row of rows) {
        assert.ok(displayWidth(row) <= 80, `${displayWidth(row)} columns: ${plain(row)}`);
      }
      assert.ok(result.stdout.includes(painted(36, "pending")), "states are coloured");
      const long = plain(rows.find((row) => plain(row).startsWith("long "))!);
      assert.ok(long.endsWith("…"), `long command cut: ${long}`);
      assert.ok(long.includes("echo long-argument"), long);
      const wide = plain(rows.find((row) => plain(row).startsWith("wide "))!);
      assert.ok(wide.includes("echo 日本語"), wide);

      const wider = lines(plain((await onTerminal(dir, db, ["list"], { columns: 200 })).stdout));
      assert.ok(
        wider.some((row) => row.endsWith(LONG_COMMAND)),
        `a 200-column terminal shows the whole command:\n${wider.join("\n")}`,
      );
      assert.ok(
        wider.some((row) => /^multi\s.*echo one echo two echo three$/.test(row)),
        "a command of several lines is shown on one",
      );
    }),
);

Deno.test("list has no colour under NO_COLOR or when piped, and piped lines are not fitted", {
  ignore: !HAS_SCRIPT,
}, () =>
  withQueue(async ({ dir, db }) => {
    await varietyQueue(db);
    const noColour = await onTerminal(dir, db, ["list"], { env: { NO_COLOR: "1" } });
    assert.equal(noColour.code, 0);
    assert.doesNotMatch(noColour.stdout, ANY_ESCAPE, "NO_COLOR: no escape codes");
    assert.ok(lines(noColour.stdout).every((row) => displayWidth(row) <= 80), "still fitted");

    // NO_COLOR empty counts as unset: only the pipe keeps the colours off here.
    const piped = await cli(["list"], { db, env: { NO_COLOR: "" } });
    assert.equal(piped.code, 0);
    assert.doesNotMatch(piped.stdout, ANY_ESCAPE, "piped: no escape codes");
    const long = lines(piped.stdout).find((row) => row.startsWith("long "))!;
    assert.ok(long.endsWith("…"), long);
    const command = long.slice(long.indexOf("echo long-argument"));
    assert.equal(displayWidth(command), 60, "piped: commands are cut at 60 columns");
    assert.ok(displayWidth(long) > 80, "piped: no terminal width applies");

    for (const args of [["status"], ["show", "long"], ["dlq", "list"]]) {
      const out = await cli(args, { db, env: { NO_COLOR: "" } });
      assert.equal(out.code, 0, `${args.join(" ")}: ${out.stderr}`);
      assert.doesNotMatch(out.stdout, ANY_ESCAPE, `${args.join(" ")} piped: no escape codes`);
    }
  }));

Deno.test("list shows times relative for people and exact ISO 8601 in JSON", () =>
  withQueue(async ({ db }) => {
    const before = Date.now();
    await cliOk(["enqueue", "--id", "later", "--delay", "1h", "true"], { db });
    const table = await cliOk(["list"], { db });
    assert.match(table, /^ID\s+STATE\s+QUEUE\s+ATTEMPTS\s+PRI\s+RUN AT\s+UPDATED\s+COMMAND$/m);
    assert.match(
      table,
      /^later\s+pending\s+default\s+0\/4\s+0\s+in 5\dm\s+(just now|\d+s ago)\s+true$/m,
    );

    const [job]: JobJson[] = JSON.parse(await cliOk(["list", "--json"], { db }));
    assert.match(job.run_at, ISO_UTC);
    assert.match(job.updated_at, ISO_UTC);
    const runAt = Date.parse(job.run_at);
    assert.ok(runAt >= before + 3_600_000 && runAt <= Date.now() + 3_600_000, job.run_at);
  }));

Deno.test("list --queue shows one queue's jobs and list --state blocked shows jobs waiting for others", () =>
  withQueue(async ({ db }) => {
    await cliOk(["enqueue", "--id", "first", "--delay", "1h", "true"], { db });
    await cliOk(["enqueue", "--id", "mail-1", "--queue", "mail", "echo mail"], { db });
    await cliOk(["enqueue", "--id", "then", "--after", "first", "--queue", "mail", "true"], { db });

    const ids = async (...args: string[]) =>
      (JSON.parse(await cliOk(["list", "--json", ...args], { db })) as JobJson[]).map((j) => j.id);
    assert.deepEqual(await ids("--queue", "mail"), ["then", "mail-1"]);
    assert.deepEqual(await ids("--queue", "default"), ["first"]);
    assert.deepEqual(await ids("--queue", "nothing-here"), []);
    assert.deepEqual(await ids("--state", "blocked"), ["then"]);
    assert.deepEqual(await ids("--state", "pending", "--queue", "mail"), ["mail-1"]);

    const table = await cliOk(["list", "--queue", "mail"], { db });
    assert.match(table, /^then\s+blocked\s+mail\s/m);
    assert.match(table, /^mail-1\s+pending\s+mail\s/m);
    assert.doesNotMatch(table, /^first\s/m);
    const blocked = await cliOk(["list", "--state", "blocked"], { db });
    assert.match(blocked, /^then\s+blocked\s+mail\s/m);
    assert.equal(lines(blocked).length, 2, "a header and the blocked job");

    const none = await cli(["list", "--queue", "nothing-here"], { db });
    assert.equal(none.stdout, "");
    assert.match(none.stderr, /no jobs in queue 'nothing-here'/);
    const bad = await cli(["list", "--queue", "no spaces allowed"], { db });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^queuectl: --queue: /);
  }));

Deno.test(
  "status counts jobs per queue and shows which queues are paused",
  { ignore: !HAS_SCRIPT },
  () =>
    withQueue(async ({ dir, db }) => {
      await cliOk(["enqueue", "--id", "d1", "--delay", "1h", "true"], { db });
      await cliOk(["enqueue", "--id", "d2", "--after", "d1", "true"], { db });
      await cliOk(["enqueue", "--id", "m1", "--queue", "mail", "true"], { db });
      const store = await openQueueStore(db);
      const pausedAt = Date.now();
      try {
        assert.equal(await store.pauseQueue("mail", pausedAt), true);
      } finally {
        await store.close();
      }

      const status = JSON.parse(await cliOk(["status", "--json"], { db }));
      assert.deepEqual(status.jobs, {
        blocked: 1,
        pending: 2,
        processing: 0,
        completed: 0,
        failed: 0,
        dead: 0,
      });
      assert.deepEqual(status.workers, []);
      assert.deepEqual(status.queues, [
        {
          name: "default",
          paused: false,
          paused_at: null,
          counts: { blocked: 1, pending: 1, processing: 0, completed: 0, failed: 0, dead: 0 },
          concurrency: null,
          rate: null,
        },
        {
          name: "mail",
          paused: true,
          paused_at: new Date(pausedAt).toISOString(),
          counts: { blocked: 0, pending: 1, processing: 0, completed: 0, failed: 0, dead: 0 },
          concurrency: null,
          rate: null,
        },
      ]);

      const text = await cliOk(["status"], { db });
      assert.match(text, /^\s*pending\s+2$/m, "overall counts are kept");
      assert.match(text, /^Queues: 2, 1 paused$/m);
      const queueRows = [
        /^QUEUE\s+STATUS\s+PAUSED\s+BLOCKED\s+PENDING\s+PROCESSING\s+COMPLETED\s+FAILED\s+DEAD$/m,
        /^default\s+active\s+-\s+1\s+1\s+0\s+0\s+0\s+0$/m,
        /^mail\s+paused\s+(just now|\d+s ago)\s+0\s+1\s+0\s+0\s+0\s+0$/m,
      ];
      for (const row of queueRows) assert.match(text, row);

      // On an 80-column terminal: the same table, coloured.
      const coloured = await onTerminal(dir, db, ["status"]);
      assert.equal(coloured.code, 0);
      assert.ok(coloured.stdout.includes(painted(33, "paused")), "paused in yellow");
      assert.ok(coloured.stdout.includes(painted(35, "blocked")), "states coloured");
      for (const row of queueRows) assert.match(plain(coloured.stdout), row);
      assert.ok(lines(coloured.stdout).every((line) => displayWidth(line) <= 80));
    }),
);

Deno.test("show lists a failing-then-succeeding job's runs and the jobs it runs after", () =>
  withQueue(async ({ dir, db }) => {
    await cliOk(["config", "set", "backoff-base", "1"], { db });
    const flaky = `if [ -e ${dir}/marker ]; then echo fine; else touch ${dir}/marker; exit 3; fi`;
    await cliOk(["enqueue", "--id", "flaky", flaky], { db });
    await cliOk(["enqueue", "--id", "after-it", "--after", "flaky", "true"], { db });
    await cliOk(["worker", "start", "--drain"], { db });

    const job = await showJob(db, "flaky") as JobJson & {
      after: unknown[];
      history: Record<string, unknown>[];
    };
    assert.equal(job.state, "completed");
    assert.equal(job.attempts, 2);
    assert.deepEqual(job.after, []);
    assert.equal(job.history.length, 2, JSON.stringify(job.history));
    const [first, second] = job.history;
    assert.equal(first.attempt, 1);
    assert.equal(first.exit_code, 3);
    assert.match(String(first.error), /exited with code 3/);
    assert.equal(second.attempt, 2);
    assert.equal(second.exit_code, 0);
    assert.equal(second.error, null);
    for (const run of job.history) {
      assert.equal(run.job_id, "flaky");
      assert.match(String(run.started_at), ISO_UTC);
      assert.match(String(run.finished_at), ISO_UTC);
      assert.ok(String(run.started_at) <= String(run.finished_at));
    }
    assert.ok(String(first.finished_at) <= String(second.started_at), "runs in order");

    const dependent = JSON.parse(await cliOk(["show", "after-it", "--json"], { db }));
    assert.deepEqual(dependent.after, [{ id: "flaky", state: "completed" }]);
    assert.equal(dependent.state, "completed");

    const text = await cliOk(["show", "flaky"], { db });
    assert.match(text, /^state\s+completed$/m);
    assert.match(text, /^created_at\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \((just now|\d+s ago)\)$/m);
    assert.match(text, /^after\s+-$/m);
    assert.match(text, /^History: 2 runs$/m);
    assert.match(text, /^\s+#\s+STARTED\s+ENDED\s+TOOK\s+EXIT\s+ERROR$/m);
    assert.match(
      text,
      /^\s+1\s+(just now|\d+s ago)\s+(just now|\d+s ago)\s+\S+\s+3\s+exited with code 3/m,
    );
    assert.match(text, /^\s+2\s+(just now|\d+s ago)\s+(just now|\d+s ago)\s+\S+\s+0\s+-$/m);
    assert.match(await cliOk(["show", "after-it"], { db }), /^after\s+flaky \(completed\)$/m);

    await cliOk(["enqueue", "--id", "gate", "--delay", "1h", "true"], { db });
    await cliOk(["enqueue", "--id", "blocked-one", "--after", "gate,flaky", "true"], { db });
    const blocked = JSON.parse(await cliOk(["show", "blocked-one", "--json"], { db }));
    assert.equal(blocked.state, "blocked");
    assert.deepEqual(blocked.after, [{ id: "flaky", state: "completed" }, {
      id: "gate",
      state: "pending",
    }]);
    assert.deepEqual(blocked.history, []);
    const blockedText = await cliOk(["show", "blocked-one"], { db });
    assert.match(blockedText, /^after\s+flaky \(completed\), gate \(pending\)$/m);
    assert.match(blockedText, /^History: no runs yet$/m);
  }));

/** An id (or queue name) of exactly `length` characters. */
function longName(prefix: string, length: number): string {
  return `${prefix}-${"0123456789".repeat(13)}`.slice(0, length);
}

Deno.test(
  "list and dlq list on an 80-column terminal never cut an id, and fit every line where ids allow",
  { ignore: !HAS_SCRIPT },
  () =>
    withQueue(async ({ dir, db }) => {
      const pending = longName("a-rather-long-job-id-for-testing", 60);
      const dead = longName("a-long-dead-job-id", 56);
      const longest = longName("the-longest-id-allowed", 128);
      await cliOk(["enqueue", "--file", "-"], {
        db,
        stdin: [
          { id: dead, command: "exit 3", max_retries: 0 },
          { id: "short", command: LONG_COMMAND },
        ].map((spec) => JSON.stringify(spec)).join("\n"),
      });
      await cliOk(["worker", "start", "--drain"], { db });
      await cliOk(["enqueue", "--id", pending, "--queue", "a-long-queue-name", LONG_COMMAND], {
        db,
      });

      for (const [args, id] of [[["list"], pending], [["dlq", "list"], dead]] as const) {
        const result = await onTerminal(dir, db, [...args]);
        assert.equal(result.code, 0);
        const rows = lines(plain(result.stdout));
        assert.ok(
          rows.some((row) => row.startsWith(`${id} `)),
          `${args.join(" ")}: the id whole:\n${rows.join("\n")}`,
        );
        for (const row of rows) {
          assert.ok(displayWidth(row) <= 80, `${args.join(" ")}: ${displayWidth(row)}: ${row}`);
        }
      }
      const list = lines(plain((await onTerminal(dir, db, ["list"])).stdout));
      assert.match(list[0], /^ID\s+STATE\s/, "the state stays");
      assert.ok(list.some((row) => /^short\s+completed\s/.test(row)), list.join("\n"));

      // An id as long as ids get cannot fit 80 columns: it is shown whole all the same.
      await cliOk(["enqueue", "--id", longest, "true"], { db });
      const result = await onTerminal(dir, db, ["list"]);
      const rows = lines(plain(result.stdout));
      assert.ok(rows.includes(`${longest}  pending`), rows.join("\n"));
      assert.match(rows[0], /^ID\s+STATE$/, "everything else gives way to the id");
    }),
);

Deno.test(
  "status on an 80-column terminal never cuts a queue name and fits every line",
  { ignore: !HAS_SCRIPT },
  () =>
    withQueue(async ({ dir, db }) => {
      const longest = longName("a-queue-with-the-longest-name", 64);
      const medium = longName("a-medium-queue-name", 30);
      for (const queue of [longest, medium, "mail"]) {
        await cliOk(["enqueue", "--queue", queue, "true"], { db });
      }
      const result = await onTerminal(dir, db, ["status"]);
      assert.equal(result.code, 0);
      const rows = lines(plain(result.stdout));
      for (const queue of [longest, medium, "mail"]) {
        assert.ok(
          rows.some((row) => new RegExp(`^${queue}\\s+active(\\s|$)`).test(row)),
          `queue ${queue} whole:\n${rows.join("\n")}`,
        );
      }
      for (const row of rows) assert.ok(displayWidth(row) <= 80, `${displayWidth(row)}: ${row}`);
    }),
);

/** A module of `deno info --json`'s graph, with what it imports. */
interface GraphModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
}

/**
 * The modules a run of the graph's root loads at start-up: everything reached
 * from the root but through type-only imports. Deno loads the target of a
 * string-literal dynamic import with the program too, so those count.
 */
function reachable(
  graph: { roots: string[]; modules: GraphModule[]; redirects: Record<string, string> },
): Set<string> {
  const bySpecifier = new Map(graph.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const visit = (specifier: string) => {
    const resolved = graph.redirects[specifier] ?? specifier;
    if (seen.has(resolved)) return;
    seen.add(resolved);
    for (const dependency of bySpecifier.get(resolved)?.dependencies ?? []) {
      if (dependency.code !== undefined) visit(dependency.code.specifier);
    }
  };
  for (const root of graph.roots) visit(root);
  return seen;
}

Deno.test("SQLite commands load no npm package, no Node module but node:sqlite, no PostgreSQL backend", async () => {
  // Deno lists string-literal dynamic imports in the graph too, so a lazy import counts here.
  const root = new URL("..", import.meta.url).pathname;
  const entries = [
    "main.ts",
    ...["list", "dlq_list", "status", "show", "stats", "top"].map(
      (name) => `lib/cli/commands/${name}.ts`,
    ),
  ];
  for (const entry of entries) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: root,
      stdin: "null",
      stderr: "piped",
    }).output();
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    const graph = JSON.parse(new TextDecoder().decode(output.stdout));
    const loaded = [...reachable(graph)];
    const foreign = loaded.filter((s) => !s.startsWith("file:") && s !== "node:sqlite");
    assert.deepEqual(foreign, [], `${entry} loads ${foreign.join(", ")}`);
    // The PostgreSQL backend is loaded only when a PostgreSQL queue is opened (lib/store/mod.ts).
    const postgres = loaded.filter((s) => /\/lib\/store\/pg_[^/]*\.ts$/.test(s));
    assert.deepEqual(postgres, [], `${entry} loads ${postgres.join(", ")}`);
  }
});
