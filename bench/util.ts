/**
 * Shared plumbing of the benchmarks: the figures they return, how they run
 * the CLI and other processes, temp dirs, /proc readers and statistics.
 *
 * Every process a benchmark starts is tracked here, so that a failure or a
 * Ctrl+C still kills it, and every temp dir is scanned for stray processes
 * (by their working directory) before it is removed.
 *
 * @module
 */

export { seededRandom } from "../tests/seeded_random.ts";

/** The CLI entry point, run as `deno run -A main.ts --db PATH …`. */
export const MAIN_TS = new URL("../main.ts", import.meta.url).pathname;
/** The repository root, for `git` and for resolving the default output path. */
export const ROOT = new URL("..", import.meta.url).pathname;

/** Which way a figure is better, so the reader can read its ratio. */
export type Better = "higher" | "lower";

/** One reported figure: queuectl's value beside a baseline measured in the same run. */
export interface Figure {
  /** The benchmark that produced it: `throughput`, `latency`, … */
  benchmark: string;
  /** What was measured, for the table's first columns. */
  name: string;
  value: number;
  unit: string;
  baseline: { label: string; value: number; unit: string };
  /** value ÷ baseline.value; null when the baseline is 0. */
  ratio: number | null;
  better: Better;
  note?: string;
}

/** What a benchmark hands back: its figures and the raw numbers behind them. */
export interface BenchResult {
  figures: Figure[];
  details: Record<string, unknown>;
  /** Things that went wrong in queuectl but did not stop the benchmark. */
  problems: string[];
  /** Parts of the benchmark that could not finish (the rest still reports). */
  errors?: string[];
}

/** Sizes and switches of a run, after flags and `--quick` are applied. */
export interface Sizes {
  quick: boolean;
  throughputJobs: number;
  throughputCounts: number[];
  throughputRounds: number;
  latencyJobs: number;
  idleSeconds: number;
  enqueueRuns: number;
  /** Rounds of the table commands' start-up (each command, table and --json, once a round). */
  tableRuns: number;
  bulkJobs: number;
  bulkRounds: number;
  scaleJobs: number;
  scaleSmallJobs: number;
  scaleRuns: number;
  scaleClaims: number;
  memoryCounts: number[];
  /** The PostgreSQL server (no schema) the `postgres` benchmark works on. */
  pgUrl: string;
  /** `postgres`: jobs per throughput run. */
  pgThroughputJobs: number;
  /** `postgres`: jobs of the bulk enqueue. */
  pgBulkJobs: number;
  /** `postgres`: waiting jobs in the queue where claims are timed. */
  pgClaimJobs: number;
}

/** Builds a figure, computing its ratio. */
export function figure(
  benchmark: string,
  name: string,
  value: number,
  unit: string,
  baseline: Figure["baseline"],
  better: Better,
  note?: string,
): Figure {
  const ratio = baseline.value === 0 ? null : value / baseline.value;
  return { benchmark, name, value, unit, baseline, ratio, better, note };
}

