/**
 * Hostile input. Seeded property tests run the spec parsers in-process over a
 * few hundred generated inputs each; a smaller sample then goes through the
 * real CLI. Every input either becomes a job whose fields round-trip exactly,
 * or is refused as invalid input (a UsageError; exit 2 and one line on
 * stderr): never another error, never a stack trace, and nothing in a job
 * spec runs at enqueue time.
 *
 * The cases are drawn from a fixed seed; set QUEUECTL_FUZZ_SEED to draw
 * others. Assertion messages name the seed and the case.
 */

import assert from "node:assert/strict";
import { DEFAULT_CONFIG, type QueueConfig } from "../lib/config.ts";
import { MAX_DURATION_MS, parseDuration } from "../lib/duration.ts";
import { UsageError } from "../lib/errors.ts";
import type { JobJson, NewJob } from "../lib/job.ts";
import {
  checkJobId,
  MAX_COMMAND_BYTES,
  parseSpecArgument,
  parseSpecFile,
  resolveSpec,
  type SpecContext,
  type SpecOverrides,
} from "../lib/spec.ts";
import {
  assertRefused,
  cli,
  type CliResult,
  exitWithin,
  killProcess,
  listJobs,
  mapLimit,
  pathExists,
  SeededRandom,
  showJob,
  startWorker,
  waitFor,
  withQueue,
} from "./helpers.ts";

const SEED = Number(Deno.env.get("QUEUECTL_FUZZ_SEED") ?? 20_261_122);
/** Generated cases per in-process property. */
const CASES = 400;
/** Generated cases per property run through the real CLI (each costs a process). */
const CLI_CASES = 36;

const encoder = new TextEncoder();
const byteLength = (text: string) => encoder.encode(text).length;

// ---------------------------------------------------------------------------
// Oracles, written from the README rather than from lib/.

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** README: 1–128 characters: letters, digits, `.` `_` `:` `@` `-`; starts with a letter or digit. */
function isValidId(id: string): boolean {
  if (id.length < 1 || id.length > 128) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id[i];
    const alnum = (c >= "A" && c <= "Z") || (c >= "a" && c <= "z") || (c >= "0" && c <= "9");
    if (!alnum && (i === 0 || !"._:@-".includes(c))) return false;
  }
  return true;
}

const SPEC_FIELDS = [
  "id",
  "command",
  "max_retries",
  "priority",
  "run_at",
  "delay",
  "timeout",
  "timeout_ms",
  "cwd",
] as const;

// ---------------------------------------------------------------------------
// Generators.

const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join("");
const ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-";
const ALNUM = ID_CHARS.slice(0, 62);

/**
 * Pieces that break naive quoting, parsing or display. Lone surrogates are
 * left out on purpose: they have no UTF-8 form, and have a test of their own.
 */
const HOSTILE_PIECES = [
  "'",
  '"',
  "\\",
  "`",
  "$",
  "$(touch pwned)",
  "`touch pwned`",
  "${HOME}",
  ";",
  "&&",
  "|",
  ">",
  "<",
  "*",
  "?",
  "~",
  "#",
  "!",
  "{",
  "}",
  "[",
  "]",
  "(",
  ")",
  " ",
  "\t",
  "\n",
  "\r\n",
  "\x01",
  "\x1b[31m",
  "\x7f",
  "\u0085",
  "\u00a0",
  "\u2028",
  "\u2029",
  "\ufeff",
  "\u200b",
  "\u200d",
  "\u200f",
  "\u202e",
  "😀",
  "👩‍👩‍👧‍👦",
  "🇺🇳",
  "שלום",
  "مرحبا",
  "e\u0301",
  "Z\u0351\u0352\u0353\u0354",
  "漢字",
  "\ufdfa",
  "\uffff",
  "%s%n",
  "{{x}}",
  "-",
  "--",
  "--db",
  "..",
  "/",
  "\\u0000",
  "null",
  "1e309",
  "__proto__",
];

/** A random code point that is not a surrogate, from anywhere in Unicode. */
function randomCodePoint(rng: SeededRandom): string {
  if (rng.chance(0.3)) return String.fromCodePoint(rng.between(0x10000, 0x10ffff));
  const code = rng.between(0x80, 0xfffd - 0x800);
  return String.fromCharCode(code < 0xd800 ? code : code + 0x800);
}

/** Text made of hostile pieces, printable runs, id-like runs, controls and any code points. */
function randomText(rng: SeededRandom, maxPieces = 6, nul = false): string {
  let text = "";
  for (let n = rng.int(maxPieces + 1); n > 0; n--) {
    switch (rng.int(5)) {
      case 0:
        text += rng.pick(HOSTILE_PIECES);
        break;
      case 1:
        for (let k = rng.between(1, 8); k > 0; k--) text += rng.pick([...PRINTABLE]);
        break;
      case 2:
        text += randomIdLike(rng);
        break;
      case 3:
        text += nul && rng.chance(0.3) ? "\0" : String.fromCharCode(rng.between(1, 31));
        break;
      default:
        text += randomCodePoint(rng);
    }
  }
  return text;
}

/** Mostly id characters, sometimes a hostile one, sometimes too long. */
function randomIdLike(rng: SeededRandom): string {
  const length = rng.chance(0.1) ? rng.between(125, 131) : rng.between(0, 12);
  let id = "";
  for (let i = 0; i < length; i++) {
    id += rng.chance(0.93) ? rng.pick([...ID_CHARS]) : rng.pick(HOSTILE_PIECES);
  }
  return id;
}

function validId(rng: SeededRandom): string {
  const length = rng.chance(0.05) ? 128 : rng.between(1, 40);
  let id = rng.pick([...ALNUM]);
  while (id.length < length) id += rng.pick([...ID_CHARS]);
  return id;
}

/**
 * Sets a field as JSON.parse would: a key such as "__proto__" becomes a plain
 * own field rather than reaching for the prototype.
 */
function setField(object: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(object, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/** Any JSON value, hostile strings included. */
function randomJson(rng: SeededRandom, depth = 0): unknown {
  switch (rng.int(depth > 2 ? 6 : 8)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, 1, -1, 0.5, 1.5, 1e21, 1e-7, 2 ** 53, 2 ** 53 - 1, -(2 ** 31), 1e308]);
    case 3:
      return rng.int(1000);
    case 4:
    case 5:
      return randomText(rng);
    case 6:
      return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth + 1));
    default: {
      const object: Record<string, unknown> = {};
      for (let n = rng.int(4); n > 0; n--) {
        const key = rng.chance(0.6) ? rng.pick(SPEC_FIELDS) : randomText(rng, 2);
        setField(object, key, randomJson(rng, depth + 1));
      }
      return object;
    }
  }
}

