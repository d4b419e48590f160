/**
 * Shared test tools: temp databases, running the real CLI as a subprocess,
 * and polling for conditions instead of sleeping.
 *
 * @module
 */

import type { WorkerJson } from "../lib/json_shapes.ts";
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { describeLocation, parseDbLocation } from "../lib/db_location.ts";
import type { JobJson } from "../lib/job.ts";
import { openStore } from "../lib/store/mod.ts";
import type { Store } from "../lib/store/store.ts";
import { runsFolderOf } from "../lib/worker/runs_folder.ts";

export { SeededRandom } from "./seeded_random.ts";
/** The live workers, as `status --json` lists them (lib/json_shapes.ts). */
export type { WorkerJson };

/**
 * The CLI entry point the tests run: this checkout's main.ts, or the release
 * bundle's main.js (`QUEUECTL_TEST_MAIN`) when tests/bundle_test.ts runs test
 * files again against the bundle.
 */
export const MAIN = Deno.env.get("QUEUECTL_TEST_MAIN") ||
  new URL("../main.ts", import.meta.url).pathname;

const decoder = new TextDecoder();

/** A fresh temp directory holding a database path; removed by `cleanup()`. */
export interface TempQueue {
  dir: string;
  db: string;
  cleanup(): Promise<void>;
}

/**
 * The store the CLI tests run against: SQLite files, or, with
 * `QUEUECTL_TEST_STORE=postgres` (`deno task test:postgres`), a fresh schema
 * on the PostgreSQL test server (tests/pg_helpers.ts) per test.
 */
const TEST_STORE = Deno.env.get("QUEUECTL_TEST_STORE") ?? "sqlite";

/** Whether the CLI tests run with every queue on PostgreSQL ({@linkcode TEST_STORE}). */
export const ON_POSTGRES = TEST_STORE === "postgres";

/**
 * Registers a test of what only a SQLite queue has: its file (bytes, path,
 * relative `--db` paths, files beside it) or its tables read through
 * `node:sqlite`. Ignored when the CLI tests run on PostgreSQL, where a queue
 * is a schema on a server.
 */
export function sqliteOnlyTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: ON_POSTGRES, fn });
}

