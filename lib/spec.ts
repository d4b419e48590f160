/**
 * Job specs: what `enqueue` accepts (a JSON object, a bare shell command, or a
 * file of them) turned into fully resolved {@linkcode NewJob}s.
 *
 * Longer than most modules on purpose: every input form (an argument, a JSON
 * object or array, a job file of JSON or plain lines) meets the same field
 * rules and the same error positions here, and splitting them would split
 * one rule book.
 *
 * @module
 */

import type { QueueConfig } from "./config.ts";
import { MAX_DURATION_MS, parseDuration } from "./duration.ts";
import { UsageError } from "./errors.ts";
import type { NewJob } from "./job.ts";
import { checkEnvObject } from "./job_env.ts";
import { checkCount } from "./numbers.ts";

/**
 * Ids: a letter or digit, then letters, digits, `.`, `_`, `:`, `@`, `-`; 128
 * characters at most. `@` and `:` let a schedule's firing name its job
 * `<schedule>@<time, ISO 8601>` (lib/schedules.ts).
 */
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** Queue names: like ids, but 64 characters at most. */
export const QUEUE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** The queue a job goes to when none is named. */
export const DEFAULT_QUEUE = "default";

/** The longest command accepted, in UTF-8 bytes: Linux's limit on one argument, less its NUL. */
export const MAX_COMMAND_BYTES = 131_071;

/** Values given on the command line; each one wins over the same field in the JSON. */
export interface SpecOverrides {
  id?: string;
  maxRetries?: number;
  priority?: number;
  delayMs?: number;
  runAt?: number;
  timeoutMs?: number;
  cwd?: string;
  queue?: string;
  after?: string[];
  /** Variables set on top of the spec's own `env` (`--env`, `--env-file`). */
  env?: Record<string, string>;
  uniqueKey?: string;
  uniqueForMs?: number;
}

/** What a spec is resolved against. */
export interface SpecContext {
  /** The moment of the enqueue, epoch ms. */
  now: number;
  /** The directory relative `cwd` values are resolved against, and the default `cwd`. */
  cwd: string;
  /** Queue-wide defaults for fields the spec leaves out. */
  config: QueueConfig;
}

const SPEC_FIELDS = new Set([
  "id",
  "command",
  "max_retries",
  "priority",
  "run_at",
  "delay",
  "timeout",
  "timeout_ms",
  "cwd",
  "queue",
  "after",
  "env",
  "unique_key",
  "unique_for",
]);

/** The longest unique key accepted, in characters. */
export const MAX_UNIQUE_KEY_LENGTH = 256;

const ISO_PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

/**
 * Raw job specs from one `enqueue` argument or one job file, with where each
 * one was found, for error messages.
 */
export interface SpecList {
  specs: unknown[];
  /** What holds several specs (`job file`, `JSON array`); empty for a lone spec. */
  label: string;
  /** Where spec `index` is within it: `line 3`, `line 1 item 2`, `item 2`. */
  position(index: number): string;
}

/** The first characters of a line of a job file that is JSON rather than a command. */
const JSON_LINE_STARTS = '{["';

/**
 * Turns the `enqueue` argument into raw specs: a JSON object when it starts
 * with `{`, a JSON array of specs when it starts with `[` (either must then
 * be valid JSON), else the shell command itself.
 *
 * @throws {UsageError} for malformed JSON
 */
export function parseSpecArgument(argument: string): SpecList {
  const first = argument.trimStart()[0];
  if ((first !== "{" && first !== "[") || isTestCommand(argument)) {
    return loneSpec({ command: argument });
  }
  let value: unknown;
  try {
    value = JSON.parse(argument);
  } catch (error) {
    const message = (error as Error).message;
    if (first === "{") throw new UsageError(`invalid JSON job spec: ${message}`);
    throw new UsageError(
      `invalid JSON array of jobs: ${message} (a command that starts with '[' goes in a JSON ` +
        `spec, {"command": "..."}, or is written with 'test')`,
    );
  }
  if (!Array.isArray(value)) return loneSpec(value);
  return { specs: value, label: "JSON array", position: (index) => `item ${index + 1}` };
}

