/**
 * The processes of a soak run: queuectl CLI calls, `worker start` processes
 * that can be SIGKILLed at any moment, and a /proc sweep that finds every
 * process the run left behind, job processes included.
 *
 * @module
 */

import { runTimed } from "../bench/util.ts";

/** The CLI entry point, run as `deno run -A main.ts --db PATH …`. */
export const MAIN_TS = new URL("../main.ts", import.meta.url).pathname;

/**
 * The environment variable that marks every process of one soak run. Worker
 * processes get it, and their jobs inherit the worker's environment, so
 * orphaned job processes carry it too.
 */
export const RUN_TAG_VAR = "QUEUECTL_SOAK_RUN";

/** How a finished CLI call went. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The first lines of stderr, without the `Stack backtrace:` noise RUST_BACKTRACE adds. */
export function firstLines(text: string, lines = 3): string {
  return text.split("Stack backtrace:")[0].trim().split("\n").slice(0, lines).join(" | ");
}

/** Runs one queuectl command to the end; a call that outlives `timeoutMs` is killed and throws. */
export function runQueuectl(
  db: string,
  args: string[],
  options: { cwd: string; tag: string; timeoutMs?: number },
): Promise<CliResult> {
  return runTimed(Deno.execPath(), ["run", "-A", MAIN_TS, "--db", db, ...args], {
    cwd: options.cwd,
    env: { NO_COLOR: "1", [RUN_TAG_VAR]: options.tag },
    timeoutMs: options.timeoutMs ?? 60_000,
  });
}

/** Like {@linkcode runQueuectl}, but a non-zero exit throws, naming the command. */
export async function queuectlOk(
  db: string,
  args: string[],
  options: { cwd: string; tag: string; timeoutMs?: number },
): Promise<string> {
  const result = await runQueuectl(db, args, options);
  if (result.code !== 0) {
    throw new Error(
      `queuectl ${args.join(" ")} exited with ${result.code}: ${firstLines(result.stderr)}`,
    );
  }
  return result.stdout;
}

/** A `worker start` process, its output kept in memory as it arrives. */
export class WorkerProcess {
  readonly child: Deno.ChildProcess;
  readonly pid: number;
  /** Which start this is (1, 2, …), for logs. */
  readonly serial: number;
  readonly startedAt = Date.now();
  /** When the soak SIGKILLed it, if it did. */
  killedAt: number | undefined;
  /** Whether the soak asked it to stop (SIGTERM). */
  stopped = false;
  /** The exit code, once it has exited. */
  exitCode: number | undefined;
  readonly #out: string[] = [];
  readonly #err: string[] = [];
  readonly #reading: Promise<unknown>;
  readonly exited: Promise<number>;
  /** Whether it has exited and both of its output pipes have closed. */
  outputComplete = false;

  constructor(db: string, args: string[], options: { cwd: string; tag: string; serial: number }) {
    this.serial = options.serial;
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN_TS, "--db", db, "worker", "start", ...args],
      cwd: options.cwd,
      env: { NO_COLOR: "1", [RUN_TAG_VAR]: options.tag },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.child.pid;
    const collect = async (stream: ReadableStream<Uint8Array>, sink: string[]) => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) sink.push(chunk);
    };
    this.#reading = Promise.all([
      collect(this.child.stdout, this.#out),
      collect(this.child.stderr, this.#err),
    ]);
    this.exited = this.child.status.then(async (status) => {
      this.exitCode = status.code;
      await this.#reading;
      this.outputComplete = true;
      return status.code;
    });
  }

  /** Everything it printed to stdout so far. */
  stdout(): string {
    return this.#out.join("");
  }

  /** Everything it printed to stderr so far. */
  stderr(): string {
    return this.#err.join("");
  }

  /** Whether it is still running (as far as its parent has noticed). */
  get running(): boolean {
    return this.exitCode === undefined;
  }

  #ready = false;

  /** Whether it printed its start line: from then on it is registered and handles signals. */
  get ready(): boolean {
    this.#ready ||= / worker \S+ started \d+ worker/.test(this.stdout());
    return this.#ready;
  }

  /** Sends a signal; false when the process had already gone. */
  signal(signal: Deno.Signal): boolean {
    try {
      this.child.kill(signal);
      return true;
    } catch {
      return false;
    }
  }
}

/**
 * Every process on this machine whose environment carries `RUN_TAG_VAR=tag`,
 * or a `QUEUECTL_JOB_ID` of this run (ids start with the tag): the run's
 * workers and CLI calls, and the job processes, orphaned or not. Zombies have
 * an empty environ and are not listed: they have already exited.
 */
export function taggedProcesses(tag: string): number[] {
  const marker = `${RUN_TAG_VAR}=${tag}`;
  const jobPrefix = `QUEUECTL_JOB_ID=${tag}-`;
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid) || pid === Deno.pid) continue;
    let environ: string;
    try {
      environ = Deno.readTextFileSync(`/proc/${pid}/environ`);
    } catch {
      continue; // Gone meanwhile, or not ours to read.
    }
    const vars = environ.split("\0");
    if (vars.includes(marker) || vars.some((v) => v.startsWith(jobPrefix))) found.push(pid);
  }
  return found;
}

/**
 * SIGKILLs every tagged process until none is left (a dying shell may fork
 * once more), for at most `timeoutMs`. Returns the distinct pids killed.
 */
export async function killTagged(tag: string, timeoutMs = 5_000): Promise<number[]> {
  if (Deno.build.os !== "linux") return [];
  const killed = new Set<number>();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const pids = taggedProcesses(tag);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
        killed.add(pid);
      } catch {
        // It exited meanwhile.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return [...killed];
}
