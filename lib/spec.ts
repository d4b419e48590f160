/**
 * Job specs: what `enqueue` accepts (a JSON object, a bare shell command, or a
 * file of them) turned into fully resolved {@linkcode NewJob}s.
 *
 * @module
 */

import type { QueueConfig } from "./config.ts";
import { MAX_DURATION_MS, parseDuration } from "./duration.ts";
import { UsageError } from "./errors.ts";
import type { NewJob } from "./job.ts";
import { checkCount } from "./numbers.ts";

/** Ids: a letter or digit, then letters, digits, `.`, `_`, `:`, `-`; 128 characters at most. */
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

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
]);

const ISO_PATTERN =
  /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/**
 * Turns the `enqueue` argument into a raw spec: JSON when it starts with `{`
 * (and then it must be valid JSON), else the shell command itself.
 *
 * @throws {UsageError} for malformed JSON
 */
export function parseSpecArgument(argument: string): unknown {
  if (!argument.trimStart().startsWith("{")) return { command: argument };
  try {
    return JSON.parse(argument);
  } catch (error) {
    throw new UsageError(`invalid JSON job spec: ${(error as Error).message}`);
  }
}

/**
 * Splits the text of an `enqueue --file` into raw specs. The text may be one
 * JSON object, a JSON array, or JSON Lines (one object per line). A string
 * where an object is expected stands for `{"command": string}`.
 *
 * @throws {UsageError} naming the first line that is not valid JSON
 */
export function parseSpecFile(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === "") throw new UsageError("the job file holds no jobs");
  try {
    const whole = JSON.parse(trimmed);
    return Array.isArray(whole) ? whole : [whole];
  } catch {
    // Not one JSON document: read it as JSON Lines below.
  }
  const specs: unknown[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    try {
      specs.push(JSON.parse(line));
    } catch (error) {
      throw new UsageError(`job file line ${i + 1}: invalid JSON: ${(error as Error).message}`);
    }
  }
  return specs;
}

/** Checks a job id against {@linkcode JOB_ID_PATTERN}. */
export function checkJobId(id: unknown, what = "id"): string {
  if (typeof id !== "string" || !JOB_ID_PATTERN.test(id)) {
    throw new UsageError(
      `${what}: ${
        JSON.stringify(id)
      } is not a valid job id (1-128 characters: letters, digits, '.', '_', ':', '-'; starting with a letter or digit)`,
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
  return { id, queue, command, maxRetries, priority, runAt, timeoutMs, cwd, after };
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
 * Parses an ISO 8601 date or date-time. Without an offset a date-time is
 * local time; a bare date is midnight UTC.
 *
 * @throws {UsageError} for anything else
 */
export function parseIsoTime(text: string, what: string): number {
  const trimmed = text.trim();
  const ms = ISO_PATTERN.test(trimmed) && isRealTime(trimmed) ? Date.parse(trimmed) : NaN;
  if (Number.isNaN(ms)) {
    throw new UsageError(`${what}: '${text}' is not an ISO 8601 time such as 2030-01-31T12:00:00Z`);
  }
  return ms;
}

/** Whether the calendar fields exist: Date.parse would roll 2030-02-30 over to March 2. */
function isRealTime(text: string): boolean {
  const [year, month, day, hour = 0, minute = 0, second = 0] = (text.match(/\d+/g) ?? []).map(
    Number,
  );
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth && hour <= 23 &&
    minute <= 59 && second <= 59;
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