/**
 * Whether text that starts with `[` is the shell's `test` (`[ -f x ] && make`)
 * rather than JSON: `[` is then a word of its own, followed by something no
 * JSON value starts with. `[ "$x" = y ]` stays ambiguous and is read as JSON.
 */
const TEST_COMMAND = /^\s*\[\s+(?![\s"{[\]0-9]|-[0-9]|(?:true|false|null)\b)/;

function isTestCommand(text: string): boolean {
  return TEST_COMMAND.test(text);
}

function loneSpec(spec: unknown): SpecList {
  return { specs: [spec], label: "", position: () => "" };
}

/**
 * Splits the text of an `enqueue --file` into raw specs. The text may be one
 * JSON object or array (over any number of lines), or lines of these kinds:
 * a JSON object; a JSON array of specs; a JSON string, which is a command;
 * and any other line, which is the command itself (a line is JSON when it
 * starts with `{`, `[` or `"`). Blank lines and lines starting with `#` are
 * skipped.
 *
 * @throws {UsageError} naming the first line that is not valid JSON
 */
export function parseSpecFile(text: string): SpecList {
  const trimmed = text.trim();
  if (trimmed === "") throw new UsageError("the job file holds no jobs");
  if (trimmed[0] === "{" || (trimmed[0] === "[" && !isTestCommand(trimmed))) {
    let whole: unknown;
    try {
      whole = JSON.parse(trimmed);
    } catch {
      // Not one JSON document: read it line by line below.
    }
    if (whole !== undefined) return wholeDocument(text, text.indexOf(trimmed[0]), whole);
  }
  const specs: unknown[] = [];
  const lines: number[] = [];
  const items: number[] = [];
  const rows = text.split("\n");
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i].endsWith("\r") ? rows[i].slice(0, -1) : rows[i];
    const start = row.trim()[0];
    if (start === undefined || start === "#") continue;
    if (!JSON_LINE_STARTS.includes(start) || isTestCommand(row)) {
      specs.push(row);
      lines.push(i + 1);
      items.push(0);
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(row);
    } catch (error) {
      throw new UsageError(
        `job file line ${i + 1}: invalid JSON (a line starting with {, [ or " is JSON): ${
          (error as Error).message
        }`,
      );
    }
    for (const [k, spec] of (Array.isArray(value) ? value : [value]).entries()) {
      specs.push(spec);
      lines.push(i + 1);
      items.push(Array.isArray(value) ? k + 1 : 0);
    }
  }
  if (specs.length === 0) throw new UsageError("the job file holds no jobs");
  return {
    specs,
    label: "job file",
    position: (index) => filePosition(lines, (k) => items[k], index),
  };
}

/** A file that is one JSON document: its specs' lines are found only if a message needs them. */
function wholeDocument(text: string, start: number, value: unknown): SpecList {
  if (!Array.isArray(value)) {
    return {
      specs: [value],
      label: "job file",
      position: () => `line ${lineNumbers(text, [start])[0]}`,
    };
  }
  let lines: number[] | undefined;
  return {
    specs: value,
    label: "job file",
    position(index) {
      lines ??= lineNumbers(text, elementStarts(text, start));
      return filePosition(lines, (k) => k + 1, index);
    },
  };
}

/**
 * `line 3`, or `line 3 item 2` when another spec starts on the same line.
 *
 * @param item the spec's number within its array, 0 when it is not in one
 */
function filePosition(lines: number[], item: (index: number) => number, index: number): string {
  const shared = lines[index - 1] === lines[index] || lines[index + 1] === lines[index];
  return shared && item(index) > 0
    ? `line ${lines[index]} item ${item(index)}`
    : `line ${lines[index]}`;
}

/** Where each element of the valid JSON array at `start` begins. */
function elementStarts(text: string, start: number): number[] {
  const starts: number[] = [];
  let depth = 0;
  let expecting = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === " " || c === "\t" || c === "\n" || c === "\r") continue;
    if (c === "]" || c === "}") {
      if (--depth === 0) break;
      continue;
    }
    if (depth === 1 && expecting) {
      starts.push(i);
      expecting = false;
    }
    if (c === '"') {
      // Skip the string: escapes may hide a quote, brackets inside mean nothing.
      for (i++; text[i] !== '"'; i++) if (text[i] === "\\") i++;
    } else if (c === "[" || c === "{") {
      if (++depth === 1) expecting = true;
    } else if (c === "," && depth === 1) expecting = true;
  }
  return starts;
}

