/**
 * Shared test tools: temp databases, running the real CLI as a subprocess,
 * and polling for conditions instead of sleeping.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { JobJson } from "../lib/job.ts";

export { SeededRandom } from "./seeded_random.ts";

/** The CLI entry point of this checkout. */
export const MAIN = new URL("../main.ts", import.meta.url).pathname;

const decoder = new TextDecoder();

/** A fresh temp directory holding a database path; removed by `cleanup()`. */
export interface TempQueue {
  dir: string;
  db: string;
  cleanup(): Promise<void>;
}

/** Makes a temp directory for one test's database and files. */
export async function tempQueue(): Promise<TempQueue> {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-test-" });
  return {
    dir,
    db: `${dir}/queue.db`,
    cleanup: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
}

/** Runs `fn` with a fresh temp queue and removes it afterwards. */
export async function withQueue(fn: (queue: TempQueue) => Promise<void>): Promise<void> {
  const queue = await tempQueue();
  try {
    await fn(queue);
  } finally {
    await queue.cleanup();
  }
}

/** What a finished CLI run printed and returned. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for running the CLI. */
export interface CliOptions {
  /** The database; passed as `--db` unless undefined. */
  db?: string;
  cwd?: string;
  /** Text fed to stdin; stdin is closed when undefined. */
  stdin?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

function cliCommand(args: string[], options: CliOptions, stdin: "piped" | "null") {
  const dbArgs = options.db === undefined ? [] : ["--db", options.db];
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...dbArgs, ...args],
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
    stdin,
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * Drops Deno's own "Download https://…" notices from stderr. On a cold cache
 * (a fresh CI machine) `deno run` may fetch npm metadata while tests run in
 * parallel; those lines come from the runtime, never from queuectl, and a
 * compiled binary has none.
 */
function withoutDenoDownloads(stderr: string): string {
  return stderr.replace(/^Download https?:\/\/\S+\n/gm, "");
}

/** Runs `queuectl <args>` to the end, as a real process. */
export async function cli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const child = cliCommand(args, options, options.stdin === undefined ? "null" : "piped").spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: withoutDenoDownloads(decoder.decode(output.stderr)),
  };
}

