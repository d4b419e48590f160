/**
 * Black-box tests of `queuectl enqueue`: JSON specs, bare commands, flags,
 * and `--file` batches that go in all together or not at all.
 */

import assert from "node:assert/strict";
import {
  assertRefused,
  cli,
  cliCommandLine,
  cliOk,
  type CliResult,
  drain,
  listJobs,
  showJob,
  shQuote,
  type TempQueue,
  withQueue,
} from "./helpers.ts";

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Ids of the jobs in the queue, newest first. */
async function ids(db: string): Promise<string[]> {
  return (await listJobs(db)).map((job) => job.id);
}

/** Writes `text` to a file in the queue's directory and returns its path. */
async function writeFile({ dir }: TempQueue, name: string, text: string): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, text);
  return path;
}

Deno.test("enqueue stores a JSON spec and fills in the defaults", () =>
  withQueue(async ({ db, dir }) => {
    const before = Date.now();
    const out = await cliOk(
      ["enqueue", '{"id":"job1","command":"sleep 2","max_retries":3}'],
      { db, cwd: dir },
    );
    const after = Date.now();
    assert.equal(out, "job1\n");

    const job = await showJob(db, "job1");
    assert.equal(job.id, "job1");
    assert.equal(job.command, "sleep 2");
    assert.equal(job.state, "pending");
    assert.equal(job.attempts, 0);
    assert.equal(job.max_retries, 3);
    assert.equal(job.priority, 0);
    assert.equal(job.timeout_ms, null);
    assert.equal(job.cwd, await Deno.realPath(dir));
    assert.equal(job.started_at, null);
    assert.equal(job.finished_at, null);
    assert.equal(job.exit_code, null);
    assert.equal(job.last_error, null);
    assert.match(job.created_at, ISO_UTC);
    const created = Date.parse(job.created_at);
    assert.ok(created >= before && created <= after, `created_at ${job.created_at} is not now`);
    assert.equal(job.run_at, job.created_at, "a job without a delay may run at once");
    assert.equal(job.updated_at, job.created_at);
  }));

Deno.test("enqueue reads every field a JSON spec may hold", () =>
  withQueue(async ({ db }) => {
    const spec = {
      id: "job2",
      command: "echo hi",
      max_retries: 0,
      priority: 4,
      timeout: "5s",
      cwd: "/",
      delay: "1h",
    };
    assert.equal(await cliOk(["enqueue", JSON.stringify(spec)], { db }), "job2\n");
    const job = await showJob(db, "job2");
    assert.equal(job.command, "echo hi");
    assert.equal(job.max_retries, 0);
    assert.equal(job.priority, 4);
    assert.equal(job.timeout_ms, 5_000);
    assert.equal(job.cwd, "/");
    const delay = Date.parse(job.run_at) - Date.parse(job.created_at);
    assert.ok(Math.abs(delay - 3_600_000) < 1_000, `run_at is ${delay} ms after created_at`);

    const atSpec = { id: "job3", command: "true", run_at: "2030-01-31T12:00:00Z", timeout_ms: 250 };
    await cliOk(["enqueue", JSON.stringify(atSpec)], { db });
    const at = await showJob(db, "job3");
    assert.equal(at.run_at, "2030-01-31T12:00:00.000Z");
    assert.equal(at.timeout_ms, 250);
  }));

Deno.test("enqueue --help lists every JSON field a spec may hold, as the unknown-field error does", () =>
  withQueue(async ({ db }) => {
    const help = await cliOk(["enqueue", "--help"], { db });
    const listed = help.match(/^JSON fields: ([^.]+)\.$/m)?.[1].replace(/\s+/g, " ");
    const refused = await cli(["enqueue", '{"command":"true","bogus":1}'], { db });
    assertRefused(refused, 2, "an unknown field");
    const known = refused.stderr.match(/\(known: ([^)]+)\)/)?.[1];
    assert.ok(known, refused.stderr);
    assert.equal(listed, known, "the help names the same fields, in the same order");
  }));