/** The 1-based line of each offset; `offsets` ascending. */
function lineNumbers(text: string, offsets: number[]): number[] {
  const lines: number[] = [];
  let line = 1;
  let at = 0;
  for (const offset of offsets) {
    for (; at < offset; at++) if (text[at] === "\n") line++;
    lines.push(line);
  }
  return lines;
}

/**
 * Resolves every spec of a list, as {@linkcode resolveSpec} does each one.
 * Messages name the spec's place in the list, and an id given twice is
 * refused with both places.
 *
 * @throws {UsageError} for an invalid spec, a repeated id, or an `--id` for several jobs
 */
export function resolveSpecList(
  list: SpecList,
  overrides: SpecOverrides,
  context: SpecContext,
): NewJob[] {
  const { specs, label } = list;
  if (specs.length === 0) throw new UsageError(`the ${label} holds no jobs`);
  if (overrides.id !== undefined && specs.length > 1) {
    throw new UsageError(`--id names one job, but the ${label} holds ${specs.length}`);
  }
  const firstPlace = new Map<string, number>();
  return specs.map((raw, index) => {
    let job: NewJob;
    try {
      job = resolveSpec(raw, overrides, context);
    } catch (error) {
      if (label !== "" && error instanceof UsageError) {
        throw new UsageError(`${label} ${list.position(index)}: ${error.message}`);
      }
      throw error;
    }
    const earlier = firstPlace.get(job.id);
    if (earlier !== undefined) {
      throw new UsageError(
        `id '${job.id}' is repeated in the ${label}: ${list.position(earlier)} and ${
          list.position(index)
        }`,
      );
    }
    firstPlace.set(job.id, index);
    return job;
  });
}

/** Checks a job id against {@linkcode JOB_ID_PATTERN}. */
export function checkJobId(id: unknown, what = "id"): string {
  if (typeof id !== "string" || !JOB_ID_PATTERN.test(id)) {
    throw new UsageError(
      `${what}: ${
        JSON.stringify(id)
      } is not a valid job id (1-128 characters: letters, digits, '.', '_', ':', '@', '-'; starting with a letter or digit)`,
    );
  }
  return id;
}

/** Checks a queue name against {@linkcode QUEUE_NAME_PATTERN}. */
export function checkQueueName(name: unknown, what = "queue"): string {
  if (typeof name !== "string" || !QUEUE_NAME_PATTERN.test(name)) {
    throw new UsageError(
      `${what}: ${
        JSON.stringify(name)
      } is not a valid queue name (1-64 characters: letters, digits, '.', '_', ':', '-'; starting with a letter or digit)`,
    );
  }
  return name;
}

/**
 * Reads a list of job ids: an array of ids, or one string of ids separated
 * by commas (as `--after a,b` gives them).
 */
export function parseIdList(value: unknown, what: string): string[] {
  const items = typeof value === "string" ? value.split(",") : value;
  if (!Array.isArray(items) || items.length === 0) {
    throw new UsageError(`${what}: expected job ids, as a list or separated by commas`);
  }
  return [...new Set(items.map((id) => checkJobId(id, what)))];
}

/** How each command-line override is written as the JSON field it stands for. */
const OVERRIDE_FIELDS: {
  [K in keyof Required<SpecOverrides>]: (value: Required<SpecOverrides>[K]) => [string, unknown];
} = {
  id: (id) => ["id", id],
  maxRetries: (n) => ["max_retries", n],
  priority: (n) => ["priority", n],
  delayMs: (ms) => ["delay", `${ms}ms`],
  runAt: (ms) => ["run_at", new Date(ms).toISOString()],
  timeoutMs: (ms) => ["timeout_ms", ms],
  cwd: (cwd) => ["cwd", cwd],
  queue: (queue) => ["queue", queue],
  after: (ids) => ["after", ids],
  env: (env) => ["env", env],
  uniqueKey: (key) => ["unique_key", key],
  uniqueForMs: (ms) => ["unique_for", `${ms}ms`],
};