function validCommand(rng: SeededRandom): string {
  if (rng.chance(0.01)) return "x".repeat(MAX_COMMAND_BYTES); // the longest, in 1-byte characters
  if (rng.chance(0.01)) return "é".repeat(Math.floor(MAX_COMMAND_BYTES / 2)); // 2-byte characters
  const text = randomText(rng, 8);
  return text.trim() === "" ? `${text}true` : text;
}

/** A duration string in one of the README's forms, and its value in ms. */
function durationText(rng: SeededRandom, positive: boolean): [string, number] {
  while (true) {
    const unit = rng.pick(["ms", "s", "m", "h", "d", ""]);
    const scale = UNIT_MS[unit || "s"];
    const most = Math.min(Math.floor(MAX_DURATION_MS / scale), 1_000_000);
    const whole = String(rng.int(most + 1));
    const digits = Array.from({ length: rng.between(1, 3) }, () => rng.int(10)).join("");
    const number = rng.chance(0.7) ? whole : `${rng.int(Math.min(most, 1000))}.${digits}`;
    const ms = Math.round(Number(number) * scale);
    if (ms > MAX_DURATION_MS || (positive && ms === 0)) continue;
    const text = `${number}${unit}`;
    return [rng.chance(0.15) ? ` ${text}\t` : text, ms];
  }
}

/** A JSON number of seconds, and its value in ms. */
function durationSeconds(rng: SeededRandom, positive: boolean): [number, number] {
  const value = rng.chance(0.6) ? rng.int(1_000_000) : rng.int(1_000_000) / 1000;
  if (positive && value === 0) return [1, 1000];
  return [value, Math.round(value * 1000)];
}

const pad2 = (n: number) => String(n).padStart(2, "0");

/** An ISO 8601 time in one of several forms, and the instant it names. */
function isoTime(rng: SeededRandom): [string, number] {
  const latest = Date.UTC(2099, 11, 31);
  switch (rng.int(4)) {
    case 0: {
      const ms = rng.between(0, latest);
      return [new Date(ms).toISOString(), ms];
    }
    case 1: {
      // Whole seconds with an offset: the text shows local time at that offset.
      const utc = rng.between(1, latest / 1000) * 1000;
      const offsetMinutes = rng.between(-48, 56) * 15;
      const local = new Date(utc + offsetMinutes * 60_000);
      const sign = offsetMinutes < 0 ? "-" : "+";
      const abs = Math.abs(offsetMinutes);
      const colon = rng.chance(0.5) ? ":" : "";
      const text = `${local.getUTCFullYear()}-${pad2(local.getUTCMonth() + 1)}-${
        pad2(local.getUTCDate())
      }T${pad2(local.getUTCHours())}:${pad2(local.getUTCMinutes())}:${
        pad2(local.getUTCSeconds())
      }${sign}${pad2(Math.floor(abs / 60))}${colon}${pad2(abs % 60)}`;
      return [text, utc];
    }
    case 2: {
      // README: a date without a time is local midnight.
      const date = new Date(rng.between(0, latest));
      const midnight = new Date(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate());
      return [date.toISOString().slice(0, 10), midnight.getTime()];
    }
    default: {
      // More fractional digits than milliseconds: the rest is dropped.
      const ms = rng.between(0, latest);
      const extra = Array.from({ length: rng.between(1, 6) }, () => rng.int(10)).join("");
      return [new Date(ms).toISOString().replace("Z", `${extra}Z`), ms];
    }
  }
}

/** Folder names that a careless `cd $cwd` or `sh -c "cd $cwd"` would misread. */
const HOSTILE_DIR_NAMES = [
  "plain",
  "with space",
  "$(touch pwned)",
  "`touch pwned`",
  "quote'\"d",
  "semi;colon",
  "new\nline",
  "emoji 😀",
  "שלום",
  "e\u0301",
  "-rf",
  "back\\slash",
];

/** Makes the hostile folders under `base`; returns `base` resolved. */
function makeHostileDirs(base: string): string {
  for (const name of HOSTILE_DIR_NAMES) Deno.mkdirSync(`${base}/${name}`);
  Deno.writeTextFileSync(`${base}/file.txt`, "not a folder\n");
  return Deno.realPathSync(base);
}

/** The job fields a valid spec should resolve to; `id` is undefined when one is generated. */
type Expected = Omit<NewJob, "id"> & { id?: string };

interface GeneratedSpec {
  raw: Record<string, unknown>;
  expected: Expected;
}

/** A valid spec, built field by field so that the job it must become is known. */
function validSpec(rng: SeededRandom, context: SpecContext): GeneratedSpec {
  const raw: Record<string, unknown> = {};
  const command = validCommand(rng);
  raw.command = command;
  let id: string | undefined;
  if (rng.chance(0.7)) raw.id = id = validId(rng);
  let maxRetries = context.config.maxRetries;
  if (rng.chance(0.5)) {
    raw.max_retries = maxRetries = rng.pick([0, 1, 3, rng.int(1_000_000), Number.MAX_SAFE_INTEGER]);
  }
  let priority = 0;
  if (rng.chance(0.5)) {
    raw.priority = priority = rng.pick([0, 1, 5, rng.int(1_000_000), Number.MAX_SAFE_INTEGER]);
  }
  let runAt = context.now;
  switch (rng.int(4)) {
    case 1: {
      const [text, ms] = isoTime(rng);
      raw.run_at = text;
      runAt = ms;
      break;
    }
    case 2: {
      const [text, ms] = durationText(rng, false);
      raw.delay = text;
      runAt = context.now + ms;
      break;
    }
    case 3: {
      const [value, ms] = durationSeconds(rng, false);
      raw.delay = value;
      runAt = context.now + ms;
      break;
    }
  }
  let timeoutMs = context.config.jobTimeoutMs;
  switch (rng.int(6)) {
    case 1: {
      const [text, ms] = durationText(rng, true);
      raw.timeout = text;
      timeoutMs = ms;
      break;
    }
    case 2: {
      const [value, ms] = durationSeconds(rng, true);
      raw.timeout = value;
      timeoutMs = ms;
      break;
    }
    case 3:
      raw.timeout_ms = timeoutMs = rng.chance(0.1) ? MAX_DURATION_MS : rng.between(1, 1e7);
      break;
    case 4:
      raw.timeout = timeoutMs = null;
      break;
    case 5:
      raw.timeout_ms = timeoutMs = null;
      break;
  }
  let cwd = context.cwd;
  if (rng.chance(0.5)) {
    const name = rng.pick(HOSTILE_DIR_NAMES);
    raw.cwd = rng.pick([
      `${context.cwd}/${name}`,
      name,
      `./${name}/`,
      `${name}/../${name}`,
    ]);
    cwd = Deno.realPathSync(`${context.cwd}/${name}`);
  } else if (rng.chance(0.1)) {
    raw.cwd = rng.pick([".", "./", context.cwd, `${context.cwd}/`]);
  }
  return {
    raw,
    expected: {
      id,
      queue: "default",
      command,
      maxRetries,
      priority,
      runAt,
      timeoutMs,
      cwd,
      after: [],
    },
  };
}

