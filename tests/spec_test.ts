import assert from "node:assert/strict";
import { DEFAULT_CONFIG, type QueueConfig } from "../lib/config.ts";
import { UsageError } from "../lib/errors.ts";
import {
  checkJobId,
  JOB_ID_PATTERN,
  MAX_COMMAND_BYTES,
  newJobId,
  parseIsoTime,
  parseSpecArgument,
  parseSpecFile,
  resolveSpec,
  resolveSpecList,
  type SpecContext,
  type SpecOverrides,
} from "../lib/spec.ts";

const NOW = Date.UTC(2030, 0, 1, 0, 0, 0);
const BASE_DIR = Deno.realPathSync(Deno.cwd());
const CONFIG: QueueConfig = {
  maxRetries: 5,
  backoffBase: 2,
  backoffMaxMs: 3_600_000,
  jobTimeoutMs: 60_000,
  retentionMs: null,
  leaseTimeoutMs: 30_000,
};
const CONTEXT: SpecContext = { now: NOW, cwd: BASE_DIR, config: CONFIG };

function resolve(raw: unknown, overrides: SpecOverrides = {}, context = CONTEXT) {
  return resolveSpec(raw, overrides, context);
}

function refused(raw: unknown, overrides: SpecOverrides = {}, message?: RegExp) {
  assert.throws(
    () => resolve(raw, overrides),
    (error) =>
      error instanceof UsageError && (message === undefined || message.test(error.message)),
    JSON.stringify(raw),
  );
}