/** Fields that name one job or one moment: a template, which makes many jobs, has none. */
const ONE_JOB_FIELDS = ["id", "run_at"];

/**
 * A job template: the spec (as `enqueue --file` reads it) that a schedule
 * resolves again at each firing, made of a spec argument and the enqueue
 * options given with it. It is checked by resolving it once; its `cwd` is
 * made absolute, and fields left out stay out, so that the queue's defaults
 * at the firing apply.
 *
 * @throws {UsageError} for an invalid spec, or one with an `id` or `run_at`
 */
export function jobTemplate(
  raw: unknown,
  overrides: SpecOverrides,
  context: SpecContext,
): Record<string, unknown> {
  const job = resolveSpec(raw, overrides, context);
  const template: Record<string, unknown> = typeof raw === "string"
    ? { command: raw }
    : { ...raw as Record<string, unknown> };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const write = OVERRIDE_FIELDS[key as keyof SpecOverrides] as (v: unknown) => [string, unknown];
    const [field, json] = write(value);
    template[field] = json;
  }
  for (const field of ONE_JOB_FIELDS) {
    if (template[field] !== undefined) {
      throw new UsageError(`a schedule's job spec cannot have '${field}': each firing sets it`);
    }
  }
  // A job to run after is one job: once it is deleted, every firing would fail.
  if (template.after !== undefined) {
    throw new UsageError("a schedule's job spec cannot have 'after': firings run after no job");
  }
  template.cwd = job.cwd;
  // --env adds to the spec's own variables rather than replacing them.
  if (job.env !== undefined) template.env = job.env;
  return template;
}

/**
 * Resolves one raw spec into a job ready to store.
 *
 * @param raw a spec object as parsed from JSON (or `{command}` for a bare command)
 * @param overrides values from command-line flags
 * @param context the moment, directory and defaults to resolve against
 * @throws {UsageError} naming the first field that is missing or invalid
 */
export function resolveSpec(raw: unknown, overrides: SpecOverrides, context: SpecContext): NewJob {
  const spec = typeof raw === "string" ? { command: raw } : raw;
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    throw new UsageError("a job spec must be a JSON object or a command string");
  }
  const fields = spec as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!SPEC_FIELDS.has(key)) {
      throw new UsageError(
        `unknown field '${key}' in job spec (known: ${[...SPEC_FIELDS].join(", ")})`,
      );
    }
  }

  const command = checkCommand(fields.command);
  const id = overrides.id ?? (fields.id === undefined ? newJobId() : checkJobId(fields.id));
  const maxRetries = overrides.maxRetries ??
    (fields.max_retries === undefined
      ? context.config.maxRetries
      : checkCount(fields.max_retries, "max_retries"));
  const priority = overrides.priority ??
    (fields.priority === undefined ? 0 : checkCount(fields.priority, "priority"));
  const runAt = resolveRunAt(fields, overrides, context.now);
  const timeoutMs = resolveTimeout(fields, overrides, context.config);
  const cwd = resolveCwd(overrides.cwd ?? fields.cwd, context.cwd);
  const queue = overrides.queue ??
    (fields.queue === undefined ? DEFAULT_QUEUE : checkQueueName(fields.queue));
  const after = overrides.after ??
    (fields.after === undefined ? [] : parseIdList(fields.after, "after"));
  if (after.includes(id)) throw new UsageError(`job '${id}' cannot run after itself`);
  const env = fields.env === undefined ? {} : checkEnvObject(fields.env);
  if (overrides.env !== undefined) Object.assign(env, overrides.env);
  const uniqueKey = overrides.uniqueKey ??
    (fields.unique_key === undefined || fields.unique_key === null
      ? null
      : checkUniqueKey(fields.unique_key, "unique_key"));
  const uniqueForMs = overrides.uniqueForMs ??
    (fields.unique_for === undefined ? 0 : durationField(fields.unique_for, "unique_for"));
  if (uniqueKey === null && (overrides.uniqueForMs ?? fields.unique_for) !== undefined) {
    throw new UsageError(
      "a unique_for (--unique-for) needs a unique_key (--unique-key)",
    );
  }
  const job: NewJob = { id, queue, command, maxRetries, priority, runAt, timeoutMs, cwd, after };
  // Left out when unused, as a job built without them has them.
  if (Object.keys(env).length > 0) job.env = env;
  if (uniqueKey !== null) Object.assign(job, { uniqueKey, uniqueForMs });
  return job;
}