/** Progress goes to stderr, so that stdout carries only the table. */
export function progress(line: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Wall-clock time in ms with sub-ms precision: Date.now() is whole ms, too
 * coarse for spawn costs of a few ms. The monotonic clock drifts from the
 * wall clock by far less than a ms over a run of minutes.
 */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

// ---------------------------------------------------------------- statistics

/** The p-th percentile (nearest rank) of `values`. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) throw new Error("percentile of no values");
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

/** The median (p50) of `values`. */
export function median(values: number[]): number {
  return percentile(values, 50);
}

/** Rounds for JSON, so the file stays readable. */
export function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

// ----------------------------------------------------------------- processes

const live = new Set<Deno.ChildProcess>();

/** Remembers a child until it exits, so that {@linkcode killAllChildren} can reach it. */
function track(child: Deno.ChildProcess): Deno.ChildProcess {
  live.add(child);
  child.status.finally(() => live.delete(child)).catch(() => {});
  return child;
}

/** SIGKILLs every child still running (used on failure and on Ctrl+C). */
export function killAllChildren(): void {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

const decoder = new TextDecoder();

/** The first lines of a process's stderr, without Deno's RUST_BACKTRACE noise. */
export function firstLines(text: string, lines = 3): string {
  const cut = text.split("Stack backtrace:")[0];
  return cut.trim().split("\n").slice(0, lines).join(" | ");
}

/** How a finished process went. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** From just before the spawn to the exit and the end of its output, in ms. */
  ms: number;
}

/** Options of {@linkcode runTimed}. */
export interface RunOptions {
  cwd: string;
  /** Kill it and fail after this long. */
  timeoutMs?: number;
  env?: Record<string, string>;
}

/**
 * Runs a program to completion and times it from just before the spawn to
 * its exit. Output is piped and kept; stdin is closed. A run that outlives
 * its timeout is killed and reported as a hang.
 */
export async function runTimed(
  program: string,
  args: string[],
  options: RunOptions,
): Promise<RunResult> {
  const command = new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const timeoutMs = options.timeoutMs ?? 120_000;
  const started = performance.now();
  const child = track(command.spawn());
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // It exited in the meantime.
    }
  }, timeoutMs);
  const output = await child.output();
  const ms = performance.now() - started;
  clearTimeout(timer);
  const result = {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    ms,
  };
  if (timedOut) {
    throw new Error(
      `hang: '${[program, ...args].join(" ")}' still ran after ${timeoutMs} ms and was killed` +
        (result.stderr ? ` (stderr: ${firstLines(result.stderr)})` : ""),
    );
  }
  return result;
}

/** Runs one queuectl command against `db`, timed as a whole CLI call (process start included). */
export function runCli(
  db: string,
  args: string[],
  options: RunOptions,
): Promise<RunResult> {
  return runTimed(Deno.execPath(), ["run", "-A", MAIN_TS, "--db", db, ...args], options);
}

/** Like {@linkcode runCli}, but a non-zero exit is an error naming the command. */
export async function cliOk(db: string, args: string[], options: RunOptions): Promise<RunResult> {
  const result = await runCli(db, args, options);
  if (result.code !== 0) {
    throw new Error(
      `queuectl ${args.join(" ")} exited with ${result.code}: ${firstLines(result.stderr)}`,
    );
  }
  return result;
}

/**
 * Writes an empty script into `dir` and returns a function that runs it with
 * `deno run` and gives its time in ms: the runtime's own start, the baseline
 * of every start-up figure.
 */
export async function emptyDenoRun(dir: string): Promise<() => Promise<number>> {
  const empty = `${dir}/empty.ts`;
  await Deno.writeTextFile(empty, "\n");
  return async () => {
    const result = await runTimed(Deno.execPath(), ["run", empty], { cwd: dir });
    if (result.code !== 0) throw new Error(`deno run of an empty script exited ${result.code}`);
    return result.ms;
  };
}

/** Creates the database (schema included) by running `status` once, untimed. */
export async function initDb(db: string, cwd: string): Promise<void> {
  await cliOk(db, ["status"], { cwd });
}

/** The parsed `status --json`. */
export interface StatusJson {
  jobs: Record<string, number>;
  workers: { id: string; pid: number; threads: number }[];
}

/** Runs `status --json`. */
export async function statusJson(db: string, cwd: string): Promise<StatusJson> {
  const result = await cliOk(db, ["status", "--json"], { cwd });
  return JSON.parse(result.stdout) as StatusJson;
}

/** A job as `list --json` prints it (the fields the benchmarks read). */
export interface JobJson {
  id: string;
  state: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

/** Every job of the database, through `list --json --limit 0`. */
export async function listAll(db: string, cwd: string): Promise<JobJson[]> {
  const result = await cliOk(db, ["list", "--json", "--limit", "0"], { cwd, timeoutMs: 300_000 });
  return JSON.parse(result.stdout) as JobJson[];
}

/**
 * A long-running process (a `worker start`, or a bare sleeping `deno run`)
 * whose stdout and stderr go to a log file in its temp dir.
 */
export class LongProcess {
  readonly #child: Deno.ChildProcess;
  #exit: number | undefined;
  readonly exited: Promise<number>;