/** One to three changes that may (or may not) make a valid spec invalid. */
function mutate(rng: SeededRandom, spec: Record<string, unknown>): Record<string, unknown> {
  const raw = { ...spec };
  const changes: (() => void)[] = [
    () => raw[rng.pick(SPEC_FIELDS)] = randomJson(rng),
    () => setField(raw, randomText(rng, 2), randomJson(rng)),
    () => delete raw.command,
    () => raw.command = rng.pick(["", " ", "\t\n", "\u00a0", "\u2028", "\ufeff \r\n"]),
    () => raw.command = `${raw.command}\0`,
    () => raw.command = rng.pick(["x", "é", "😀"]).repeat(MAX_COMMAND_BYTES + rng.int(3)),
    () => raw.id = randomIdLike(rng),
    () => {
      raw.run_at = "2030-01-01T00:00:00Z";
      raw.delay = "1s";
    },
    () => {
      raw.timeout = "1s";
      raw.timeout_ms = 1000;
    },
    () =>
      raw.run_at = rng.pick([
        "2030-02-30",
        "2030-13-01",
        "2030-01-01T24:00:00Z",
        "2030-01-01T00:60:00Z",
        "tomorrow",
        "2030-01-01T00:00:00+99:99",
        "  2030-01-01T00:00:00Z  ",
        "1893456000000",
        "",
        "2030-01-01T00:00:00.1234567890Z",
      ]),
    () =>
      raw[rng.pick(["delay", "timeout"])] = rng.pick([
        "-1s",
        "1e3",
        "1.s",
        ".5s",
        "5 s",
        "5S",
        "Infinity",
        "NaN",
        "0x10",
        "36500d",
        "36501d",
        "\u0661s",
        "0",
        "0ms",
        "0.0001ms",
        1e21,
        1e-7,
        -1,
        0,
        "",
      ]),
    () =>
      raw[rng.pick(["max_retries", "priority", "timeout_ms"])] = rng.pick([
        -1,
        1.5,
        "3",
        2 ** 53,
        1e308,
        null,
        true,
        0,
        MAX_DURATION_MS + 1,
      ]),
    () =>
      raw.cwd = rng.pick([
        "",
        "missing-folder",
        "/nonexistent/folder",
        "$(touch pwned)",
        "file.txt",
        "plain\0",
        5,
        null,
      ]),
  ];
  for (let n = rng.between(1, 3); n > 0; n--) rng.pick(changes)();
  return raw;
}

/** A short, printable preview of an input for assertion messages. */
function preview(value: unknown): string {
  let text: string;
  try {
    text = typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value) ?? "?";
  } catch {
    text = String(value);
  }
  return text.length > 300 ? `${text.slice(0, 300)}… (${text.length} chars)` : text;
}

/** Runs `fn`; returns its value, or undefined for a UsageError. Any other error fails the test. */
function orRefused<T>(what: string, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (error) {
    if (error instanceof UsageError) return undefined;
    assert.fail(`${what}: threw ${(error as Error)?.name} instead of a UsageError: ${error}`);
  }
}

/** Checks what every accepted spec must give, whatever else it says. */
function assertSound(job: NewJob, raw: unknown, context: SpecContext, what: string): void {
  const fields = (typeof raw === "string" ? { command: raw } : raw) as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    assert.ok((SPEC_FIELDS as readonly string[]).includes(key), `${what}: accepted field ${key}`);
  }
  assert.ok(isValidId(job.id), `${what}: id ${preview(job.id)}`);
  if (typeof fields.id === "string") assert.equal(job.id, fields.id, `${what}: id`);
  assert.equal(job.command, fields.command, `${what}: command`);
  assert.ok(job.command.trim() !== "" && !job.command.includes("\0"), `${what}: command`);
  assert.ok(byteLength(job.command) <= MAX_COMMAND_BYTES, `${what}: command length`);
  for (
    const [field, value, fallback] of [
      ["max_retries", job.maxRetries, context.config.maxRetries],
      ["priority", job.priority, 0],
    ] as const
  ) {
    assert.ok(Number.isSafeInteger(value) && value >= 0, `${what}: ${field} ${value}`);
    assert.equal(value, fields[field] ?? fallback, `${what}: ${field}`);
  }
  assert.ok(Number.isFinite(job.runAt), `${what}: run_at ${job.runAt}`);
  if (fields.run_at === undefined && fields.delay === undefined) {
    assert.equal(job.runAt, context.now, `${what}: run_at`);
  }
  if (fields.delay !== undefined) {
    const wait = job.runAt - context.now;
    assert.ok(wait >= 0 && wait <= MAX_DURATION_MS, `${what}: delay ${wait}`);
  }
  if (job.timeoutMs !== null) {
    assert.ok(
      Number.isInteger(job.timeoutMs) && job.timeoutMs > 0 && job.timeoutMs <= MAX_DURATION_MS,
      `${what}: timeout ${job.timeoutMs}`,
    );
  }
  if (typeof fields.timeout_ms === "number") assert.equal(job.timeoutMs, fields.timeout_ms);
  if (fields.timeout === undefined && fields.timeout_ms === undefined) {
    assert.equal(job.timeoutMs, context.config.jobTimeoutMs, `${what}: timeout`);
  }
  assert.ok(job.cwd.startsWith("/"), `${what}: cwd ${preview(job.cwd)}`);
  assert.ok(Deno.statSync(job.cwd).isDirectory, `${what}: cwd is a folder`);
  assert.equal(job.cwd, Deno.realPathSync(job.cwd), `${what}: cwd is resolved`);
}

function assertMatches(job: NewJob, expected: Expected, what: string): void {
  if (expected.id === undefined) {
    assert.ok(isValidId(job.id), `${what}: generated id ${job.id}`);
    assert.deepEqual({ ...job, id: "generated" }, { ...expected, id: "generated" }, what);
  } else {
    assert.deepEqual(job, expected, what);
  }
}

/** A non-default config, so that defaults visibly come from it. */
const CONFIG: QueueConfig = { ...DEFAULT_CONFIG, maxRetries: 5, jobTimeoutMs: 60_000 };
const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);