/** Checks a unique key: any text of 1 to {@linkcode MAX_UNIQUE_KEY_LENGTH} characters but NUL. */
export function checkUniqueKey(key: unknown, what: string): string {
  if (typeof key !== "string" || key === "") {
    throw new UsageError(`${what}: the unique key must be a non-empty string`);
  }
  if (key.length > MAX_UNIQUE_KEY_LENGTH) {
    throw new UsageError(
      `${what}: the unique key is longer than ${MAX_UNIQUE_KEY_LENGTH} characters`,
    );
  }
  if (key.includes("\0") || !key.isWellFormed()) {
    throw new UsageError(`${what}: the unique key must be Unicode text without NUL bytes`);
  }
  return key;
}

function checkCommand(command: unknown): string {
  if (command === undefined) throw new UsageError("the job spec has no 'command'");
  if (typeof command !== "string") throw new UsageError("'command' must be a string");
  if (command.trim() === "") throw new UsageError("the command is empty");
  if (command.includes("\0")) throw new UsageError("the command contains a NUL byte");
  // A lone UTF-16 surrogate (JSON can spell one) has no UTF-8 form: it would be stored changed.
  if (!command.isWellFormed()) throw new UsageError("the command is not valid Unicode text");
  // A UTF-16 code unit takes at most 3 bytes in UTF-8: most commands need no encoding to check.
  if (
    command.length * 3 > MAX_COMMAND_BYTES &&
    new TextEncoder().encode(command).length > MAX_COMMAND_BYTES
  ) {
    throw new UsageError(`the command is longer than ${MAX_COMMAND_BYTES} bytes`);
  }
  return command;
}

function resolveRunAt(fields: Record<string, unknown>, overrides: SpecOverrides, now: number) {
  if (overrides.runAt !== undefined) return overrides.runAt;
  if (overrides.delayMs !== undefined) return now + overrides.delayMs;
  if (fields.run_at !== undefined && fields.delay !== undefined) {
    throw new UsageError("give either 'run_at' or 'delay', not both");
  }
  if (fields.run_at !== undefined) {
    if (typeof fields.run_at !== "string") throw new UsageError("'run_at' must be a string");
    return parseIsoTime(fields.run_at, "run_at");
  }
  if (fields.delay !== undefined) return now + durationField(fields.delay, "delay");
  return now;
}

function resolveTimeout(
  fields: Record<string, unknown>,
  overrides: SpecOverrides,
  config: QueueConfig,
): number | null {
  if (overrides.timeoutMs !== undefined) return positiveTimeout(overrides.timeoutMs);
  if (fields.timeout !== undefined && fields.timeout_ms !== undefined) {
    throw new UsageError("give either 'timeout' or 'timeout_ms', not both");
  }
  if (fields.timeout !== undefined) {
    return fields.timeout === null
      ? null
      : positiveTimeout(durationField(fields.timeout, "timeout"));
  }
  if (fields.timeout_ms !== undefined) {
    return fields.timeout_ms === null
      ? null
      : positiveTimeout(checkCount(fields.timeout_ms, "timeout_ms"));
  }
  return config.jobTimeoutMs;
}

function positiveTimeout(ms: number): number {
  if (ms <= 0) throw new UsageError("the timeout must be longer than 0");
  if (ms > MAX_DURATION_MS) throw new UsageError("the timeout is too long");
  return ms;
}