  private constructor(child: Deno.ChildProcess, readonly logPath: string, readonly what: string) {
    this.#child = child;
    this.exited = child.status.then((status) => this.#exit = status.code);
  }

  /**
   * Starts `program args` with output to `logPath`. The shell redirects and
   * then execs, so the pid is the program's own and nothing in the
   * benchmark process spends time copying the log.
   */
  static start(program: string, args: string[], cwd: string, logPath: string): LongProcess {
    const child = new Deno.Command("sh", {
      args: ["-c", 'exec "$@" >"$BENCH_LOG" 2>&1', "sh", program, ...args],
      cwd,
      env: { BENCH_LOG: logPath },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    return new LongProcess(track(child), logPath, [program, ...args].join(" "));
  }

  /** Starts `queuectl … worker start <args>` on `db`. */
  static worker(db: string, args: string[], cwd: string, logName: string): LongProcess {
    return LongProcess.start(
      Deno.execPath(),
      ["run", "-A", MAIN_TS, "--db", db, "worker", "start", ...args],
      cwd,
      `${cwd}/${logName}`,
    );
  }

  /** Starts a bare `deno run` of a script that only keeps the event loop alive. */
  static async bareDeno(cwd: string): Promise<LongProcess> {
    const script = `${cwd}/bare_sleep.ts`;
    // Why: the runtime's own floor, for memory and idle CPU; a timer keeps it alive.
    await Deno.writeTextFile(script, "setInterval(() => {}, 1000);\n");
    return LongProcess.start(Deno.execPath(), ["run", script], cwd, `${cwd}/bare_sleep.log`);
  }

  /** The process id (the program's own, thanks to the exec). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Whether it has not exited yet. */
  get running(): boolean {
    return this.#exit === undefined;
  }

  /** The last lines of its log, for error messages. */
  async logTail(lines = 5): Promise<string> {
    try {
      const text = await Deno.readTextFile(this.logPath);
      return firstLines(text.trim().split("\n").slice(-lines).join("\n"), lines);
    } catch {
      return "(no log)";
    }
  }

  /** Resolves with the exit code, or undefined if it is still running after `ms`. */
  async waitExit(ms: number): Promise<number | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    });
    const code = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    return code;
  }

  /** Sends `signal`; a process that already exited is not an error. */
  signal(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // It exited in the meantime.
    }
  }

  /**
   * Stops it the documented way: SIGTERM, then (if it has not exited within
   * `graceMs`) a second SIGTERM, which kills running jobs, then SIGKILL.
   * Returns a problem description when it needed more than the first SIGTERM.
   */
  async stop(graceMs = 15_000): Promise<string | undefined> {
    if (!this.running) return undefined;
    this.signal("SIGTERM");
    if (await this.waitExit(graceMs) !== undefined) return undefined;
    const tail = await this.logTail();
    this.signal("SIGTERM");
    if (await this.waitExit(8_000) !== undefined) {
      return `${this.what}: did not exit within ${graceMs} ms of SIGTERM; a second SIGTERM stopped it (log: ${tail})`;
    }
    this.signal("SIGKILL");
    await this.exited;
    return `${this.what}: ignored two SIGTERMs and was SIGKILLed (log: ${tail})`;
  }
}

/**
 * Waits until `status --json` lists a worker process with `pid`, i.e. it has
 * opened the database and registered.
 */
export async function waitRegistered(
  db: string,
  cwd: string,
  worker: LongProcess,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (!worker.running) {
      throw new Error(`worker exited before registering (log: ${await worker.logTail()})`);
    }
    const status = await statusJson(db, cwd);
    if (status.workers.some((w) => w.pid === worker.pid)) return;
    await sleep(50);
  }
  throw new Error(`worker pid ${worker.pid} did not register within ${timeoutMs} ms`);
}

// ------------------------------------------------------------------- /proc

/** Resident memory of a process in bytes (VmRSS of /proc/PID/status). */
export function readRssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** User plus system CPU of a process, all threads, in clock ticks (/proc/PID/stat). */
export function readCpuTicks(pid: number): number {
  return readCpuTimes(pid).own;
}

/** CPU clock ticks of a process: its own, and those of the children it has waited for. */
export interface CpuTicks {
  own: number;
  children: number;
}