/** Makes a temp directory for one test's database and files. */
export async function tempQueue(): Promise<TempQueue> {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-test-" });
  const removeDir = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  if (TEST_STORE === "postgres") {
    const { freshSchema } = await import("./pg_helpers.ts");
    const schema = await freshSchema();
    return {
      dir,
      db: schema.url,
      cleanup: async () => {
        await removeDir();
        // A server queue's runs folder is under the user's state folder, not in `dir`.
        await Deno.remove(runsFolder(schema.url), { recursive: true }).catch(() => {});
        await schema.drop().catch(() => {});
      },
    };
  }
  return { dir, db: `${dir}/queue.db`, cleanup: removeDir };
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

/**
 * The runs folder (exit-status files, wake sockets) of `db` for the CLIs
 * these helpers start: beside the database (a server queue's: under the
 * state folder of this environment), or under `runtimeDir` when they were
 * given it as `XDG_RUNTIME_DIR`.
 */
export function runsFolder(db: string, runtimeDir = ""): string {
  const env = (name: string) => name === "XDG_RUNTIME_DIR" ? runtimeDir : Deno.env.get(name);
  return runsFolderOf(parseDbLocation(db, "--db"), env)!;
}

/** The queue `db` as queuectl's messages show it: a SQLite path, or a URL without its password. */
export function shownDb(db: string): string {
  return describeLocation(parseDbLocation(db, "--db"));
}

/** Opens the store of a test's queue `db` (a SQLite path or a PostgreSQL URL), as the CLI would. */
export function openQueueStore(db: string): Promise<Store> {
  return openStore(parseDbLocation(db, "--db"));
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
  /**
   * Extra environment variables. `XDG_RUNTIME_DIR` is empty (as if unset)
   * unless given here, so that runs folders are beside the database
   * whatever the environment of the tests ({@linkcode runsFolder}).
   */
  env?: Record<string, string>;
  /**
   * A program that runs queuectl for the test, with its own arguments first
   * (e.g. `["faketime", "-f", "+1h"]`: a machine whose clock is an hour ahead).
   */
  runner?: string[];
}

function cliCommand(args: string[], options: CliOptions, stdin: "piped" | "null") {
  const dbArgs = options.db === undefined ? [] : ["--db", options.db];
  const [program, ...first] = [...options.runner ?? [], Deno.execPath()];
  return new Deno.Command(program, {
    args: [...first, "run", "-A", MAIN, ...dbArgs, ...args],
    cwd: options.cwd,
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: "", ...options.env },
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

/** A CLI process running in the background whose output is read as it comes. */
export interface CliProcess {
  child: Deno.ChildProcess;
  pid: number;
  /** Everything printed to stdout so far. */
  stdout(): string;
  /** Everything printed to stderr so far. */
  stderr(): string;
  /** Sends a signal to the process (not to anything it started). */
  signal(signal: Deno.Signal): void;
  /** Waits for the exit, and for all output to be read; returns the exit code and signal. */
  status(): Promise<Deno.CommandStatus>;
  /** Waits for the process to exit, and for all output to be read; returns its exit code. */
  exit(): Promise<number>;
}

/** Whether process `pid` has `path` open (Linux). */
export function hasOpen(pid: number, path: string): boolean {
  try {
    for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        if (Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`) === path) return true;
      } catch {
        // Closed while we looked.
      }
    }
  } catch {
    // The process is gone.
  }
  return false;
}

/**
 * Whether process `pid` has the queue `db` open (Linux): the SQLite file
 * among its open files, or, for a PostgreSQL queue (reached over TCP, as the
 * test server is), an established connection to the server's port.
 */
export function hasQueueOpen(pid: number, db: string): boolean {
  const location = parseDbLocation(db, "--db");
  if (location.kind === "sqlite") {
    try {
      return hasOpen(pid, Deno.realPathSync(location.path));
    } catch {
      return false;
    }
  }
  const port = Number(new URL(location.url).port || 5432);
  try {
    const sockets = new Set<string>();
    for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        const target = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
        const inode = target.match(/^socket:\[(\d+)\]$/)?.[1];
        if (inode !== undefined) sockets.add(inode);
      } catch {
        // Closed while we looked.
      }
    }
    for (const table of ["tcp", "tcp6"]) {
      // Columns: sl, local address, remote address (hex ip:port), state (01 = established), …, inode.
      for (const line of Deno.readTextFileSync(`/proc/${pid}/net/${table}`).split("\n").slice(1)) {
        const fields = line.trim().split(/\s+/);
        if (fields.length < 10) continue;
        const remotePort = parseInt(fields[2].split(":")[1], 16);
        if (remotePort === port && fields[3] === "01" && sockets.has(fields[9])) return true;
      }
    }
  } catch {
    // The process is gone.
  }
  return false;
}

/**
 * Moves the last change of jobs `ids` back by `ms` in the queue `db`, as if
 * they had been left alone that long (no command can do that).
 */
export async function ageJobs(db: string, ids: string[], ms: number): Promise<void> {
  const location = parseDbLocation(db, "--db");
  if (location.kind === "postgres") {
    const { withSql } = await import("./pg_helpers.ts");
    await withSql(
      location.url,
      (sql) => sql`UPDATE jobs SET updated_at = updated_at - ${ms} WHERE id = ANY(${ids})`,
    );
    return;
  }
  const sql = new DatabaseSync(location.path);
  try {
    const age = sql.prepare("UPDATE jobs SET updated_at = updated_at - ? WHERE id = ?");
    for (const id of ids) age.run(ms, id);
  } finally {
    sql.close();
  }
}

/**
 * Blocks every write to the queue `db` for `ms`, as another program might:
 * SQLite's write lock (`BEGIN IMMEDIATE`), or on PostgreSQL every table of
 * the queue's schema locked in EXCLUSIVE mode (reads go on, as in SQLite).
 */
export async function holdWriteLock(db: string, ms: number): Promise<void> {
  const sleep = () => new Promise((resolve) => setTimeout(resolve, ms));
  const location = parseDbLocation(db, "--db");
  if (location.kind === "postgres") {
    const { withSql } = await import("./pg_helpers.ts");
    await withSql(location.url, (sql) =>
      sql.begin(async (tx) => {
        const tables = await tx`SELECT tablename FROM pg_tables
          WHERE schemaname = current_schema() ORDER BY tablename`;
        await tx`LOCK TABLE ${tx(tables.map((row) => row.tablename as string))} IN EXCLUSIVE MODE`;
        await sleep();
      }));
    return;
  }
  const holder = new DatabaseSync(location.path, { timeout: 5_000 });
  holder.exec("BEGIN IMMEDIATE");
  try {
    await sleep();
  } finally {
    holder.exec("COMMIT");
    holder.close();
  }
}

/**
 * Takes SQLite's write lock on the queue file `path` in another process,
 * runs `sql` under it, and commits after `ms`; resolves once the lock is
 * held, with the holder's exit status to come. Not this process: a thread
 * waiting in SQLite's busy handler is blocked, and could never let go.
 */
export async function lockInAnotherProcess(
  path: string,
  ms: number,
  sql = "",
): Promise<{ released: Promise<Deno.CommandStatus> }> {
  const holder = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { DatabaseSync } from "node:sqlite";
       const db = new DatabaseSync(${JSON.stringify(path)});
       db.exec("BEGIN IMMEDIATE");
       db.exec(${JSON.stringify(sql)});
       console.log("locked");
       await new Promise((resolve) => setTimeout(resolve, ${ms}));
       db.exec("COMMIT");`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const first = await reader.read();
  await reader.cancel();
  if (first.value?.trim() !== "locked") throw new Error("the lock holder did not start");
  return { released: holder.status };
}

/** A `worker start` process running in the background. */
export type WorkerProcess = CliProcess;

async function collect(stream: ReadableStream<Uint8Array>, sink: string[]): Promise<void> {
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) sink.push(chunk);
}

/** Starts `queuectl <args>` in the background, stdin closed, reading its output as it comes. */
export function spawnCli(args: string[], options: CliOptions = {}): CliProcess {
  return watchProcess(cliCommand(args, options, "null").spawn());
}

/** Reads a started process's piped stdout and stderr as they come. */
export function watchProcess(child: Deno.ChildProcess): CliProcess {
  const out: string[] = [];
  const err: string[] = [];
  const reading = Promise.all([collect(child.stdout, out), collect(child.stderr, err)]);
  const status = async () => {
    const status = await child.status;
    await reading;
    return status;
  };
  return {
    child,
    pid: child.pid,
    stdout: () => out.join(""),
    stderr: () => err.join(""),
    signal: (signal) => child.kill(signal),
    status,
    exit: async () => (await status()).code,
  };
}

/** Starts `queuectl worker start <args>` in the background. */
export function startWorker(
  db: string,
  args: string[] = [],
  options: CliOptions = {},
): WorkerProcess {
  return spawnCli(["worker", "start", ...args], { ...options, db });
}

/**
 * Runs `fn` with a `worker start <args>` process serving `db`; afterwards
 * stops it with SIGTERM (SIGKILL if it is still running 20 s later).
 */
export async function withWorker(
  db: string,
  args: string[],
  fn: (worker: WorkerProcess) => Promise<void>,
): Promise<void> {
  const worker = startWorker(db, args);
  try {
    await fn(worker);
  } finally {
    worker.signal("SIGTERM");
    await exitWithin(worker, 20_000).catch(() => killProcess(worker));
  }
}

/** Runs `worker start --drain <args>` to the end, checks that it exited 0, and returns its stdout. */
export async function drain(db: string, ...args: string[]): Promise<string> {
  const worker = startWorker(db, ["--drain", ...args]);
  try {
    assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
  } finally {
    killProcess(worker);
  }
  return worker.stdout();
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

/** The live workers `status --json` lists. */
export async function liveWorkers(db: string): Promise<WorkerJson[]> {
  return JSON.parse(await cliOk(["status", "--json"], { db })).workers;
}

/** Resolves with `promise`, or rejects after `ms`, naming `what` did not happen. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits for a worker (or other background CLI) process to exit, giving up
 * after `timeoutMs`: then it is killed (SIGKILL) and the returned promise
 * rejects.
 */
export async function exitWithin(worker: CliProcess, timeoutMs: number): Promise<number> {
  try {
    return await within(worker.exit(), timeoutMs, `worker process ${worker.pid} to exit`);
  } catch (error) {
    killProcess(worker);
    throw error;
  }
}

/**
 * Sends SIGKILL to a worker (or other background CLI) process unless it has
 * already exited; for cleanup after a failure.
 */
export function killProcess(worker: CliProcess): void {
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

/**
 * Whether the queue `db` has been created: its SQLite file exists, or its
 * PostgreSQL schema (which each test's queue starts with, empty) holds tables.
 */
export async function queueExists(db: string): Promise<boolean> {
  const location = parseDbLocation(db, "--db");
  if (location.kind === "sqlite") return await pathExists(location.path);
  const { withSql } = await import("./pg_helpers.ts");
  const [{ tables }] = await withSql(
    location.url,
    (sql) => sql`SELECT count(*)::int AS tables FROM pg_tables WHERE schemaname = current_schema()`,
  );
  return tables > 0;
}

/**
 * What the queue `db` holds, to compare before and after with
 * {@linkcode assertQueueUnchanged}: the SQLite file's bytes, or every row of
 * every table in a PostgreSQL queue's schema.
 */
export async function queueSnapshot(db: string): Promise<Uint8Array> {
  const location = parseDbLocation(db, "--db");
  if (location.kind === "sqlite") return await Deno.readFile(location.path);
  const { withSql } = await import("./pg_helpers.ts");
  const tables = await withSql(location.url, async (sql) => {
    const names = await sql`SELECT tablename FROM pg_tables
      WHERE schemaname = current_schema() ORDER BY tablename`;
    const contents: Record<string, string[]> = {};
    for (const { tablename } of names) {
      const rows = await sql`SELECT to_jsonb(t)::text AS row FROM ${sql(tablename)} t ORDER BY 1`;
      contents[tablename] = rows.map((row) => row.row as string);
    }
    return contents;
  });
  return new TextEncoder().encode(JSON.stringify(tables, null, 1));
}

/** Asserts that the queue `db` holds what it held when `before` was taken ({@linkcode queueSnapshot}). */
export async function assertQueueUnchanged(
  db: string,
  before: Uint8Array,
  message: string,
): Promise<void> {
  const location = parseDbLocation(db, "--db");
  if (location.kind === "sqlite") return await assertFileUnchanged(location.path, before, message);
  assert.equal(decoder.decode(await queueSnapshot(db)), decoder.decode(before), message);
}

/** Quotes a word for sh. */
export function shQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The sh command line that runs `queuectl <args>` of this checkout, on database `db` if given. */
export function cliCommandLine(args: string[], db?: string): string {
  const dbArgs = db === undefined ? [] : ["--db", db];
  return [Deno.execPath(), "run", "-A", MAIN, ...dbArgs, ...args].map(shQuote).join(" ");
}

/** How {@linkcode onPty} runs a command line. */
export interface PtyOptions {
  /** Environment variables, added to this process's or (with `clearEnv`) the only ones. */
  env?: Record<string, string>;
  clearEnv?: boolean;
}

/** What a command line printed on its pty (stdout and stderr, `\r\n` line ends); its exit code. */
export interface PtyResult {
  code: number;
  screen: string;
}

/** Runs a shell command line under `script`, which gives it a pty; returns what the pty showed. */
export async function onPty(commandLine: string, options: PtyOptions = {}): Promise<PtyResult> {
  const output = await new Deno.Command("script", {
    args: ["-qefc", commandLine, "/dev/null"],
    clearEnv: options.clearEnv,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: output.code, screen: decoder.decode(output.stdout) };
}

/**
 * A tmux server of a test's own (its own socket, no configuration file), so
 * that nothing else's sessions are touched: one detached session runs a
 * shell command on a real terminal, read with `capture-pane` and typed into
 * with `send-keys`.
 */
export class Tmux {
  readonly socket = `queuectl-test-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  readonly target = "test";
  #socketPath: string | undefined;

  /** Runs `tmux -L <socket> <args>` and returns its stdout; throws when it fails. */
  async run(...args: string[]): Promise<string> {
    const output = await new Deno.Command("tmux", {
      args: ["-L", this.socket, "-f", "/dev/null", ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      throw new Error(`tmux ${args.join(" ")}: ${decoder.decode(output.stderr).trim()}`);
    }
    return decoder.decode(output.stdout);
  }

  /** Starts the detached session, `columns`×`rows`, running a shell command. */
  async start(command: string, columns = 80, rows = 24): Promise<void> {
    await this.run(
      "new-session",
      "-d",
      "-s",
      this.target,
      "-x",
      String(columns),
      "-y",
      String(rows),
      command,
    );
    this.#socketPath = (await this.run("display-message", "-p", "#{socket_path}")).trim();
  }

  /** Types keys into the pane, as `send-keys` names them (`q`, `C-c`, `Enter`). */
  async keys(...keys: string[]): Promise<void> {
    await this.run("send-keys", "-t", this.target, ...keys);
  }

  /** The pane's text as shown, one string per row (colours dropped). */
  async screen(): Promise<string[]> {
    const text = await this.run("capture-pane", "-p", "-t", this.target);
    return text.replace(/\n$/, "").split("\n");
  }

  /** One tmux format value of the pane, e.g. `#{alternate_on}`. */
  async display(format: string): Promise<string> {
    return (await this.run("display-message", "-p", "-t", this.target, format)).trim();
  }

  /** Waits until the screen (its rows joined by `\n`) passes `check`, and returns it. */
  async waitForScreen(what: string, check: (text: string) => boolean): Promise<string[]> {
    let last: string[] = [];
    try {
      return await waitFor(what, async () => {
        last = await this.screen();
        return check(last.join("\n")) ? last : undefined;
      }, { timeoutMs: 30_000, intervalMs: 100 });
    } catch (error) {
      throw new Error(`${(error as Error).message}; the screen was:\n${last.join("\n")}`);
    }
  }

  /** Whether the pane's terminal is in canonical (cooked) mode, as a shell leaves it. */
  async cooked(): Promise<boolean> {
    const tty = await this.display("#{pane_tty}");
    const output = await new Deno.Command("stty", { args: ["-a", "-F", tty], stdin: "null" })
      .output();
    const settings = decoder.decode(output.stdout);
    assert.match(settings, /(^|\s)-?icanon(\s|$)/, `stty output: ${settings}`);
    return !/(^|\s)-icanon(\s|$)/.test(settings);
  }

  /** Stops the server and everything running in it, and removes its socket file. */
  async kill(): Promise<void> {
    await this.run("kill-server").catch(() => {});
    if (this.#socketPath) await Deno.remove(this.#socketPath).catch(() => {});
  }
}

function programRuns(program: string, args: string[]): boolean {
  try {
    return new Deno.Command(program, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Whether tmux is installed: tests that drive a full-screen terminal need it (`.ci/run` installs it). */
export const HAS_TMUX = programRuns("tmux", ["-V"]);

/** Whether script(1) is installed: tests that need a pty use it (`.ci/run` installs it). */
export const HAS_SCRIPT = programRuns("script", ["--version"]);