Deno.test("enqueue takes a bare shell command whole and gives it a fresh id", () =>
  withQueue(async ({ db, dir }) => {
    const sub = `${dir}/work dir`;
    await Deno.mkdir(sub);
    const command = `echo "a  b" | tr a-z A-Z; echo $HOME 'it''s' > out.txt`;
    const first = await cliOk(["enqueue", command], { db, cwd: sub });
    const second = await cliOk(["enqueue", "  exit 0"], { db, cwd: sub });
    assert.match(first, /^\S+\n$/, "stdout is the new id alone on one line");
    assert.match(second, /^\S+\n$/);
    assert.notEqual(first, second);

    const job = await showJob(db, first.trim());
    assert.equal(job.command, command);
    assert.equal(job.state, "pending");
    assert.equal(job.max_retries, 3, "the config default");
    assert.equal(job.cwd, await Deno.realPath(sub), "the directory enqueue ran in");
    assert.equal((await showJob(db, second.trim())).command, "  exit 0");
  }));

Deno.test("flags win over the same fields of a JSON spec", () =>
  withQueue(async ({ db, dir }) => {
    const spec = {
      id: "from-json",
      command: "true",
      max_retries: 1,
      priority: 1,
      run_at: "2030-01-01T00:00:00Z",
      timeout: "1s",
      cwd: "/",
    };
    const out = await cliOk([
      "enqueue",
      JSON.stringify(spec),
      "--id",
      "from-flag",
      "--max-retries",
      "6",
      "--priority",
      "9",
      "--run-at",
      "2031-02-03T04:05:06Z",
      "--timeout",
      "2m",
      "--cwd",
      dir,
    ], { db });
    assert.equal(out, "from-flag\n");
    const job = await showJob(db, "from-flag");
    assert.equal(job.command, "true");
    assert.equal(job.max_retries, 6);
    assert.equal(job.priority, 9);
    assert.equal(job.run_at, "2031-02-03T04:05:06.000Z");
    assert.equal(job.timeout_ms, 120_000);
    assert.equal(job.cwd, await Deno.realPath(dir));
    assert.deepEqual(await ids(db), ["from-flag"], "the JSON id was not used");

    // --delay wins over a JSON run_at, counting from the enqueue.
    await cliOk(["enqueue", JSON.stringify({ ...spec, id: "delayed" }), "--delay", "90"], { db });
    const delayed = await showJob(db, "delayed");
    const delay = Date.parse(delayed.run_at) - Date.parse(delayed.created_at);
    assert.ok(Math.abs(delay - 90_000) < 1_000, `run_at is ${delay} ms after created_at`);
    assert.equal(delayed.max_retries, 1, "fields without a flag still come from the JSON");
  }));

Deno.test("enqueue --timeout and --delay take every duration unit", () =>
  withQueue(async ({ db }) => {
    const cases: [string, number][] = [
      ["500ms", 500],
      ["10s", 10_000],
      ["1.5s", 1_500],
      ["5m", 300_000],
      ["2h", 7_200_000],
      ["1d", 86_400_000],
      ["30", 30_000],
    ];
    for (const [text, ms] of cases) {
      const id = await cliOk(["enqueue", "true", "--timeout", text, "--delay", text], { db });
      const job = await showJob(db, id.trim());
      assert.equal(job.timeout_ms, ms, `--timeout ${text}`);
      const delay = Date.parse(job.run_at) - Date.parse(job.created_at);
      assert.ok(Math.abs(delay - ms) < 1_000, `--delay ${text}: run_at is ${delay} ms later`);
    }
  }));

Deno.test("enqueue --cwd resolves a relative directory against the directory enqueue ran in", () =>
  withQueue(async ({ db, dir }) => {
    await Deno.mkdir(`${dir}/a/b`, { recursive: true });
    const id = await cliOk(["enqueue", "pwd", "--cwd", "b"], { db, cwd: `${dir}/a` });
    assert.equal((await showJob(db, id.trim())).cwd, await Deno.realPath(`${dir}/a/b`));
  }));