/** Reads {@linkcode CpuTicks} from /proc/PID/stat, or from a copy of that line. */
export function readCpuTimes(pid: number, statLine?: string): CpuTicks {
  const stat = statLine ?? Deno.readTextFileSync(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces; fields are counted after its closing paren.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime, stime, cutime, cstime are fields 14 to 17, i.e. 11 to 14 after the paren.
  return {
    own: Number(fields[11]) + Number(fields[12]),
    children: Number(fields[13]) + Number(fields[14]),
  };
}

let clockTicks: number | undefined;

/** Clock ticks per second (`getconf CLK_TCK`). */
export async function clockTicksPerSecond(): Promise<number> {
  if (clockTicks === undefined) {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"] }).output();
    clockTicks = Number(decoder.decode(out.stdout).trim()) || 100;
  }
  return clockTicks;
}

/** Pids (other than this one) whose working directory lies inside `dir`. */
function processesIn(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    if (pid === Deno.pid) continue;
    try {
      const cwd = Deno.readLinkSync(`/proc/${pid}/cwd`);
      if (cwd === dir || cwd.startsWith(`${dir}/`) || cwd.startsWith(`${dir} `)) pids.push(pid);
    } catch {
      // Gone, or not ours to read.
    }
  }
  return pids;
}

const tempDirs = new Set<string>();
/** Processes found still running in a benchmark's temp dir at its end (then killed). */
export const leftovers: string[] = [];

/**
 * Runs `body` with a fresh temp dir, then kills anything still running in
 * it (every process the benchmark starts runs there, jobs included), and
 * removes it.
 */
export async function withTempDir<T>(name: string, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = Deno.realPathSync(await Deno.makeTempDir({ prefix: `queuectl-bench-${name}-` }));
  tempDirs.add(dir);
  try {
    return await body(dir);
  } finally {
    await cleanTempDir(dir);
  }
}

async function cleanTempDir(dir: string): Promise<void> {
  // Give children that were just signalled a moment to go before calling them leftovers.
  for (let attempt = 0; attempt < 20 && processesIn(dir).length > 0; attempt++) await sleep(100);
  for (const pid of processesIn(dir)) {
    let cmdline = "";
    try {
      cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ").trim();
    } catch {
      // Gone.
    }
    leftovers.push(`pid ${pid} in ${dir}: ${cmdline}`);
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Gone.
    }
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  tempDirs.delete(dir);
}

/** Emergency clean-up (Ctrl+C): kill every child and whatever runs in our temp dirs. */
export async function cleanUpEverything(): Promise<void> {
  killAllChildren();
  for (const dir of [...tempDirs]) await cleanTempDir(dir);
}

/** Size of a file in bytes, 0 when missing. */
export function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

/** Removes a SQLite database with its -wal and -shm files. */
export async function removeDb(db: string): Promise<void> {
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.remove(db + suffix).catch(() => {});
  }
}

// ----------------------------------------------------------------- machine

/** The machine and code a run measured. */
export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memTotalGiB: number;
  kernel: string;
  deno: string;
  v8: string;
  typescript: string;
  /** The measured commit, and whether lib/ or main.ts had uncommitted changes. */
  commit: string;
  line: string;
}

async function commandText(program: string, args: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(program, { args, cwd: ROOT, stderr: "null" }).output();
    return out.success ? decoder.decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

/** Reads nproc, the CPU model and the rest from the system. */
export async function machineInfo(): Promise<MachineInfo> {
  const nproc = Number(await commandText("nproc", [])) || navigator.hardwareConcurrency;
  let cpuModel = "unknown CPU";
  let memTotalGiB = 0;
  try {
    const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
    cpuModel = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1].trim() ?? cpuModel;
    const meminfo = Deno.readTextFileSync("/proc/meminfo");
    memTotalGiB = round(Number(meminfo.match(/^MemTotal:\s+(\d+)/m)?.[1] ?? 0) / 1024 ** 2, 1);
  } catch {
    // Not Linux: keep the defaults.
  }
  const head = await commandText("git", ["rev-parse", "--short", "HEAD"]) ?? "unknown";
  const dirty = await commandText("git", ["status", "--porcelain", "--", "lib", "main.ts"]);
  const commit = dirty ? `${head} + uncommitted changes in lib/ or main.ts` : head;
  const kernel = Deno.osRelease();
  const line = `${nproc} cores (nproc), ${cpuModel}, ${memTotalGiB} GiB RAM, Linux ${kernel}, ` +
    `Deno ${Deno.version.deno}; code ${commit}`;
  return {
    nproc,
    cpuModel,
    memTotalGiB,
    kernel,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    commit,
    line,
  };
}