/** Runs `fn` with a context whose cwd holds the hostile folders. */
function withContext(fn: (context: SpecContext) => void): void {
  const base = Deno.makeTempDirSync({ prefix: "queuectl-hostile-" });
  try {
    fn({ now: NOW, cwd: makeHostileDirs(base), config: CONFIG });
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
}

// ---------------------------------------------------------------------------
// In-process properties.

Deno.test("checkJobId() accepts exactly the ids the README describes, and refuses the rest", () => {
  const rng = new SeededRandom(SEED);
  for (let i = 0; i < CASES; i++) {
    const id = rng.pick([randomIdLike, validId, randomText] as const)(rng);
    const what = `seed ${SEED} case ${i}: id ${preview(id)}`;
    const result = orRefused(what, () => checkJobId(id));
    assert.equal(result !== undefined, isValidId(id), `${what}: accepted?`);
    if (result !== undefined) assert.equal(result, id, what);
  }
  for (const value of [undefined, null, 5, true, [], {}, ["a"], { id: "a" }]) {
    assert.equal(orRefused(preview(value), () => checkJobId(value)), undefined, preview(value));
  }
});

Deno.test("parseDuration() gives the README's value for every valid form and refuses the rest", () => {
  const rng = new SeededRandom(SEED + 1);
  for (let i = 0; i < CASES; i++) {
    const [text, ms] = durationText(rng, false);
    assert.equal(parseDuration(text), ms, `seed ${SEED + 1} case ${i}: ${preview(text)}`);
  }
  const grammar = /^\s*\d+(\.\d+)?(ms|s|m|h|d)?\s*$/;
  for (let i = 0; i < CASES; i++) {
    const text = rng.chance(0.5)
      ? randomText(rng, 3, true)
      : `${rng.pick(["", "-", "+", " ", "."])}${rng.int(1e6)}${rng.pick(["", ".", ".5", "e3"])}${
        rng.pick(["", "ms", "s", "m", "h", "d", "S", "us", "w", " s", "sec"])
      }`;
    const what = `seed ${SEED + 1} case ${i}: ${preview(text)}`;
    const ms = orRefused(what, () => parseDuration(text, "--delay"));
    if (ms !== undefined) {
      assert.ok(grammar.test(text), `${what}: accepted outside the grammar`);
      assert.ok(Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_DURATION_MS, `${what}: ${ms}`);
    }
  }
  for (const text of ["36500d", "3153600000", "3153600000000ms"]) {
    assert.equal(parseDuration(text), MAX_DURATION_MS, text);
  }
  for (const text of ["36501d", "3153600001", "1".repeat(400), "1".repeat(400) + "ms"]) {
    assert.equal(orRefused(text, () => parseDuration(text)), undefined, text);
  }
});

Deno.test("parseSpecArgument() gives the JSON object, array or {command}, else a UsageError", () => {
  const rng = new SeededRandom(SEED + 2);
  withContext((context) => {
    for (let i = 0; i < CASES; i++) {
      let text: string;
      switch (rng.int(3)) {
        case 0:
          text = randomText(rng, 8, true);
          break;
        case 1:
          text = JSON.stringify(randomJson(rng));
          break;
        default:
          text = JSON.stringify(mutate(rng, validSpec(rng, context).raw));
      }
      if (rng.chance(0.2)) text = rng.pick([" ", "\n", "\t ", "\r\n", "\ufeff"]) + text;
      if (rng.chance(0.1)) text += rng.pick([" ", "}", "x", "\n{}", ","]);
      const what = `seed ${SEED + 2} case ${i}: ${preview(text)}`;
      const parsed = orRefused(what, () => parseSpecArgument(text))?.specs;
      if (!/^[{[]/.test(text.trimStart())) {
        assert.deepEqual(parsed, [{ command: text }], what);
        continue;
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        assert.equal(parsed, undefined, `${what}: malformed JSON accepted`);
        continue;
      }
      assert.deepEqual(parsed, Array.isArray(json) ? json : [json], what);
    }
  });
});

Deno.test("valid specs resolve to exactly the fields they give, directly and through JSON text", () => {
  const rng = new SeededRandom(SEED + 3);
  withContext((context) => {
    for (let i = 0; i < CASES; i++) {
      const { raw, expected } = validSpec(rng, context);
      const what = `seed ${SEED + 3} case ${i}: ${preview(raw)}`;
      const job = resolveSpec(raw, {}, context);
      assertMatches(job, expected, what);
      assertSound(job, raw, context, what);

      const text = (rng.chance(0.3) ? " \n" : "") + JSON.stringify(raw, null, rng.pick([0, 2]));
      const [parsed] = parseSpecArgument(text).specs;
      assert.deepEqual(parsed, raw, `${what}: through JSON text`);
      assertMatches(resolveSpec(parsed, {}, context), expected, `${what}: through JSON text`);
      if (rng.chance(0.2)) {
        // A bare command is the same as {"command": ...}.
        const bare = resolveSpec(raw.command, {}, context);
        assert.equal(bare.command, raw.command, `${what}: as a bare command`);
      }
    }
  });
});

Deno.test("command-line overrides win over every JSON field, exactly", () => {
  const rng = new SeededRandom(SEED + 4);
  withContext((context) => {
    for (let i = 0; i < CASES; i++) {
      const { raw, expected } = validSpec(rng, context);
      const overrides: SpecOverrides = {};
      const want: Expected = { ...expected };
      if (rng.chance(0.4)) want.id = overrides.id = validId(rng);
      if (rng.chance(0.4)) want.maxRetries = overrides.maxRetries = rng.int(100);
      if (rng.chance(0.4)) want.priority = overrides.priority = rng.int(100);
      if (rng.chance(0.3)) {
        overrides.delayMs = rng.int(10_000_000);
        want.runAt = context.now + overrides.delayMs;
      }
      if (rng.chance(0.3)) want.runAt = overrides.runAt = rng.between(0, NOW * 2);
      if (rng.chance(0.4)) want.timeoutMs = overrides.timeoutMs = rng.between(1, 10_000_000);
      if (rng.chance(0.4)) {
        const name = rng.pick(HOSTILE_DIR_NAMES);
        overrides.cwd = rng.chance(0.5) ? name : `${context.cwd}/${name}`;
        want.cwd = Deno.realPathSync(`${context.cwd}/${name}`);
      }
      const what = `seed ${SEED + 4} case ${i}: ${preview(raw)} with ${preview(overrides)}`;
      assertMatches(resolveSpec(raw, overrides, context), want, what);
    }
  });
});

Deno.test("hostile specs either resolve to a sound job or throw a UsageError, never anything else", () => {
  const rng = new SeededRandom(SEED + 5);
  withContext((context) => {
    let accepted = 0;
    for (let i = 0; i < CASES * 2; i++) {
      const raw = rng.chance(0.7) ? mutate(rng, validSpec(rng, context).raw) : randomJson(rng);
      const what = `seed ${SEED + 5} case ${i}: ${preview(raw)}`;
      const job = orRefused(what, () => resolveSpec(raw, {}, context));
      if (job === undefined) continue;
      accepted++;
      assertSound(job, raw, context, what);
    }
    // The mutations must leave some specs valid, or this test checks only refusals.
    assert.ok(accepted > CASES / 10, `only ${accepted} hostile specs were accepted`);
  });
});

Deno.test("parseSpecFile() reads a JSON object, a JSON array or JSON Lines back exactly", () => {
  const rng = new SeededRandom(SEED + 6);
  withContext((context) => {
    for (let i = 0; i < CASES; i++) {
      const items: unknown[] = Array.from(
        { length: rng.int(6) },
        () => rng.chance(0.8) ? validSpec(rng, context).raw : validCommand(rng),
      );
      let format = rng.pick(["array", "lines", "single"]);
      if (format === "single" && items.length !== 1) format = "lines";
      let text: string;
      if (format === "array") text = JSON.stringify(items, null, rng.pick([0, 2]));
      else if (format === "single") text = JSON.stringify(items[0], null, rng.pick([0, 2]));
      else {
        text = items.map((item) => JSON.stringify(item)).join(rng.pick(["\n", "\r\n", "\n\n \n"]));
      }
      text = rng.pick(["", "\n", " \r\n"]) + text + rng.pick(["", "\n", "\r\n", "\n\n"]);
      const what = `seed ${SEED + 6} case ${i}: ${format} ${preview(text)}`;
      if (format === "lines" && items.length === 0) {
        assert.equal(orRefused(what, () => parseSpecFile(text)), undefined, what);
        continue;
      }
      assert.deepEqual(parseSpecFile(text).specs, items, what);
    }
  });
});

Deno.test("parseSpecFile() turns any other text into a UsageError, never another error", () => {
  const rng = new SeededRandom(SEED + 7);
  withContext((context) => {
    for (let i = 0; i < CASES; i++) {
      const lines = Array.from({ length: rng.between(1, 5) }, () => {
        switch (rng.int(3)) {
          case 0:
            return randomText(rng, 6, true);
          case 1:
            return JSON.stringify(randomJson(rng));
          default:
            return JSON.stringify(mutate(rng, validSpec(rng, context).raw));
        }
      });
      const text = lines.join(rng.pick(["\n", "\r\n", " "]));
      const what = `seed ${SEED + 7} case ${i}: ${preview(text)}`;
      const specs = orRefused(what, () => parseSpecFile(text))?.specs;
      if (specs === undefined) continue;
      assert.ok(Array.isArray(specs), what);
      for (const [index, spec] of specs.entries()) {
        const job = orRefused(`${what} spec ${index}`, () => resolveSpec(spec, {}, context));
        if (job) assertSound(job, spec, context, `${what} spec ${index}`);
      }
    }
  });
});

Deno.test("deeply nested JSON anywhere in a spec is a UsageError", () => {
  withContext((context) => {
    for (const depth of [10_000, 100_000]) {
      const arrays = "[".repeat(depth) + "]".repeat(depth);
      const objects = '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
      for (const nested of [arrays, objects]) {
        const kind = `${depth} nested ${nested === arrays ? "arrays" : "objects"}`;
        for (const field of SPEC_FIELDS) {
          const text = field === "command"
            ? `{"command":${nested}}`
            : `{"command":"true","${field}":${nested}}`;
          const refused = orRefused(
            `${kind} in ${field}`,
            () => resolveSpec(parseSpecArgument(text).specs[0], {}, context),
          );
          assert.equal(refused, undefined, `${kind} in ${field}`);
        }
        const file = orRefused(
          `${kind} as a file`,
          () => parseSpecFile(nested).specs.map((spec) => resolveSpec(spec, {}, context)),
        );
        assert.equal(file, undefined, `${kind} as a file`);
        const unclosed = nested.slice(0, nested.length / 2);
        assert.equal(orRefused(kind, () => parseSpecArgument(`{"x":${unclosed}`)), undefined);
        assert.equal(orRefused(kind, () => parseSpecFile(unclosed)), undefined);
      }
    }
  });
});

// ---------------------------------------------------------------------------
// Through the real CLI.

/** What `enqueue` should do with an input, worked out in-process beforehand. */
interface Prediction {
  /** Undefined when the input must be refused with exit 2. */
  jobs?: NewJob[];
  /** The ids the specs name (undefined where one is generated). */
  ids: (string | undefined)[];
  /** Whether each job's run_at is absolute (run_at) rather than relative to the enqueue. */
  absolute: boolean[];
}

const PREDICT_NOW = Date.UTC(2030, 0, 1);

function predict(raws: unknown[] | undefined, cwd: string): Prediction {
  const context: SpecContext = { now: PREDICT_NOW, cwd, config: DEFAULT_CONFIG };
  const fields = (raw: unknown) =>
    (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  const jobs = raws === undefined || raws.length === 0
    ? undefined
    : orRefused(preview(raws), () => raws.map((raw) => resolveSpec(raw, {}, context)));
  return {
    jobs,
    ids: (raws ?? []).map((raw) => {
      const id = fields(raw).id;
      return typeof id === "string" ? id : undefined;
    }),
    absolute: (raws ?? []).map((raw) => fields(raw).run_at !== undefined),
  };
}

/** An enqueue that went through, to check against the stored job afterwards. */
interface Accepted {
  id: string;
  job: NewJob;
  absolute: boolean;
  /** The moments just before and after the enqueue ran. */
  from: number;
  to: number;
  what: string;
}

/** Checks the outcome of one CLI enqueue against its prediction. */
function checkEnqueue(
  result: CliResult,
  prediction: Prediction,
  from: number,
  what: string,
): Accepted[] {
  const to = Date.now();
  if (prediction.jobs === undefined) {
    assertRefused(result, 2, what);
    return [];
  }
  assert.equal(result.code, 0, `${what}: exit code (stderr: ${result.stderr})`);
  assert.equal(result.stderr, "", `${what}: stderr`);
  const ids = result.stdout.split("\n");
  assert.equal(ids.pop(), "", `${what}: stdout ends with a newline`);
  assert.equal(ids.length, prediction.jobs.length, `${what}: one id per job`);
  return prediction.jobs.map((job, index) => {
    if (prediction.ids[index] !== undefined) assert.equal(ids[index], prediction.ids[index], what);
    return { id: ids[index], job, absolute: prediction.absolute[index], from, to, what };
  });
}

/** Checks every accepted job against what `list --json` shows, and that nothing else was stored. */
function checkStored(stored: JobJson[], accepted: Accepted[]): void {
  const byId = new Map(stored.map((job) => [job.id, job]));
  assert.equal(stored.length, accepted.length, "only the accepted jobs are stored");
  for (const { id, job, absolute, from, to, what } of accepted) {
    const shown = byId.get(id);
    assert.ok(shown, `${what}: job ${id} is stored`);
    assert.equal(shown.command, job.command, `${what}: command`);
    assert.deepEqual(encoder.encode(shown.command), encoder.encode(job.command), what);
    assert.equal(shown.max_retries, job.maxRetries, `${what}: max_retries`);
    assert.equal(shown.priority, job.priority, `${what}: priority`);
    assert.equal(shown.timeout_ms, job.timeoutMs, `${what}: timeout_ms`);
    assert.equal(shown.cwd, job.cwd, `${what}: cwd`);
    assert.equal(shown.state, "pending", `${what}: state`);
    assert.equal(shown.attempts, 0, `${what}: attempts`);
    const runAt = Date.parse(shown.run_at);
    if (absolute) assert.equal(runAt, job.runAt, `${what}: run_at`);
    else {
      const offset = job.runAt - PREDICT_NOW;
      assert.ok(
        runAt >= from + offset && runAt <= to + offset,
        `${what}: run_at ${shown.run_at} is not the enqueue time + ${offset} ms`,
      );
    }
  }
}

/** A CLI argument for `enqueue`: a JSON spec (valid or not), or a bare command. */
function randomArgument(rng: SeededRandom, context: SpecContext, index: number): string {
  switch (rng.int(3)) {
    case 0: {
      // Deno drops a trailing CR from every argument: a test of its own covers that.
      const text = randomText(rng, 8);
      return text.endsWith("\r") ? `${text};` : text;
    }
    case 1: {
      const raw = mutate(rng, validSpec(rng, context).raw);
      if (typeof raw.id === "string") raw.id += `-${index}`; // a taken id would be exit 1
      const command = raw.command;
      if (typeof command === "string" && byteLength(command) > 100_000) raw.command = "true";
      return JSON.stringify(raw);
    }
    default: {
      const { raw } = validSpec(rng, context);
      if (typeof raw.id === "string") raw.id = `${raw.id.slice(0, 120)}-${index}`;
      if (byteLength(raw.command as string) > 100_000) raw.command = "true"; // argv holds 128 KiB
      return JSON.stringify(raw);
    }
  }
}

Deno.test("random specs through the real CLI are stored exactly or refused with exit 2", () =>
  withQueue(async ({ db, dir }) => {
    const cwd = makeHostileDirs(dir);
    const context: SpecContext = { now: PREDICT_NOW, cwd, config: DEFAULT_CONFIG };
    const rng = new SeededRandom(SEED + 8);
    const accepted: Accepted[] = [];
    let refused = 0;
    for (let i = 0; i < CLI_CASES; i++) {
      const argument = randomArgument(rng, context, i);
      const prediction = predict(
        orRefused(argument, () => parseSpecArgument(argument))?.specs,
        cwd,
      );
      // After `--`, even an argument starting with a dash is the spec.
      const args = argument.startsWith("-") || rng.chance(0.5)
        ? ["enqueue", "--", argument]
        : ["enqueue", argument];
      const from = Date.now();
      const result = await cli(args, { db, cwd: dir });
      const what = `seed ${SEED + 8} case ${i}: enqueue ${preview(argument)}`;
      accepted.push(...checkEnqueue(result, prediction, from, what));
      if (prediction.jobs === undefined) refused++;
    }
    // Files of several specs: all are added, or none.
    for (let i = 0; i < CLI_CASES / 3; i++) {
      const raws = Array.from({ length: rng.between(1, 4) }, (_, k) => {
        const raw = rng.chance(0.7)
          ? validSpec(rng, context).raw
          : mutate(rng, validSpec(rng, context).raw);
        if (typeof raw.id === "string") raw.id = `${raw.id.slice(0, 120)}-f${i}.${k}`;
        return raw;
      });
      const text = rng.chance(0.5)
        ? JSON.stringify(raws)
        : raws.map((raw) => JSON.stringify(raw)).join("\n") + "\n";
      const prediction = predict(orRefused("file", () => parseSpecFile(text))?.specs, cwd);
      const viaStdin = rng.chance(0.5);
      const path = `${dir}/batch-${i}.json`;
      if (!viaStdin) await Deno.writeTextFile(path, text);
      const from = Date.now();
      const result = await cli(
        ["enqueue", "--file", viaStdin ? "-" : path],
        { db, cwd: dir, stdin: viaStdin ? text : undefined },
      );
      const what = `seed ${SEED + 8} file ${i}: ${preview(text)}`;
      accepted.push(...checkEnqueue(result, prediction, from, what));
      if (prediction.jobs === undefined) refused++;
    }
    assert.ok(
      accepted.length > 5 && refused > 5,
      `${accepted.length} accepted, ${refused} refused`,
    );
    checkStored(await listJobs(db), accepted);
  }));

Deno.test("deeply nested JSON is refused with exit 2 by the CLI; odd bare commands are stored", () =>
  withQueue(async ({ db, dir }) => {
    const depth = 10_000;
    const arrays = "[".repeat(depth) + "]".repeat(depth);
    const objects = '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
    const refusedArguments = [
      `{"command":"true","id":${arrays}}`,
      `{"command":${objects}}`,
      `{"command":"true","cwd":${arrays}}`,
      `{"command":"true","max_retries":${objects}}`,
      "{".repeat(depth),
      "[".repeat(depth),
      `{"command":"true","x":${objects}}`,
    ];
    for (const argument of refusedArguments) {
      assertRefused(await cli(["enqueue", argument], { db }), 2, preview(argument));
    }
    const fileTexts = [arrays, objects, `[${arrays}]`, "[".repeat(depth), `{"command":${arrays}}`];
    for (const [index, text] of fileTexts.entries()) {
      const path = `${dir}/nested-${index}.json`;
      await Deno.writeTextFile(path, text);
      assertRefused(await cli(["enqueue", "--file", path], { db }), 2, `file ${preview(text)}`);
    }
    // An argument that starts with neither `{` nor `[` is the command itself, however odd.
    const bare = `x${"[".repeat(depth)}`;
    const id = (await cli(["enqueue", "--id", "bare", bare], { db })).stdout.trim();
    assert.equal(id, "bare");
    assert.equal((await showJob(db, "bare")).command, bare);
    assert.deepEqual((await listJobs(db)).map((job) => job.id), ["bare"]);
  }));

/** Commands whose text must survive storage and display exactly. */
const UNICODE_COMMANDS = [
  "echo 😀 🎉 👍🏽",
  "echo '👩‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 🇺🇳 UN'",
  "echo שלום עולם",
  "echo 'مرحبا بالعالم' \u200f",
  "echo '\u202eevil.exe\u202c'",
  "echo Z\u0351\u0352\u0353\u0354\u0355a\u0300\u0301\u0302l\u0336g\u0337o",
  "echo e\u0301 é \u00e9 \u0065\u0301",
  "\ufeffecho with a BOM first",
  "echo a\u2028b\u2029c\u0085d",
  "echo 漢字 カタカナ 한국어",
  "echo '\x1b[31mred\x1b[0m' \x07",
  "echo \u200b\u200c\u200d\u2060 zero-widths",
  "printf '%s\\n' \"$HOME\" '$(touch pwned)' `echo x`; echo a && echo b || echo c",
  "echo \"quotes\" 'single' \\\\ back\\\\slash \t tab",
  "echo 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 \u{10ffff} \ufffd \uffff",
  "multi\nline\r\ncommand\n",
];

Deno.test("unicode commands are stored and shown byte for byte, however they are enqueued", () =>
  withQueue(async ({ db, dir }) => {
    const expected = new Map<string, string>();
    await mapLimit(UNICODE_COMMANDS, 3, async (command, index) => {
      const bare = await cli(["enqueue", "--id", `bare-${index}`, "--", command], { db });
      assert.equal(bare.code, 0, `bare ${preview(command)}: ${bare.stderr}`);
      expected.set(`bare-${index}`, command);
      const json = JSON.stringify({ id: `json-${index}`, command });
      const viaJson = await cli(["enqueue", json], { db });
      assert.equal(viaJson.code, 0, `JSON ${preview(command)}: ${viaJson.stderr}`);
      expected.set(`json-${index}`, command);
    });
    const lines = UNICODE_COMMANDS.map((command, index) =>
      JSON.stringify({ id: `file-${index}`, command })
    );
    await Deno.writeTextFile(`${dir}/unicode.jsonl`, lines.join("\n") + "\n");
    const file = await cli(["enqueue", "--file", `${dir}/unicode.jsonl`], { db });
    assert.equal(file.code, 0, file.stderr);
    UNICODE_COMMANDS.forEach((command, index) => expected.set(`file-${index}`, command));

    await mapLimit([...expected], 3, async ([id, command]) => {
      const shown = await showJob(db, id);
      assert.equal(shown.command, command, `${id}: ${preview(command)}`);
      assert.deepEqual(encoder.encode(shown.command), encoder.encode(command), id);
    });
    // The table forms print them without failing.
    for (const args of [["list"], ["show", "bare-5"], ["status"]]) {
      const result = await cli(args, { db });
      assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
      assert.equal(result.stderr, "", args.join(" "));
    }
  }));

Deno.test("NUL bytes anywhere in a spec are refused with exit 2 and add nothing", () =>
  withQueue(async ({ db, dir }) => {
    const texts = [
      '{"command":"echo a\\u0000b"}',
      '{"command":"echo a\0b"}',
      '"echo a\\u0000"',
      '{"command":"true","id":"a\\u0000b"}',
      '{"command":"true","cwd":"plain\\u0000"}',
      '{"command":"true","delay":"1s\\u0000"}',
      '{"command":"true","run_at":"2030-01-01\\u0000"}',
      '{"command":"true","a\\u0000b":1}',
      "echo a\0b\n",
      '{"command":"true"}\n\0\n',
      '[{"command":"true","id":"fine"},{"command":"bad\\u0000"}]',
    ];
    await Deno.mkdir(`${dir}/plain`);
    for (const [index, text] of texts.entries()) {
      const path = `${dir}/nul-${index}.json`;
      await Deno.writeTextFile(path, text);
      const what = `file ${preview(text)}`;
      assertRefused(await cli(["enqueue", "--file", path], { db, cwd: dir }), 2, what);
      assertRefused(await cli(["enqueue", "--file", "-"], { db, cwd: dir, stdin: text }), 2, what);
    }
    assert.deepEqual(await listJobs(db), [], "nothing was added");
  }));

Deno.test("commands up to 131,071 bytes are stored exactly; longer ones, up to 1 MiB, exit 2", () =>
  withQueue(async ({ db, dir }) => {
    const most = MAX_COMMAND_BYTES;
    const fits = new Map<string, string>([
      ["ascii-max", `echo ${"x".repeat(most - 5)}`],
      ["two-byte-max", `echo ${"é".repeat((most - 5) / 2)}`],
      [
        "four-byte-max",
        `echo ${"😀".repeat(Math.floor((most - 5) / 4))}${"x".repeat((most - 5) % 4)}`,
      ],
    ]);
    const tooLong = new Map<string, string>([
      ["ascii-max+1", "x".repeat(most + 1)],
      ["two-byte-over", `${"x".repeat(most - 1)}é`],
      ["four-byte-over", `${"x".repeat(most - 3)}😀`],
      ["one-mib", "y".repeat(1024 * 1024)],
      ["one-mib-emoji", "😀".repeat(256 * 1024)],
    ]);
    for (const [id, command] of fits) assert.ok(byteLength(command) <= most, id);
    for (const [id, command] of tooLong) assert.ok(byteLength(command) > most, id);

    for (const [id, command] of [...fits, ...tooLong]) {
      const path = `${dir}/${id}.jsonl`;
      await Deno.writeTextFile(path, JSON.stringify({ id, command }) + "\n");
      const result = await cli(["enqueue", "--file", path], { db });
      if (fits.has(id)) assert.equal(result.code, 0, `${id}: ${result.stderr}`);
      else assertRefused(result, 2, id);
    }
    // The longest command also fits in one command-line argument.
    const argv = "z".repeat(most);
    assert.equal((await cli(["enqueue", "--id", "argv-max", argv], { db })).code, 0);
    fits.set("argv-max", argv);

    for (const [id, command] of fits) {
      const shown = await showJob(db, id);
      assert.equal(byteLength(shown.command), byteLength(command), `${id}: length`);
      assert.ok(shown.command === command, `${id}: the command is stored exactly`);
    }
    assert.equal((await listJobs(db)).length, fits.size, "no refused command was stored");
  }));

/** Ids that must be refused: quotes, spaces, shell syntax, control characters, too long. */
const HOSTILE_IDS = [
  'a"b',
  "a'b",
  "a b",
  " a",
  "a ",
  "a;b",
  "a;rm -rf ~",
  "$(touch pwned)",
  "a$(touch pwned)",
  "`touch pwned`",
  "a`id`",
  "a\nb",
  "a\rb",
  "\ra",
  "a\tb",
  "a|b",
  "a&b",
  "a>b",
  "a/b",
  "../a",
  "a\\b",
  "a=b",
  "*",
  "-a",
  ".a",
  "_a",
  ":a",
  "é",
  "\u0661\u0662",
  "\uff21",
  "a\u200b",
  "😀",
  "x".repeat(129),
  "x".repeat(1000),
  "",
];
const FINE_IDS = ["x".repeat(128), "A.b_c:d-e", "0", "9-", "a..b", "a::b"];

Deno.test("hostile ids are refused with exit 2 whether given as --id or in JSON", () =>
  withQueue(async ({ db, dir }) => {
    await mapLimit(HOSTILE_IDS, 3, async (id, index) => {
      assert.ok(!isValidId(id), preview(id));
      const what = `id ${preview(id)}`;
      const flag = index % 2 === 0 ? ["--id", id] : [`--id=${id}`];
      assertRefused(await cli(["enqueue", ...flag, "true"], { db, cwd: dir }), 2, `--id ${what}`);
      const json = JSON.stringify({ id, command: "true" });
      assertRefused(await cli(["enqueue", json], { db, cwd: dir }), 2, `JSON ${what}`);
      if (index % 3 === 0) {
        const show = await cli(["show", "--json", "--", id], { db, cwd: dir });
        assert.ok(show.code === 1 || show.code === 2, `show ${what}: exit ${show.code}`);
        assertRefused(show, show.code, `show ${what}`);
      }
    });
    for (const id of FINE_IDS) {
      assert.ok(isValidId(id), id);
      const result = await cli(["enqueue", "--id", id, "true"], { db, cwd: dir });
      assert.equal(result.code, 0, `${id}: ${result.stderr}`);
      assert.equal(result.stdout, `${id}\n`);
      assert.equal((await showJob(db, id)).id, id);
    }
    assert.deepEqual((await listJobs(db)).map((job) => job.id).sort(), [...FINE_IDS].sort());
    assert.equal(await pathExists(`${dir}/pwned`), false, "nothing ran");
  }));

Deno.test("$(…), backticks and ; in an id, a cwd or a command run nothing at enqueue time", () =>
  withQueue(async ({ db, dir }) => {
    const real = makeHostileDirs(dir);
    const canary = `${real}/pwned`;
    const payloads = [
      `$(touch ${canary})`,
      `\`touch ${canary}\``,
      `; touch ${canary}`,
      `x && touch ${canary}`,
      `$(touch pwned)`,
      "`touch pwned`",
      "'; touch pwned; '",
      '"; touch pwned; "',
    ];
    // A live worker gets woken by every enqueue; it must have nothing to run.
    const worker = startWorker(db, [], { cwd: dir });
    try {
      await waitFor("the worker to register", async () => {
        const status = await cli(["status", "--json"], { db });
        return status.code === 0 && JSON.parse(status.stdout).workers.length === 1;
      });
      const delayed = new Map<string, string>();
      for (const [index, payload] of payloads.entries()) {
        const what = preview(payload);
        const refusals = [
          ["enqueue", "--id", payload, "true"],
          ["enqueue", JSON.stringify({ id: payload, command: "true" })],
          ["enqueue", "--cwd", `missing ${payload}`, "true"],
          ["enqueue", JSON.stringify({ cwd: `${dir}/missing/${payload}`, command: "true" })],
          ["enqueue", JSON.stringify({ command: "true", run_at: payload })],
          ["enqueue", "--delay", payload, "true"],
        ];
        for (const args of refusals) {
          assertRefused(await cli(args, { db, cwd: dir }), 2, `${args[1]} ${what}`);
        }
        // In the command it is stored as text, to run (later) in the job's own shell.
        const id = `later-${index}`;
        const command = `echo ${payload}`;
        const result = await cli(["enqueue", "--id", id, "--delay", "1h", "--", command], {
          db,
          cwd: dir,
        });
        assert.equal(result.code, 0, `${what}: ${result.stderr}`);
        delayed.set(id, command);
      }

      // Existing folders named like shell syntax are taken literally, at enqueue and at run time.
      const ran = new Map<string, string>();
      for (const [index, name] of HOSTILE_DIR_NAMES.entries()) {
        const id = `cwd-${index}`;
        const command = 'pwd -P > "$QUEUECTL_JOB_ID.out"';
        const args = index % 2 === 0
          ? ["enqueue", "--id", id, "--cwd", name, command]
          : ["enqueue", JSON.stringify({ id, command, cwd: `${real}/${name}` })];
        const result = await cli(args, { db, cwd: dir });
        assert.equal(result.code, 0, `${preview(name)}: ${result.stderr}`);
        ran.set(id, `${real}/${name}`);
      }
      for (const [id, folder] of ran) {
        const job = await waitFor(`${id} to complete`, async () => {
          const shown = await showJob(db, id);
          return shown.state === "completed" || shown.state === "dead" ? shown : undefined;
        });
        assert.equal(job.state, "completed", `${id}: ${job.last_error}`);
        assert.equal(job.cwd, folder, `${id}: cwd stored exactly`);
        assert.equal(await Deno.readTextFile(`${folder}/${id}.out`), `${folder}\n`, id);
      }
      for (const [id, command] of delayed) {
        const job = await showJob(db, id);
        assert.equal(job.command, command, id);
        assert.equal(job.state, "pending", `${id} has not run`);
      }
      worker.signal("SIGTERM");
      assert.equal(await exitWithin(worker, 20_000), 0, worker.stderr());
    } finally {
      killProcess(worker);
    }
    for (const folder of [real, Deno.cwd(), ...HOSTILE_DIR_NAMES.map((n) => `${real}/${n}`)]) {
      assert.equal(await pathExists(`${folder}/pwned`), false, `${folder}/pwned was created`);
    }
  }));

Deno.test("an argument ending in a carriage return is refused or stored exactly, not trimmed", () =>
  withQueue(async ({ db }) => {
    // Found here: `deno run` strips trailing "\r" from every argument (for CRLF
    // shebangs), so queuectl never sees it. JSON text keeps it, for comparison.
    assertRefused(
      await cli(["enqueue", JSON.stringify({ id: "a\r", command: "true" })], { db }),
      2,
    );
    const json = await cli(["enqueue", JSON.stringify({ id: "json", command: "echo hi\r" })], {
      db,
    });
    assert.equal(json.code, 0, json.stderr);
    assert.equal((await showJob(db, "json")).command, "echo hi\r");

    const id = await cli(["enqueue", "--id", "a\r", "true"], { db });
    assertRefused(id, 2, `--id "a\\r" (stored as ${JSON.stringify(id.stdout)})`);
    const bare = await cli(["enqueue", "--id", "bare", "--", "echo hi\r"], { db });
    assert.equal(bare.code, 0, bare.stderr);
    assert.equal((await showJob(db, "bare")).command, "echo hi\r", "the bare command, exactly");
  }));

Deno.test("a command with a lone UTF-16 surrogate is stored exactly or refused with exit 2", () =>
  withQueue(async ({ db, dir }) => {
    // JSON can spell these ("\ud800"); UTF-8, which SQLite and `sh` use, cannot.
    const commands = ["echo \ud800", "echo \udfff tail", "echo half \ud83d", "echo \ude00\ud83d"];
    for (const [index, command] of commands.entries()) {
      const spec = JSON.stringify({ id: `lone-${index}`, command });
      assert.match(spec, /\\ud[89a-f][0-9a-f]{2}/, "JSON.stringify escapes the surrogate");
      const path = `${dir}/lone-${index}.json`;
      await Deno.writeTextFile(path, spec);
      for (const args of [["enqueue", spec], ["enqueue", "--file", path]]) {
        const what = `${args[1] === spec ? "argument" : "file"} ${spec}`;
        const result = await cli(args, { db });
        if (result.code !== 0) {
          assertRefused(result, 2, what);
          continue;
        }
        const shown = await showJob(db, `lone-${index}`);
        assert.ok(
          shown.command === command,
          `${what}: accepted (exit 0) but stored as ${JSON.stringify(shown.command)}`,
        );
        break; // the id is taken now
      }
    }
  }));