/** Runs `queuectl <args>` and returns stdout, failing the test on a non-zero exit. */
export async function cliOk(args: string[], options: CliOptions = {}): Promise<string> {
  const result = await cli(args, options);
  if (result.code !== 0) {
    throw new Error(`queuectl ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  }
  return result.stdout;
}

/** Enqueues one job and returns its id. */
export async function enqueue(db: string, spec: string, ...flags: string[]): Promise<string> {
  return (await cliOk(["enqueue", spec, ...flags], { db })).trim();
}

/** A job as `show --json` prints it. */
export async function showJob(db: string, id: string): Promise<JobJson> {
  return JSON.parse(await cliOk(["show", id, "--json"], { db }));
}

/** Counts by state, as `status --json` prints them. */
export async function jobCounts(db: string): Promise<Record<string, number>> {
  return JSON.parse(await cliOk(["status", "--json"], { db })).jobs;
}

/** A `worker start` process running in the background. */
export interface WorkerProcess {
  child: Deno.ChildProcess;
  pid: number;
  /** Everything printed to stdout so far. */
  stdout(): string;
  /** Everything printed to stderr so far. */
  stderr(): string;
  /** Sends a signal to the worker process (not its jobs). */
  signal(signal: Deno.Signal): void;
  /** Waits for the process to exit and returns its exit code. */
  exit(): Promise<number>;
}

async function collect(stream: ReadableStream<Uint8Array>, sink: string[]): Promise<void> {
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) sink.push(chunk);
}

/** Starts `queuectl worker start <args>` in the background. */
export function startWorker(
  db: string,
  args: string[] = [],
  options: CliOptions = {},
): WorkerProcess {
  const child = cliCommand(["worker", "start", ...args], { ...options, db }, "null").spawn();
  const out: string[] = [];
  const err: string[] = [];
  const reading = Promise.all([collect(child.stdout, out), collect(child.stderr, err)]);
  return {
    child,
    pid: child.pid,
    stdout: () => out.join(""),
    stderr: () => err.join(""),
    signal: (signal) => child.kill(signal),
    exit: async () => {
      const status = await child.status;
      await reading;
      return status.code;
    },
  };
}

/** Options of {@linkcode waitFor}. */
export interface WaitOptions {
  /** Give up after this long, in ms. @default 20_000 */
  timeoutMs?: number;
  /** Check this often, in ms. @default 50 */
  intervalMs?: number;
}

/**
 * Polls `condition` until it returns a truthy value, and returns that value.
 *
 * @throws when the time runs out, naming `what`
 */
export async function waitFor<T>(
  what: string,
  condition: () => T | Promise<T>,
  options: WaitOptions = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  while (true) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
}

/** Reads a text file, or returns "" when it does not exist yet. */
export async function readIfExists(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  }
}

/** Whether a process with this pid exists (Linux). */
export function processExists(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // A zombie has exited; only its parent has yet to reap it.
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** The non-empty lines of a text file; none when it does not exist yet. */
export async function readLines(path: string): Promise<string[]> {
  return (await readIfExists(path)).split("\n").filter((line) => line !== "");
}

/** Every job, as `list --json --limit 0` prints them (newest first). */
export async function listJobs(db: string): Promise<JobJson[]> {
  return JSON.parse(await cliOk(["list", "--json", "--limit", "0"], { db }));
}

/** The live workers, as `status --json` lists them. */
export interface WorkerJson {
  id: string;
  pid: number;
  host: string;
  threads: number;
  started_at: string;
  heartbeat_at: string;
  stopping: boolean;
}

/** The live workers `status --json` lists. */
export async function liveWorkers(db: string): Promise<WorkerJson[]> {
  return JSON.parse(await cliOk(["status", "--json"], { db })).workers;
}

/**
 * Waits for a worker process to exit, giving up after `timeoutMs`: then it is
 * killed (SIGKILL) and the returned promise rejects.
 */
export async function exitWithin(worker: WorkerProcess, timeoutMs: number): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      killProcess(worker);
      reject(new Error(`worker process ${worker.pid} still running after ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([worker.exit(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Sends SIGKILL to a worker process unless it has already exited; for cleanup after a failure. */
export function killProcess(worker: WorkerProcess): void {
  try {
    worker.child.kill("SIGKILL");
  } catch {
    // It has already exited.
  }
}

/** Enqueues one job from directory `cwd` (the job's default working directory) and returns its id. */
export async function enqueueIn(
  cwd: string,
  db: string,
  spec: string,
  ...flags: string[]
): Promise<string> {
  return (await cliOk(["enqueue", spec, ...flags], { db, cwd })).trim();
}

/**
 * Asserts that a run was refused the way every error must be: exit `code`,
 * nothing on stdout, and exactly one line on stderr starting with
 * "queuectl:" (so no stack trace).
 */
export function assertRefused(result: CliResult, code: number, what = "the command"): void {
  assert.equal(result.code, code, `${what}: exit code (stderr: ${result.stderr})`);
  assert.match(
    result.stderr,
    /^queuectl: [^\n]+\n$/,
    `${what}: stderr should be one line starting with "queuectl:" (got ${
      JSON.stringify(result.stderr)
    })`,
  );
  assert.doesNotMatch(result.stderr, /^ {4}at |Stack backtrace/m, `${what}: stack trace`);
  assert.equal(result.stdout, "", `${what}: stdout`);
}

/** Whether anything exists at `path` (a dangling symlink counts). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

let denoDirCache: Promise<string> | undefined;

/**
 * The Deno cache directory this test run uses. Pass it as `DENO_DIR` when a
 * test points `HOME` elsewhere, so the CLI does not start with an empty cache.
 */
export function denoDir(): Promise<string> {
  denoDirCache ??= new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdin: "null",
    stderr: "null",
  }).output().then((output) => JSON.parse(decoder.decode(output.stdout)).denoDir as string);
  return denoDirCache;
}

/** Runs `fn` over `items`, at most `limit` at a time, and returns the results in order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index], index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/**
 * Asserts that the file at `path` holds exactly `expected`. On a mismatch it
 * names the sizes and the first differing offset: node:assert's diff of two
 * large byte arrays takes gigabytes.
 */
export async function assertFileUnchanged(
  path: string,
  expected: Uint8Array,
  message: string,
): Promise<void> {
  const actual = await Deno.readFile(path);
  const length = Math.min(actual.length, expected.length);
  let offset = 0;
  while (offset < length && actual[offset] === expected[offset]) offset++;
  if (offset === length && actual.length === expected.length) return;
  assert.fail(
    `${message}: ${actual.length} bytes now, ${expected.length} before; first difference at ${offset}`,
  );
}