Deno.test("enqueue --file reads a JSON object, a JSON array or JSON Lines", () =>
  withQueue(async (queue) => {
    const { db } = queue;
    const one = await writeFile(queue, "one.json", '{"id":"o1","command":"echo one"}\n');
    const array = await writeFile(
      queue,
      "array.json",
      JSON.stringify(
        [{ id: "a1", command: "echo a1" }, { id: "a2", command: "echo a2", priority: 2 }],
        null,
        2,
      ),
    );
    const lines = await writeFile(
      queue,
      "lines.jsonl",
      '{"id":"l1","command":"echo l1"}\n\n{"id":"l2","command":"echo l2","max_retries":0}\n',
    );
    assert.equal(await cliOk(["enqueue", "--file", one], { db }), "o1\n");
    assert.equal(await cliOk(["enqueue", "--file", array], { db }), "a1\na2\n");
    assert.equal(await cliOk(["enqueue", "--file", lines], { db }), "l1\nl2\n");

    const jobs = await listJobs(db);
    assert.deepEqual(jobs.map((job) => job.id), ["l2", "l1", "a2", "a1", "o1"]);
    for (const job of jobs) assert.equal(job.command, `echo ${job.id === "o1" ? "one" : job.id}`);
    assert.equal(jobs.find((job) => job.id === "a2")?.priority, 2);
    assert.equal(jobs.find((job) => job.id === "l2")?.max_retries, 0);
  }));

Deno.test("enqueue --file - reads jobs from stdin and applies the flags to each", () =>
  withQueue(async ({ db }) => {
    const out = await cliOk(
      ["enqueue", "--file", "-", "--priority", "7", "--max-retries", "2"],
      { db, stdin: '{"command":"echo one"}\n{"command":"echo two","priority":1}\n' },
    );
    const newIds = out.split("\n");
    assert.equal(newIds.length, 3, `two ids, one per line: ${JSON.stringify(out)}`);
    assert.equal(newIds[2], "", "the output ends with a newline");
    assert.notEqual(newIds[0], newIds[1]);

    const jobs = await listJobs(db);
    assert.deepEqual(jobs.map((job) => job.id), [newIds[1], newIds[0]]);
    assert.deepEqual(jobs.map((job) => job.command), ["echo two", "echo one"]);
    for (const job of jobs) {
      assert.equal(job.priority, 7);
      assert.equal(job.max_retries, 2);
    }
  }));

Deno.test("a job file with an invalid second job enqueues nothing", () =>
  withQueue(async (queue) => {
    const { db } = queue;
    await cliOk(["enqueue", "--id", "keep", "true"], { db });
    const before = await cli(["list", "--json"], { db });

    const valid = '{"id":"new1","command":"echo new"}';
    const files: [string, string][] = [
      ["empty command", `${valid}\n{"id":"new2","command":""}\n`],
      ["missing command", `${valid}\n{"id":"new2"}\n`],
      ["malformed JSON line", `${valid}\n{"id":"new2","command":\n`],
      ["bad id", JSON.stringify([JSON.parse(valid), { id: "bad id!", command: "x" }])],
      [
        "negative max_retries",
        JSON.stringify([JSON.parse(valid), { command: "x", max_retries: -1 }]),
      ],
      ["bad delay", `${valid}\n{"command":"x","delay":"5x"}\n`],
    ];
    for (const [what, text] of files) {
      const path = await writeFile(queue, "jobs.json", text);
      assertRefused(await cli(["enqueue", "--file", path], { db }), 2, what);
      assertRefused(
        await cli(["enqueue", "--file", "-"], { db, stdin: text }),
        2,
        `${what} (stdin)`,
      );
    }
    assert.deepEqual(await ids(db), ["keep"]);
    assert.equal((await cli(["list", "--json"], { db })).stdout, before.stdout);
  }));