/** Runs `fn` with a fresh temp directory, removed afterwards. */
function withTempDir(fn: (dir: string) => void) {
  const dir = Deno.realPathSync(Deno.makeTempDirSync({ prefix: "queuectl-spec-test-" }));
  try {
    fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

// parseSpecArgument

Deno.test("parseSpecArgument() parses an argument starting with { as one JSON spec", () => {
  const list = parseSpecArgument('{"command":"echo hi","priority":2}');
  assert.deepEqual(list.specs, [{ command: "echo hi", priority: 2 }]);
  assert.equal(list.label, "", "a lone spec needs no place in messages");
  assert.deepEqual(parseSpecArgument('  {"id":"a"}').specs, [{ id: "a" }]);
});

Deno.test("parseSpecArgument() parses an argument starting with [ as a JSON array of specs", () => {
  const list = parseSpecArgument(' ["echo a", {"id":"b","command":"echo b"}]');
  assert.deepEqual(list.specs, ["echo a", { id: "b", command: "echo b" }]);
  assert.equal(list.label, "JSON array");
  assert.equal(list.position(1), "item 2");
  assert.deepEqual(parseSpecArgument("[]").specs, []);
});

Deno.test("parseSpecArgument() takes any other argument as the command", () => {
  assert.deepEqual(parseSpecArgument("echo hi").specs, [{ command: "echo hi" }]);
  assert.deepEqual(parseSpecArgument("echo {}").specs, [{ command: "echo {}" }]);
  assert.deepEqual(parseSpecArgument("echo [1]").specs, [{ command: "echo [1]" }]);
  assert.deepEqual(parseSpecArgument('"echo" hi').specs, [{ command: '"echo" hi' }]);
});

Deno.test("parseSpecArgument() refuses malformed JSON", () => {
  for (const text of ["{", "{command: 'x'}", '{"command":"x",}', "{} extra", "[", '[ "a" ']) {
    assert.throws(() => parseSpecArgument(text), UsageError, text);
  }
});

Deno.test("parseSpecArgument() tells how to enqueue a command that starts with [", () => {
  assert.throws(
    () => parseSpecArgument('[ "$x" = y ] && echo "yes"'),
    (error) => error instanceof UsageError && /'\['.*\{"command"/.test(error.message),
  );
});

Deno.test("parseSpecArgument() takes the shell's [ test as a command, not JSON", () => {
  for (const text of ["[ -f x ] && make", "[ ! -d y ] || exit 1", '[  -n "$HOME" ]']) {
    assert.deepEqual(parseSpecArgument(text).specs, [{ command: text }], text);
  }
  for (const text of ['[ "a" ]', "[ 1, 2 ]", "[ -1 ]", "[ true ]", "[ {} ]", "[ ]"]) {
    assert.equal(parseSpecArgument(text).label, "JSON array", text);
  }
});

// resolveSpec: defaults and overrides

Deno.test("resolveSpec() fills in defaults from the config and context", () => {
  const job = resolve({ command: "echo hi" });
  assert.match(job.id, JOB_ID_PATTERN);
  assert.deepEqual({ ...job, id: "x" }, {
    id: "x",
    command: "echo hi",
    maxRetries: 5,
    priority: 0,
    runAt: NOW,
    timeoutMs: 60_000,
    cwd: BASE_DIR,
    queue: "default",
    after: [],
  });
});

Deno.test("resolveSpec() takes a bare string as the command", () => {
  assert.equal(resolve("sleep 1").command, "sleep 1");
});

Deno.test("resolveSpec() uses the fields of the spec", () => {
  const job = resolve({
    id: "job-1",
    command: "make",
    max_retries: 0,
    priority: 7,
    delay: "10s",
    timeout: "5m",
  });
  assert.deepEqual(job, {
    id: "job-1",
    command: "make",
    maxRetries: 0,
    priority: 7,
    runAt: NOW + 10_000,
    timeoutMs: 300_000,
    cwd: BASE_DIR,
    queue: "default",
    after: [],
  });
});

Deno.test("resolveSpec() lets command-line flags win over the JSON", () => {
  const job = resolve(
    { id: "from-json", command: "x", max_retries: 1, priority: 1, delay: "1s", timeout: "1s" },
    { id: "from-flag", maxRetries: 9, priority: 8, delayMs: 2_000, timeoutMs: 3_000 },
  );
  assert.equal(job.id, "from-flag");
  assert.equal(job.maxRetries, 9);
  assert.equal(job.priority, 8);
  assert.equal(job.runAt, NOW + 2_000);
  assert.equal(job.timeoutMs, 3_000);
});

Deno.test("resolveSpec() lets a --run-at flag win over a JSON delay", () => {
  const runAt = Date.UTC(2031, 5, 1);
  assert.equal(resolve({ command: "x", delay: "1h" }, { runAt }).runAt, runAt);
  assert.equal(resolve({ command: "x", run_at: "2031-01-01T00:00:00Z" }, { runAt }).runAt, runAt);
});

Deno.test("resolveSpec() refuses a spec that is not an object or string", () => {
  for (const raw of [null, 42, true, [], [{ command: "x" }]]) refused(raw);
});

Deno.test("resolveSpec() refuses an unknown field", () => {
  refused({ command: "x", comand: "y" }, {}, /comand/);
  refused({ command: "x", retries: 3 }, {}, /retries/);
});

// resolveSpec: command

Deno.test("resolveSpec() refuses a missing or non-string command", () => {
  refused({});
  refused({ id: "a" });
  refused({ command: 42 });
  refused({ command: ["echo", "hi"] });
  refused({ command: null });
});

Deno.test("resolveSpec() refuses an empty or whitespace command", () => {
  refused({ command: "" });
  refused({ command: "   " });
  refused({ command: "\t\n " });
  refused("");
});

Deno.test("resolveSpec() refuses a command holding a NUL byte", () => {
  refused({ command: "echo a\0b" }, {}, /NUL/);
});

Deno.test("resolveSpec() accepts a command of exactly MAX_COMMAND_BYTES bytes", () => {
  const command = "x".repeat(MAX_COMMAND_BYTES);
  assert.equal(resolve({ command }).command, command);
});

Deno.test("resolveSpec() refuses a command over MAX_COMMAND_BYTES bytes", () => {
  refused({ command: "x".repeat(MAX_COMMAND_BYTES + 1) });
});

Deno.test("resolveSpec() measures the command limit in UTF-8 bytes, not characters", () => {
  // 65,536 two-byte characters: under the limit in characters, over it in bytes.
  const command = "é".repeat(65_536);
  assert.ok(command.length < MAX_COMMAND_BYTES);
  refused({ command });
});

// resolveSpec: numbers

Deno.test("resolveSpec() accepts zero retries and zero priority", () => {
  const job = resolve({ command: "x", max_retries: 0, priority: 0 });
  assert.equal(job.maxRetries, 0);
  assert.equal(job.priority, 0);
});

Deno.test("resolveSpec() refuses negative, fractional or non-numeric max_retries", () => {
  for (const value of [-1, 1.5, "3", null, Number.NaN, 2 ** 60]) {
    refused({ command: "x", max_retries: value }, {}, /max_retries/);
  }
});

Deno.test("resolveSpec() refuses negative, fractional or non-numeric priority", () => {
  for (const value of [-1, 0.5, "1", true]) {
    refused({ command: "x", priority: value }, {}, /priority/);
  }
});

// resolveSpec: run_at and delay

Deno.test("resolveSpec() refuses run_at and delay together", () => {
  refused({ command: "x", run_at: "2030-01-31T12:00:00Z", delay: "10s" }, {}, /run_at/);
});

Deno.test("resolveSpec() reads run_at as an ISO time", () => {
  const job = resolve({ command: "x", run_at: "2030-01-31T12:00:00Z" });
  assert.equal(job.runAt, Date.UTC(2030, 0, 31, 12));
});

Deno.test("resolveSpec() refuses a run_at that is not an ISO time string", () => {
  refused({ command: "x", run_at: "tomorrow" });
  refused({ command: "x", run_at: Date.UTC(2030, 0, 31) });
});

Deno.test("resolveSpec() reads a numeric delay as seconds", () => {
  assert.equal(resolve({ command: "x", delay: 90 }).runAt, NOW + 90_000);
  assert.equal(resolve({ command: "x", delay: 1.5 }).runAt, NOW + 1_500);
  assert.equal(resolve({ command: "x", delay: 0 }).runAt, NOW);
});

Deno.test("resolveSpec() reads a string delay as a duration", () => {
  assert.equal(resolve({ command: "x", delay: "500ms" }).runAt, NOW + 500);
  assert.equal(resolve({ command: "x", delay: "2h" }).runAt, NOW + 7_200_000);
  assert.equal(resolve({ command: "x", delay: "30" }).runAt, NOW + 30_000);
});

Deno.test("resolveSpec() refuses a negative or malformed delay", () => {
  for (const delay of [-1, "-1s", "soon", true, null, Number.POSITIVE_INFINITY]) {
    refused({ command: "x", delay });
  }
});

// resolveSpec: timeout

Deno.test("resolveSpec() reads timeout as a duration or seconds", () => {
  assert.equal(resolve({ command: "x", timeout: "90s" }).timeoutMs, 90_000);
  assert.equal(resolve({ command: "x", timeout: 2 }).timeoutMs, 2_000);
});

Deno.test("resolveSpec() reads timeout_ms as whole milliseconds", () => {
  assert.equal(resolve({ command: "x", timeout_ms: 1_500 }).timeoutMs, 1_500);
});

Deno.test("resolveSpec() takes a null timeout as no timeout, over the config", () => {
  assert.equal(resolve({ command: "x", timeout: null }).timeoutMs, null);
  assert.equal(resolve({ command: "x", timeout_ms: null }).timeoutMs, null);
});

Deno.test("resolveSpec() uses no timeout when the config has none", () => {
  const context = { ...CONTEXT, config: DEFAULT_CONFIG };
  assert.equal(resolve({ command: "x" }, {}, context).timeoutMs, null);
});

Deno.test("resolveSpec() refuses timeout and timeout_ms together", () => {
  refused({ command: "x", timeout: "1s", timeout_ms: 1_000 });
});

Deno.test("resolveSpec() refuses a zero, negative or malformed timeout", () => {
  for (const timeout of [0, "0s", -1, "forever"]) refused({ command: "x", timeout });
  for (const timeout_ms of [0, -5, 1.5, "1000"]) refused({ command: "x", timeout_ms });
  refused({ command: "x" }, { timeoutMs: 0 });
});

// resolveSpec: cwd

Deno.test("resolveSpec() resolves a relative cwd against the context directory", () => {
  withTempDir((dir) => {
    Deno.mkdirSync(`${dir}/sub/deeper`, { recursive: true });
    const context = { ...CONTEXT, cwd: dir };
    assert.equal(resolve({ command: "x", cwd: "sub" }, {}, context).cwd, `${dir}/sub`);
    assert.equal(resolve({ command: "x", cwd: "sub/deeper/.." }, {}, context).cwd, `${dir}/sub`);
    assert.equal(
      resolve({ command: "x", cwd: "deeper" }, {}, { ...context, cwd: `${dir}/sub/` }).cwd,
      `${dir}/sub/deeper`,
    );
  });
});

Deno.test("resolveSpec() accepts an absolute cwd", () => {
  withTempDir((dir) => {
    assert.equal(resolve({ command: "x", cwd: dir }).cwd, dir);
  });
});

Deno.test("resolveSpec() lets the --cwd flag win over the JSON cwd", () => {
  withTempDir((dir) => {
    Deno.mkdirSync(`${dir}/a`);
    Deno.mkdirSync(`${dir}/b`);
    const context = { ...CONTEXT, cwd: dir };
    assert.equal(resolve({ command: "x", cwd: "a" }, { cwd: "b" }, context).cwd, `${dir}/b`);
  });
});

Deno.test("resolveSpec() refuses a cwd that is missing or not a directory", () => {
  withTempDir((dir) => {
    Deno.writeTextFileSync(`${dir}/file.txt`, "not a directory");
    refused({ command: "x", cwd: `${dir}/missing` }, {}, /cwd/);
    refused({ command: "x", cwd: `${dir}/file.txt` }, {}, /cwd/);
  });
});

Deno.test("resolveSpec() refuses an empty or non-string cwd", () => {
  for (const cwd of ["", 5, null, ["/tmp"]]) refused({ command: "x", cwd });
});

// ids

Deno.test("resolveSpec() keeps a valid id from the spec", () => {
  assert.equal(resolve({ command: "x", id: "build.v1:step_2-a" }).id, "build.v1:step_2-a");
});

Deno.test("resolveSpec() refuses an invalid id in the spec", () => {
  for (const id of ["", "a b", "-a", 'a"b', 42, null]) refused({ command: "x", id }, {}, /id/);
});

Deno.test("checkJobId() accepts letters, digits, dots, underscores, colons and dashes", () => {
  for (const id of ["a", "7", "job-1", "a.b.c", "ns:job:1", "A_B", "x".repeat(128)]) {
    assert.equal(checkJobId(id), id);
  }
});

Deno.test("checkJobId() refuses quotes, spaces and shell syntax", () => {
  for (const id of ["a'b", 'a"b', "a b", "a;b", "a$(x)", "$(rm)", "a`b`", "a|b", "a/b", "a\\b"]) {
    assert.throws(() => checkJobId(id), UsageError, id);
  }
});

Deno.test("checkJobId() refuses a leading dash, dot, underscore or colon", () => {
  for (const id of ["-a", "--help", ".a", "_a", ":a"]) {
    assert.throws(() => checkJobId(id), UsageError, id);
  }
});

Deno.test("checkJobId() refuses ids over 128 characters", () => {
  assert.throws(() => checkJobId("x".repeat(129)), UsageError);
});

Deno.test("checkJobId() refuses empty, non-string and line-broken ids", () => {
  for (const id of ["", "a\n", "a\nb", "é", undefined, 1, {}]) {
    assert.throws(() => checkJobId(id), UsageError, JSON.stringify(id));
  }
});

Deno.test("checkJobId() names the value in its error message", () => {
  assert.throws(
    () => checkJobId("a b", "--id"),
    (error) => error instanceof UsageError && /--id/.test(error.message),
  );
});

Deno.test("newJobId() gives 10,000 unique ids that match JOB_ID_PATTERN", () => {
  const ids = new Set<string>();
  for (let i = 0; i < 10_000; i++) {
    const id = newJobId();
    assert.match(id, JOB_ID_PATTERN);
    ids.add(id);
  }
  assert.equal(ids.size, 10_000);
});

Deno.test("newJobId() starts with the current time in base 36", () => {
  const before = Date.now();
  const id = newJobId();
  const after = Date.now();
  const [time, suffix] = id.split("-");
  const ms = parseInt(time, 36);
  assert.ok(ms >= before && ms <= after, `${ms} not in ${before}..${after}`);
  assert.match(suffix, /^[0-9a-z]{8}$/);
});

// parseSpecFile

/** The specs of a job file, each with its position. */
function fileSpecs(text: string): [unknown, string][] {
  const list = parseSpecFile(text);
  assert.equal(list.label, "job file");
  return list.specs.map((spec, index) => [spec, list.position(index)]);
}

Deno.test("parseSpecFile() reads one JSON object", () => {
  assert.deepEqual(fileSpecs('{"command":"echo a"}'), [[{ command: "echo a" }, "line 1"]]);
  assert.deepEqual(fileSpecs('\n{\n  "command": "echo a"\n}\n'), [[
    { command: "echo a" },
    "line 2",
  ]]);
});

Deno.test("parseSpecFile() reads a JSON array, finding the line each spec starts on", () => {
  const text = '[{"command":"a"}, "b",\n {"command":"c","priority":1}]';
  assert.deepEqual(fileSpecs(text), [
    [{ command: "a" }, "line 1 item 1"],
    ["b", "line 1 item 2"],
    [{ command: "c", priority: 1 }, "line 2"],
  ]);
  const pretty = JSON.stringify(
    [{ command: '[x] \\"]"' }, { command: "y", after: ["a"] }],
    null,
    2,
  );
  assert.deepEqual(fileSpecs(pretty).map(([, where]) => where), ["line 2", "line 5"]);
});

Deno.test("parseSpecFile() reads JSON Lines and skips blank lines", () => {
  const text = '\n{"command":"a"}\n\n   \n{"command":"b"}\r\n"c"\n';
  assert.deepEqual(parseSpecFile(text).specs, [{ command: "a" }, { command: "b" }, "c"]);
});

Deno.test("parseSpecFile() takes a line that is not JSON as the command, exactly", () => {
  const text = [
    "# nightly jobs",
    "grep -r TODO src > todo.txt",
    "",
    "  make -C build  ",
    "  # an indented comment",
    "tar czf a.tgz a\r",
    '{"id":"j","command":"echo json"}',
    '"echo a JSON string"',
    "true",
    "42",
    "echo '{not json}' [x]",
  ].join("\n");
  assert.deepEqual(fileSpecs(text), [
    ["grep -r TODO src > todo.txt", "line 2"],
    ["  make -C build  ", "line 4"],
    ["tar czf a.tgz a", "line 6"],
    [{ id: "j", command: "echo json" }, "line 7"],
    ["echo a JSON string", "line 8"],
    ["true", "line 9"],
    ["42", "line 10"],
    ["echo '{not json}' [x]", "line 11"],
  ]);
});

Deno.test("parseSpecFile() reads a line starting with [ as a JSON array of specs", () => {
  const text = 'echo first\n["echo a", {"id":"b","command":"echo b"}]\n["echo c"]\n';
  assert.deepEqual(fileSpecs(text), [
    ["echo first", "line 1"],
    ["echo a", "line 2 item 1"],
    [{ id: "b", command: "echo b" }, "line 2 item 2"],
    ["echo c", "line 3"],
  ]);
});

Deno.test("parseSpecFile() names the line number of a bad JSON line", () => {
  for (const bad of ['{"command": oops}', '[ "$x" = y ] && echo y', '"unclosed']) {
    const text = `{"command":"a"}\n\n${bad}\n{"command":"b"}\n`;
    assert.throws(
      () => parseSpecFile(text),
      (error) =>
        error instanceof UsageError && /^job file line 3: invalid JSON/.test(error.message),
      bad,
    );
  }
});

Deno.test("parseSpecFile() counts leading blank lines in the line number", () => {
  assert.throws(
    () => parseSpecFile('\n\n{"command":"a"}\n{not json\n'),
    (error) => error instanceof UsageError && /line 4\b/.test(error.message),
  );
});

Deno.test("parseSpecFile() refuses text with no jobs: empty, blank or only comments", () => {
  for (const text of ["", "   ", "\n\n\t\n", "# nothing yet\n\n  # still nothing\n"]) {
    assert.throws(() => parseSpecFile(text), UsageError, JSON.stringify(text));
  }
});

Deno.test("parseSpecFile() output resolves into jobs", () => {
  const jobs = parseSpecFile('{"command":"a"}\n"b"\nc\n').specs.map((raw) => resolve(raw));
  assert.deepEqual(jobs.map((job) => job.command), ["a", "b", "c"]);
});

// resolveSpecList

Deno.test("resolveSpecList() names the line of an invalid spec in a file", () => {
  const list = parseSpecFile('echo ok\n{"command":"x","priority":-1}\n');
  assert.throws(
    () => resolveSpecList(list, {}, CONTEXT),
    (error) => error instanceof UsageError && /^job file line 2: priority:/.test(error.message),
  );
  assert.throws(
    () => resolveSpecList(parseSpecArgument('["echo a", ""]'), {}, CONTEXT),
    (error) => error instanceof UsageError && /^JSON array item 2: /.test(error.message),
  );
});

Deno.test("resolveSpecList() refuses an id repeated in a file, naming both lines", () => {
  const lines = '{"id":"a","command":"x"}\necho y\n\n{"id":"a","command":"z"}\n';
  assert.throws(
    () => resolveSpecList(parseSpecFile(lines), {}, CONTEXT),
    (error) =>
      error instanceof UsageError &&
      error.message === "id 'a' is repeated in the job file: line 1 and line 4",
  );
  const array =
    '[\n {"id":"a","command":"x"},\n {"id":"b","command":"y"}, {"id":"a","command":"z"}\n]';
  assert.throws(
    () => resolveSpecList(parseSpecFile(array), {}, CONTEXT),
    (error) =>
      error instanceof UsageError &&
      error.message === "id 'a' is repeated in the job file: line 2 and line 3 item 3",
  );
  assert.throws(
    () =>
      resolveSpecList(
        parseSpecArgument('[{"id":"a","command":"x"},{"id":"a","command":"y"}]'),
        {},
        CONTEXT,
      ),
    (error) =>
      error instanceof UsageError &&
      error.message === "id 'a' is repeated in the JSON array: item 1 and item 2",
  );
});

Deno.test("resolveSpecList() refuses --id for several jobs and a list of none", () => {
  assert.throws(
    () => resolveSpecList(parseSpecArgument('["a","b"]'), { id: "x" }, CONTEXT),
    UsageError,
  );
  assert.throws(() => resolveSpecList(parseSpecArgument("[]"), {}, CONTEXT), UsageError);
  const [job] = resolveSpecList(parseSpecArgument('["a"]'), { id: "x" }, CONTEXT);
  assert.equal(job.id, "x");
});

// parseIsoTime

Deno.test("parseIsoTime() reads a UTC date-time", () => {
  assert.equal(parseIsoTime("2030-01-31T12:00:00Z", "run_at"), Date.UTC(2030, 0, 31, 12));
  assert.equal(
    parseIsoTime("2030-01-31T12:00:00.250Z", "run_at"),
    Date.UTC(2030, 0, 31, 12, 0, 0, 250),
  );
  assert.equal(parseIsoTime("2030-01-31T12:00Z", "run_at"), Date.UTC(2030, 0, 31, 12));
});

Deno.test("parseIsoTime() reads a date-time with an offset", () => {
  const expected = Date.UTC(2030, 0, 31, 10);
  assert.equal(parseIsoTime("2030-01-31T12:00:00+02:00", "run_at"), expected);
  assert.equal(parseIsoTime("2030-01-31T05:00:00-05:00", "run_at"), expected);
});

Deno.test("parseIsoTime() reads a date-time without an offset as local time", () => {
  assert.equal(
    parseIsoTime("2030-01-31T12:00:00", "run_at"),
    new Date(2030, 0, 31, 12, 0, 0).getTime(),
  );
});

Deno.test("parseIsoTime() reads a bare date as local midnight", () => {
  assert.equal(parseIsoTime("2030-01-31", "run_at"), new Date(2030, 0, 31).getTime());
});

Deno.test("parseIsoTime() takes a space or a lowercase t for T, and lowercase z", () => {
  const local = new Date(2030, 0, 31, 9, 30).getTime();
  assert.equal(parseIsoTime("2030-01-31 09:30", "run_at"), local);
  assert.equal(parseIsoTime("2030-01-31t09:30", "run_at"), local);
  assert.equal(parseIsoTime("2030-01-31 09:30:00z", "run_at"), Date.UTC(2030, 0, 31, 9, 30));
  assert.equal(parseIsoTime("2030-01-31 09:30+0130", "run_at"), Date.UTC(2030, 0, 31, 8));
});

Deno.test("parseIsoTime() keeps milliseconds and drops finer digits", () => {
  assert.equal(
    parseIsoTime("2030-01-31T12:00:00.1239Z", "run_at"),
    Date.UTC(2030, 0, 31, 12, 0, 0, 123),
  );
  assert.equal(
    parseIsoTime("2030-01-31T12:00:00.5Z", "run_at"),
    Date.UTC(2030, 0, 31, 12, 0, 0, 500),
  );
});

Deno.test("parseIsoTime() reads years before 100 as written, not as 19xx", () => {
  const expected = new Date(Date.UTC(2000, 11, 31));
  expected.setUTCFullYear(99);
  assert.equal(parseIsoTime("0099-12-31T00:00:00Z", "run_at"), expected.getTime());
  assert.equal(new Date(parseIsoTime("0099-12-31", "run_at")).getFullYear(), 99);
});

Deno.test("parseIsoTime() refuses text that is not an ISO time", () => {
  for (
    const text of [
      "tomorrow",
      "",
      "now",
      "2030/01/31",
      "31-01-2030",
      "1900000000",
      "2030-13-01",
      "2030-01-31  09:30",
      "2030-01-31T",
      "2030-01-31 9:30",
      "2030-01-31T09:30+24:00",
    ]
  ) {
    assert.throws(() => parseIsoTime(text, "run_at"), UsageError, text);
  }
});

Deno.test("parseIsoTime() refuses a calendar date that does not exist", () => {
  for (const text of ["2030-02-30", "2030-04-31", "2030-02-29T00:00:00Z"]) {
    assert.throws(() => parseIsoTime(text, "run_at"), UsageError, text);
  }
});

Deno.test("parseIsoTime() names the value in its error message", () => {
  assert.throws(
    () => parseIsoTime("later", "--run-at"),
    (error) => error instanceof UsageError && /--run-at/.test(error.message),
  );
});

Deno.test("resolveSpec() reads env, merging --env over the spec's own variables", () => {
  const job = resolve({ command: "x", env: { A: "1", B: "spec" } }, { env: { B: "flag", C: "" } });
  assert.deepEqual(job.env, { A: "1", B: "flag", C: "" });
  assert.equal(resolve("x").env, undefined, "a job that sets nothing carries no env");
  refused({ command: "x", env: ["A=1"] }, {}, /'env' must be an object of strings/);
  refused({ command: "x", env: { A: 1 } }, {}, /env: the value of A must be a string/);
  refused({ command: "x", env: { "1A": "x" } }, {}, /env: "1A" is not a valid variable name/);
  refused({ command: "x", env: { "A-B": "x" } }, {}, /not a valid variable name/);
  refused({ command: "x", env: { A: "a\0b" } }, {}, /contains a NUL byte/);
  refused({ command: "x", env: { QUEUECTL_ATTEMPT: "9" } }, {}, /set by the worker/);
});

Deno.test("resolveSpec() reads unique_key and unique_for; unique_for needs a key", () => {
  const job = resolve({ command: "x", unique_key: "nightly", unique_for: "1h" });
  assert.deepEqual([job.uniqueKey, job.uniqueForMs], ["nightly", 3_600_000]);
  const flags = resolve({ command: "x", unique_key: "spec" }, { uniqueKey: "flag" });
  assert.deepEqual([flags.uniqueKey, flags.uniqueForMs], ["flag", 0]);
  assert.equal(resolve("x").uniqueKey, undefined);
  refused({ command: "x", unique_for: "1h" }, {}, /unique_for \(--unique-for\) needs a unique_key/);
  refused({ command: "x", unique_key: "" }, {}, /non-empty string/);
  refused({ command: "x", unique_key: 7 }, {}, /non-empty string/);
  refused({ command: "x", unique_key: "k".repeat(257) }, {}, /longer than 256/);
  refused({ command: "x", unique_key: "k", unique_for: "soon" }, {}, /unique_for/);
});
