/**
 * Black-box tests of `queuectl enqueue`: JSON specs, bare commands, flags,
 * and `--file` batches that go in all together or not at all.
 */

import assert from "node:assert/strict";
import {
  assertRefused,
  cli,
  cliOk,
  listJobs,
  showJob,
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
    assert.match(clashed.stderr, /keep/, "the message names the id");

    const twice = await writeFile(
      queue,
      "twice.json",
      '[{"id":"new2","command":"true"},{"id":"new2","command":"false"}]',
    );
    assertRefused(await cli(["enqueue", "--file", twice], { db }), 1, "an id twice in the file");

    assert.deepEqual(await ids(db), ["keep"]);
    assert.equal((await showJob(db, "keep")).command, "echo original");
  }));