Deno.test("a job file that reuses an id enqueues nothing", () =>
  withQueue(async (queue) => {
    const { db } = queue;
    await cliOk(["enqueue", "--id", "keep", "echo original"], { db });

    const clash = await writeFile(
      queue,
      "clash.jsonl",
      '{"id":"new1","command":"true"}\n{"id":"keep","command":"echo replaced"}\n',
    );
    const clashed = await cli(["enqueue", "--file", clash], { db });
    assertRefused(clashed, 1, "an id already in the queue");
    assert.equal(
      clashed.stderr,
      "queuectl: job file line 2: a job with id 'keep' already exists\n",
      "the message names the id and, as for every error about a job of a file, its line",
    );
    const inArray = await cli(["enqueue", '["true", {"id":"keep","command":"x"}]'], { db });
    assertRefused(inArray, 1, "an id already in the queue, in an array argument");
    assert.equal(
      inArray.stderr,
      "queuectl: JSON array item 2: a job with id 'keep' already exists\n",
    );
    const alone = await cli(["enqueue", "--id", "keep", "true"], { db });
    assert.equal(alone.stderr, "queuectl: a job with id 'keep' already exists\n", "a lone job");

    const twice = await writeFile(
      queue,
      "twice.json",
      '[{"id":"new2","command":"true"},{"id":"new2","command":"false"}]',
    );
    assertRefused(await cli(["enqueue", "--file", twice], { db }), 2, "an id twice in the file");

    assert.deepEqual(await ids(db), ["keep"]);
    assert.equal((await showJob(db, "keep")).command, "echo original");
  }));

// ---------------------------------------------------------------------------
// Input as people bring it: bytes that are not UTF-8, huge numbers, repeated
// ids, JSON arrays, plain command files and local times.

/** Runs a shell command line and returns what it printed, as {@linkcode cli} does. */
async function sh(line: string, env: Record<string, string> = {}): Promise<CliResult> {
  const output = await new Deno.Command("sh", {
    args: ["-c", line],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr).replace(/^Download https?:\/\/\S+\n/gm, ""),
  };
}

/**
 * Runs `queuectl <args> <argument>` where the last argument holds `bytes`
 * exactly, UTF-8 or not: Deno.Command can only pass text, so the shell reads
 * them from a file.
 */
async function cliRawArgument(
  { dir, db }: TempQueue,
  args: string[],
  bytes: Uint8Array,
): Promise<CliResult> {
  const path = `${dir}/argument.bin`;
  await Deno.writeFile(path, bytes);
  return await sh(`${cliCommandLine(args, db)} "$(cat ${shQuote(path)})"`);
}

const latin1 = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