/** A duration in a JSON spec: a duration string, or a number of seconds. */
function durationField(value: unknown, what: string): number {
  if (typeof value === "string") return parseDuration(value, what);
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) {
    return parseDuration(String(value), what);
  }
  throw new UsageError(`'${what}' must be a duration such as "10s" or a number of seconds`);
}

function resolveCwd(value: unknown, base: string): string {
  if (typeof value !== "string" || value === "") {
    if (value === undefined) return base;
    throw new UsageError("'cwd' must be a non-empty string");
  }
  const path = value.startsWith("/") ? value : `${base.replace(/\/+$/, "")}/${value}`;
  let isDirectory = false;
  try {
    isDirectory = Deno.statSync(path).isDirectory;
  } catch {
    // Missing or unreadable: reported below like any other non-directory.
  }
  if (!isDirectory) throw new UsageError(`cwd: '${value}' is not an existing directory`);
  return Deno.realPathSync(path);
}

/**
 * Parses an ISO 8601 date or date-time, with `T` or a space between them.
 * Without an offset (`Z`, `+02:00`) it is local time, a bare date included
 * (local midnight), as `date` and cron read times.
 *
 * @throws {UsageError} for anything else
 */
export function parseIsoTime(text: string, what: string): number {
  const match = ISO_PATTERN.exec(text.trim());
  const ms = match ? timeOf(match) : NaN;
  if (Number.isNaN(ms)) {
    throw new UsageError(
      `${what}: '${text}' is not an ISO 8601 time such as 2030-01-31T12:00 (local) or ` +
        "2030-01-31T12:00:00Z",
    );
  }
  return ms;
}

/** The instant an {@linkcode ISO_PATTERN} match names, or NaN when a field is out of range. */
function timeOf(match: RegExpExecArray): number {
  const [year, month, day, hour = 0, minute = 0, second = 0] = match.slice(1, 7).map((field) =>
    field === undefined ? undefined : Number(field)
  ) as number[];
  // Digits past milliseconds are dropped, as Date.parse drops them.
  const millisecond = Number((match[7] ?? "").padEnd(3, "0").slice(0, 3));
  const zone = match[8]?.toUpperCase();
  const daysInMonth = new Date(Date.UTC(2000 + (year % 400), month, 0)).getUTCDate();
  if (
    month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 ||
    second > 59
  ) {
    return NaN;
  }
  if (zone === undefined) {
    const local = new Date(year, month - 1, day, hour, minute, second, millisecond);
    if (year < 100) local.setFullYear(year); // the Date constructor reads 0-99 as 1900-1999
    return local.getTime();
  }
  const utc = new Date(Date.UTC(year, month - 1, day, hour, minute, second, millisecond));
  if (year < 100) utc.setUTCFullYear(year);
  if (zone === "Z") return utc.getTime();
  const offsetHours = Number(zone.slice(1, 3));
  const offsetMinutes = Number(zone.slice(-2));
  if (offsetHours > 23 || offsetMinutes > 59) return NaN;
  const sign = zone[0] === "-" ? -1 : 1;
  return utc.getTime() - sign * (offsetHours * 60 + offsetMinutes) * 60_000;
}

const ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

/** A fresh job id: the time in base 36 (so ids sort by creation) and 8 random characters. */
export function newJobId(): string {
  if (randomOffset + ID_RANDOM_BYTES > randomPool.length) {
    crypto.getRandomValues(randomPool);
    randomOffset = 0;
  }
  let suffix = "";
  for (let i = 0; i < ID_RANDOM_BYTES; i++) {
    suffix += ID_ALPHABET[randomPool[randomOffset++] % ID_ALPHABET.length];
  }
  return `${Date.now().toString(36)}-${suffix}`;
}

const ID_RANDOM_BYTES = 8;
/** Random bytes drawn in bulk: one call per id cost a bulk enqueue of 100,000 jobs 0.15 s. */
const randomPool = new Uint8Array(4096);
let randomOffset = randomPool.length;