Deno.test("a command with bytes that are not UTF-8 is refused with exit 2, never stored changed", () =>
  withQueue(async (queue) => {
    const { db, dir } = queue;
    // "café" in Latin-1: Deno.args would hold "caf\ufffd", and the job would write EF BF BD.
    const command = latin1(`printf %s caf\xe9 > ${dir}/out`);
    const refused = await cliRawArgument(queue, ["enqueue"], command);
    assertRefused(refused, 2, "a Latin-1 command");
    assert.match(refused.stderr, /not valid UTF-8 \(byte 0xe9 in 'printf %s caf\\xe9 > /);
    assert.match(refused.stderr, /printf '\\351'/, "the message tells how to write the byte");
    for (const bad of ["\xff", "\xc3", "\xed\xa0\x80", "\xf0\x9f\x98", "ok\xc0\xaf"]) {
      assertRefused(await cliRawArgument(queue, ["enqueue", "--"], latin1(bad)), 2, bad);
    }
    const id = await cliRawArgument(queue, ["enqueue", "--id"], latin1("id\xe9"));
    assertRefused(id, 2, "an id that is not UTF-8");
    assert.match(id.stderr, /argument \d+ is not valid UTF-8/);
    assert.deepEqual(await ids(db), [], "nothing was stored");

    // UTF-8 text, a U+FFFD typed as such included, is kept byte for byte.
    const encoder = new TextEncoder();
    for (const [name, text] of [["utf8", "café"], ["fffd", "caf\ufffd"]]) {
      const line = `printf %s '${text}' > ${dir}/${name}.out`;
      const result = await cliRawArgument(queue, ["enqueue", "--id", name], encoder.encode(line));
      assert.equal(result.code, 0, result.stderr);
      assert.equal((await showJob(db, name)).command, line);
    }
    // The way the message suggests: the command is ASCII, the shell makes the byte.
    await cliOk(["enqueue", "--id", "escaped", `printf 'caf\\351' > ${dir}/escaped.out`], { db });
    await drain(db);
    assert.deepEqual(await Deno.readFile(`${dir}/utf8.out`), encoder.encode("café"));
    assert.deepEqual(await Deno.readFile(`${dir}/fffd.out`), encoder.encode("caf\ufffd"));
    assert.deepEqual(await Deno.readFile(`${dir}/escaped.out`), latin1("caf\xe9"));
  }));

Deno.test("a job file with bytes that are not UTF-8 is refused naming the line, from a file or stdin", () =>
  withQueue(async ({ db, dir }) => {
    const files = [
      latin1('{"command":"echo one"}\n\n{"command":"printf caf\xe9"}\n'),
      latin1('[{"command":"echo one"},\n\n {"command":"printf caf\xe9"}]'),
      latin1("echo one\n# caf\xe9 in a comment\necho two\n"),
    ];
    for (const [index, bytes] of files.entries()) {
      const path = `${dir}/latin1-${index}.txt`;
      await Deno.writeFile(path, bytes);
      for (const line of [`--file ${shQuote(path)}`, `--file - < ${shQuote(path)}`]) {
        const result = await sh(`${cliCommandLine(["enqueue"], db)} ${line}`);
        assertRefused(result, 2, `file ${index}: ${line}`);
        assert.match(result.stderr, /^queuectl: job file line [23] is not valid UTF-8 \(byte 0xe9/);
      }
    }
    assert.deepEqual(await ids(db), []);
  }));

Deno.test("numbers too large are quoted as typed, for every numeric option", () =>
  withQueue(async ({ db }) => {
    const huge = "9007199254740993"; // 2^53 + 1: as a JS number it is 9007199254740992
    const commands = [
      ["enqueue", "--priority", huge, "true"],
      ["enqueue", "--max-retries", huge, "true"],
      ["list", "--limit", huge],
      ["dlq", "list", "--limit", huge],
      ["worker", "start", "--count", huge],
      ["config", "set", "max-retries", huge],
    ];
    for (const args of commands) {
      const result = await cli(args, { db });
      assertRefused(result, 2, args.join(" "));
      // --count states its whole range instead; either way the number is quoted as typed.
      assert.ok(
        result.stderr.includes(`'${huge}' is too large`) ||
          result.stderr.includes(`'${huge}' is not a whole number from 1 to 256`),
        `${args.join(" ")}: ${result.stderr}`,
      );
      assert.doesNotMatch(result.stderr, /9007199254740992/, args.join(" "));
    }
    // JSON has rounded the number before queuectl sees it: the message must not show the rounding.
    for (const field of ["priority", "max_retries", "timeout_ms"]) {
      const result = await cli(["enqueue", `{"command":"true","${field}":${huge}}`], { db });
      assertRefused(result, 2, field);
      assert.match(result.stderr, new RegExp(`${field}: the number is too large`));
      assert.doesNotMatch(result.stderr, /9007199254740992/, field);
    }
    const long = "9".repeat(30);
    const durations: [string[], string][] = [
      [["enqueue", "--delay", `${long}s`, "true"], `${long}s`],
      [["stats", "--since", long], long],
    ];
    for (const [args, typed] of durations) {
      const result = await cli(args, { db });
      assertRefused(result, 2, args.join(" "));
      assert.ok(result.stderr.includes(`'${typed}' is too long`), result.stderr);
    }
    assert.deepEqual(await ids(db), []);
  }));

Deno.test("an id repeated in one job file is refused with exit 2, naming both lines", () =>
  withQueue(async (queue) => {
    const { db } = queue;
    const lines = await writeFile(
      queue,
      "twice.jsonl",
      '{"id":"a","command":"true"}\necho other\n\n{"id":"a","command":"false"}\n',
    );
    const result = await cli(["enqueue", "--file", lines], { db });
    assertRefused(result, 2, "an id twice in JSON Lines");
    assert.equal(
      result.stderr,
      "queuectl: id 'a' is repeated in the job file: line 1 and line 4\n",
    );

    const array = JSON.stringify(
      [
        { id: "b", command: "true" },
        { id: "c", command: "true" },
        { id: "b", command: "false" },
      ],
      null,
      2,
    );
    const fromStdin = await cli(["enqueue", "--file", "-"], { db, stdin: array });
    assertRefused(fromStdin, 2, "an id twice in a JSON array");
    assert.equal(
      fromStdin.stderr,
      "queuectl: id 'b' is repeated in the job file: line 2 and line 10\n",
    );
    assert.deepEqual(await ids(db), []);
  }));

Deno.test("a JSON array argument enqueues each element, all or none, and prints each id", () =>
  withQueue(async ({ db, dir }) => {
    const out = await cliOk(
      ["enqueue", '["echo a > a.out", {"id":"b","command":"echo b > b.out"}, "echo c > c.out"]'],
      { db, cwd: dir },
    );
    const newIds = out.trimEnd().split("\n");
    assert.equal(newIds.length, 3, out);
    assert.equal(newIds[1], "b");
    assert.deepEqual(
      (await listJobs(db)).map((job) => job.command).toReversed(),
      ["echo a > a.out", "echo b > b.out", "echo c > c.out"],
    );
    await drain(db);
    for (const name of ["a", "b", "c"]) {
      assert.equal(await Deno.readTextFile(`${dir}/${name}.out`), `${name}\n`);
    }

    const before = await ids(db);
    const refusals: [string[], RegExp][] = [
      [["enqueue", '["echo x", ""]'], /^queuectl: JSON array item 2: the command is empty$/m],
      [["enqueue", '["echo x", {"command":"y","priority":-1}]'], /JSON array item 2: priority/],
      [["enqueue", '[{"id":"d","command":"x"},{"id":"d","command":"y"}]'], /item 1 and item 2/],
      [["enqueue", "[]"], /holds no jobs/],
      [["enqueue", '["echo x", "echo y"'], /invalid JSON array of jobs/],
      [["enqueue", '[ "$x" = y ] && echo "yes"'], /\{"command": "\.\.\."\}/],
      [["enqueue", "--id", "e", '["echo x", "echo y"]'], /--id names one job/],
      [["enqueue", "--wait", '["echo x", "echo y"]'], /--wait takes one job/],
    ];
    for (const [args, message] of refusals) {
      const result = await cli(args, { db, cwd: dir });
      assertRefused(result, 2, args.join(" "));
      assert.match(result.stderr, message, args.join(" "));
    }
    assert.deepEqual(await ids(db), before, "nothing more was stored, nothing ran as a command");
  }));

Deno.test("a command that starts with the shell's [ test is a command, as an argument and in a file", () =>
  withQueue(async (queue) => {
    const { db, dir } = queue;
    const id = (await cliOk(["enqueue", "[ -d . ] && echo yes > a.out"], { db, cwd: dir })).trim();
    assert.equal((await showJob(db, id)).command, "[ -d . ] && echo yes > a.out");
    const path = await writeFile(queue, "cmds.txt", "[ ! -e nothing ] && echo yes > b.out\n");
    await cliOk(["enqueue", "--file", path], { db, cwd: dir });
    await drain(db);
    assert.equal(await Deno.readTextFile(`${dir}/a.out`), "yes\n");
    assert.equal(await Deno.readTextFile(`${dir}/b.out`), "yes\n");
    // A JSON array with spaces inside its brackets is still JSON.
    const out = await cliOk(["enqueue", '[ "echo c", "echo d" ]'], { db, cwd: dir });
    assert.equal(out.trimEnd().split("\n").length, 2, out);
    // The help says so, rather than that everything starting with [ is JSON.
    const help = await cliOk(["enqueue", "--help"], { db });
    assert.match(help, /neither '\{' nor '\[' \(or with the shell's test, '\[ -f x \] && make'\)/);
  }));

Deno.test("enqueue --file takes plain command lines, skipping blank lines and # comments", () =>
  withQueue(async (queue) => {
    const { db, dir } = queue;
    const text = [
      "# one command a line, as for xargs or GNU parallel",
      "echo one > one.out",
      "",
      "   ",
      "  # indented comment",
      `printf '%s\\n' "it's" > two.out\r`,
      '{"id":"three","command":"echo three > three.out","priority":1}',
      '"echo four > four.out"',
      '["echo five > five.out", "echo six > six.out"]',
      "true",
    ].join("\n");
    const path = await writeFile(queue, "commands.txt", text);
    const out = await cliOk(["enqueue", "--file", path], { db, cwd: dir });
    assert.equal(out.trimEnd().split("\n").length, 7, out);
    const jobs = (await listJobs(db)).toReversed();
    assert.deepEqual(jobs.map((job) => job.command), [
      "echo one > one.out",
      `printf '%s\\n' "it's" > two.out`,
      "echo three > three.out",
      "echo four > four.out",
      "echo five > five.out",
      "echo six > six.out",
      "true",
    ]);
    assert.equal(jobs[2].id, "three");
    assert.equal(jobs[2].priority, 1);
    await drain(db);
    for (const name of ["one", "three", "four", "five", "six"]) {
      assert.equal(await Deno.readTextFile(`${dir}/${name}.out`), `${name}\n`);
    }
    assert.equal(await Deno.readTextFile(`${dir}/two.out`), "it's\n");

    // Every other rule stays: all or none, and the line of the first problem.
    const before = await ids(db);
    const bad: [string, RegExp][] = [
      ["echo ok\n{not json\necho ok\n", /^queuectl: job file line 2: invalid JSON/],
      ['echo ok\n\n[ "$x" = y ] && echo y\n', /^queuectl: job file line 3: invalid JSON/],
      ['echo ok\n{"command":"x","delay":"5x"}\n', /^queuectl: job file line 2: delay/],
      ["# only a comment\n\n", /holds no jobs/],
    ];
    for (const [content, message] of bad) {
      const result = await cli(["enqueue", "--file", "-"], { db, cwd: dir, stdin: content });
      assertRefused(result, 2, JSON.stringify(content));
      assert.match(result.stderr, message, JSON.stringify(content));
    }
    assert.deepEqual(await ids(db), before);
  }));

Deno.test("--run-at and run_at without an offset are local time, a bare date included", () =>
  withQueue(async ({ db }) => {
    // India has no daylight saving time: local = UTC+05:30 all year.
    const env = { TZ: "Asia/Kolkata" };
    const cases: [string, string][] = [
      ["2030-01-01", "2029-12-31T18:30:00.000Z"],
      ["2030-01-01T10:00", "2030-01-01T04:30:00.000Z"],
      ["2030-01-01 10:00", "2030-01-01T04:30:00.000Z"],
      ["2030-01-01T10:00:30.250", "2030-01-01T04:30:30.250Z"],
      ["2030-01-01T10:00Z", "2030-01-01T10:00:00.000Z"],
      ["2030-01-01 10:00+02:00", "2030-01-01T08:00:00.000Z"],
    ];
    for (const [index, [text, iso]] of cases.entries()) {
      await cliOk(["enqueue", "--id", `flag-${index}`, "--run-at", text, "true"], { db, env });
      const spec = JSON.stringify({ id: `json-${index}`, command: "true", run_at: text });
      await cliOk(["enqueue", spec], { db, env });
      assert.equal((await showJob(db, `flag-${index}`)).run_at, iso, `--run-at ${text}`);
      assert.equal((await showJob(db, `json-${index}`)).run_at, iso, `run_at ${text}`);
    }
    for (const text of ["2030-01-01  10:00", "2030-01-01T", "01/01/2030", "2030-01-01 25:00"]) {
      const result = await cli(["enqueue", "--run-at", text, "true"], { db, env });
      assertRefused(result, 2, text);
      assert.match(result.stderr, /--run-at: .* \(local\)/, text);
    }
    const help = await cliOk(["enqueue", "--help"], { db });
    assert.match(help, /--run-at TIME\s+.*local time unless it ends in Z or \+HH:MM/);
  }));
