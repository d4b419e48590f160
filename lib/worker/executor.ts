/**
 * Runs one job's command: a shell in its own process group (and on Linux
 * its own cgroup, where allowed), with a timeout that takes down every
 * process the run started, and bounded capture of its output.
 *
 * Two launch paths give the same guarantees: on Linux with glibc the shell
 * starts through posix_spawn (libc_spawn.ts), elsewhere (or when that is
 * unavailable, or {@linkcode LAUNCH_VAR} is `command`) through Deno.Command.
 *
 * @module
 */

import { sleep } from "../timing.ts";
import { RUN_ID_VAR, RunProcesses, useQuietCalls } from "./containment.ts";
import {
  fastLaunchRequired,
  LAUNCH_VAR,
  libcSpawner,
  type ShellExit,
  type SpawnedShell,
  SpawnError,
} from "./libc_spawn.ts";

/** Bytes of each stream kept per attempt: the last 64 KiB. */
export const OUTPUT_TAIL_BYTES = 64 * 1024;

/** How long a timed-out or killed run's processes get between SIGTERM and SIGKILL, in ms. */
export const KILL_GRACE_MS = 2_000;

/** After the shell exits, how long to keep reading output that its leftover children still hold open, in ms. */
const OUTPUT_LINGER_MS = 200;

/** How a command's run ended. */
export interface CommandResult {
  /** The exit code; 128 + n when killed by signal n; null when it never started. */
  exitCode: number | null;
  /** The signal that ended the shell, if one did. */
  signal: string | null;
  /** Whether the timeout ended it. */
  timedOut: boolean;
  /** Why the command could not be started, if it could not. */
  startError: string | null;
  stdout: Uint8Array;
  stderr: Uint8Array;
  stdoutDropped: number;
  stderrDropped: number;
}

/** What to run. */
export interface CommandSpec {
  command: string;
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number | null;
  /**
   * Where the shell writes the command's exit status as it exits, so that
   * the outcome survives a worker that dies first (see rescuer.ts).
   */
  statusFile?: string;
  /** Names the run (its claim token) as {@linkcode RUN_ID_VAR} in its processes' environment. */
  runId?: string;
  /** Where the run gets a cgroup of its own (see containment.ts); none when null or undefined. */
  cgroups?: string | null;
  /**
   * How long the start of the wait for the shell may block this thread, in
   * ms, on the fast path (see libc_spawn.ts): only for a caller that runs
   * nothing else on it meanwhile. 0 or undefined: never.
   */
  blockingWaitMs?: number;
}

/**
 * Runs the command given as $1 in the shell itself (eval: no second shell to
 * start) and, on exit, writes its status to the file given as $2. The job's
 * fields travel as arguments, never spliced into this text; the two names
 * are the only ones the command can see, and `shift` leaves it no arguments,
 * as with `sh -c`. A status that cannot be written (its folder gone, the
 * disk full) must not touch the job: the trap's own errors go nowhere, and
 * `|| :` keeps `set -e` from turning the failure into a different exit
 * status (the shell still exits with the command's).
 */
const STATUS_WRAPPER = `__queuectl_command=$1 __queuectl_status=$2
shift 2
trap '{ echo $? > "$__queuectl_status"; } 2>/dev/null || :' EXIT
eval "$__queuectl_command"`;

/**
 * Put before {@linkcode STATUS_WRAPPER} when the run has a cgroup: the
 * shell moves itself into it (the file given as $1) before it runs anything,
 * so that no process of the run starts outside. If it cannot, the run goes
 * on without: the group and the run's variable still find its processes.
 */
const CGROUP_JOIN = `{ echo $$ > "$1"; } 2>/dev/null
shift
`;

/** Keeps the last `limit` bytes of a stream and counts every byte it saw. */
export class TailBuffer {
  #chunks: Uint8Array[] = [];
  #size = 0;
  /** Bytes seen so far, kept or not. */
  total = 0;

  constructor(readonly limit: number) {}

  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    this.total += chunk.length;
    while (this.#size - this.#chunks[0].length >= this.limit) {
      this.#size -= this.#chunks.shift()!.length;
    }
  }

  /** The last `limit` bytes seen. */
  bytes(): Uint8Array {
    const all = new Uint8Array(this.#size);
    let offset = 0;
    for (const chunk of this.#chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return all.subarray(Math.max(0, this.#size - this.limit));
  }

  /** Bytes seen but no longer kept. */
  get dropped(): number {
    return this.total - Math.min(this.#size, this.limit);
  }
}

/** The output of a running command so far. */
export interface OutputSnapshot {
  stdout: Uint8Array;
  stderr: Uint8Array;
  stdoutTotal: number;
  stderrTotal: number;
}

/**
 * Reads a stream to its end into `into`; cancelling `reader` ends it early.
 * A plain read loop on purpose: racing each read against a stop promise
 * that settles only at the end leaves one reaction per chunk on that
 * promise, and so keeps every chunk the command ever printed reachable.
 */
async function drain(reader: ReadableStreamDefaultReader<Uint8Array>, into: TailBuffer) {
  while (true) {
    const { done, value } = await reader.read();
    if (done) return;
    into.push(value);
  }
}

/** setTimeout's longest delay: a longer one fires at once (with a warning). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Calls `fn` after `ms`, however long; returns a function that cancels it. */
function afterLongDelay(ms: number, fn: () => void): () => void {
  const deadline = Date.now() + ms;
  let timer: ReturnType<typeof setTimeout>;
  const arm = () => {
    const left = deadline - Date.now();
    timer = left > MAX_TIMER_MS ? setTimeout(arm, MAX_TIMER_MS) : setTimeout(fn, Math.max(0, left));
  };
  arm();
  return () => clearTimeout(timer);
}

/** A command that has been started. */
export interface RunningCommand {
  /** The shell's pid, which is also its process group id; undefined if it never started. */
  readonly pid: number | undefined;
  /** Whether the shell has exited (its output may still be being collected). */
  readonly exited: boolean;
  /** Resolves when the command has ended and its output has been collected. */
  readonly done: Promise<CommandResult>;
  /** Sends `signal` to every process of the run (see containment.ts). */
  signalAll(signal: Deno.Signal): void;
  /** SIGTERM to every process of the run, then SIGKILL to what is left after {@linkcode KILL_GRACE_MS}. */
  terminate(): void;
  /** Bytes of output seen so far on both streams: it grows whenever output arrives. */
  readonly outputBytes: number;
  /** The output so far (the last {@linkcode OUTPUT_TAIL_BYTES} of each stream). */
  snapshot(): OutputSnapshot;
}

/**
 * The first executable file called `name` in an absolute PATH entry, if
 * any. A relative entry would be looked up from here but run from the job's
 * own working directory.
 */
export function findExecutable(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir.startsWith("/")) continue;
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return `${dir}/${name}`;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

/**
 * setsid(1), where present, gives the shell its own session and process
 * group through Deno's fast spawn path. `detached: true` does the same
 * (with spawn(); output() ignores it) but takes a slower path: 310–370
 * starts per second against 800–850 through setsid(1), two lanes, here.
 */
const SETSID = Deno.build.os === "linux" ? findExecutable("setsid") : undefined;
/**
 * The shell, found on PATH once: setsid(1) would otherwise search PATH for
 * it on every run, one failed exec per directory before the right one.
 */
export const SHELL = findExecutable("sh") ?? "sh";

/**
 * The program, arguments and `detached` flag that run `command` in its own
 * process group, and in the cgroup whose `cgroup.procs` is `joinFile`;
 * `setsid` false when the launcher makes the session itself.
 */
function shellInvocation(
  spec: CommandSpec,
  joinFile: string | undefined,
  setsid: boolean,
): [string, string[], boolean] {
  if (Deno.build.os === "windows") return ["cmd", ["/c", spec.command], false];
  const shell = joinFile !== undefined
    ? [SHELL, "-c", CGROUP_JOIN + STATUS_WRAPPER, "sh", joinFile, spec.command]
      .concat(spec.statusFile ?? "/dev/null")
    : spec.statusFile === undefined
    ? [SHELL, "-c", spec.command]
    : [SHELL, "-c", STATUS_WRAPPER, "sh", spec.command, spec.statusFile];
  if (!setsid) return [shell[0], shell.slice(1), false];
  return SETSID ? [SETSID, shell, false] : [shell[0], shell.slice(1), true];
}

/** Whether `path` names no directory here (so a launch failed for its cwd). */
function noSuchDirectory(path: string): boolean {
  try {
    return !Deno.statSync(path).isDirectory;
  } catch {
    return true;
  }
}

/** Why a job's cwd stopped its launch: a path on the host that enqueued it; on a shared queue, name this host. */
function missingCwdMessage(cwd: string): string {
  return `working directory ${cwd} does not exist on ${Deno.hostname()}`;
}

/** The job's shell started through Deno.Command: the portable path. */
function commandShell(
  spec: CommandSpec,
  joinFile: string | undefined,
  stdout: TailBuffer,
  stderr: TailBuffer,
): SpawnedShell {
  const [program, args, detached] = shellInvocation(spec, joinFile, true);
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args,
      cwd: spec.cwd,
      env: spec.runId === undefined ? spec.env : { ...spec.env, [RUN_ID_VAR]: spec.runId },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached,
    }).spawn();
  } catch (error) {
    const message = error instanceof Deno.errors.NotFound && /cwd/i.test((error as Error).message)
      ? missingCwdMessage(spec.cwd)
      : (error as Error).message;
    throw new SpawnError(message, 0);
  }
  const readers = [child.stdout.getReader(), child.stderr.getReader()];
  return {
    pid: child.pid,
    status: child.status.then((s): ShellExit => ({ code: s.code, signal: s.signal })),
    reading: Promise.all([drain(readers[0], stdout), drain(readers[1], stderr)]).then(() => {}),
    stopReading: () => readers.forEach((reader) => reader.cancel().catch(() => {})),
  };
}

let inheritedEnvironment: Record<string, string> | undefined;

/**
 * The environment jobs inherit, read once: nothing in a worker process
 * changes it, and reading it costs as much as a claim.
 */
export function workerEnvironment(): Record<string, string> {
  return inheritedEnvironment ??= Deno.env.toObject();
}

/** The job's shell started through posix_spawn (libc_spawn.ts): the fast path. */
function fastShell(
  spec: CommandSpec,
  joinFile: string | undefined,
  stdout: TailBuffer,
  stderr: TailBuffer,
): SpawnedShell | null {
  const { spawner, problem } = libcSpawner();
  if (spawner === null) {
    if (fastLaunchRequired()) throw new SpawnError(`${LAUNCH_VAR}=spawn, but ${problem}`, 0);
    return null;
  }
  const [program, args] = shellInvocation(spec, joinFile, false);
  const env = { ...workerEnvironment(), ...spec.env };
  if (spec.runId !== undefined) env[RUN_ID_VAR] = spec.runId;
  try {
    return spawner.spawn({
      program,
      args,
      cwd: spec.cwd,
      env,
      onStdout: (chunk) => stdout.push(chunk),
      onStderr: (chunk) => stderr.push(chunk),
      blockingWaitMs: spec.blockingWaitMs,
    });
  } catch (error) {
    if (error instanceof SpawnError && error.errno !== 0 && noSuchDirectory(spec.cwd)) {
      throw new SpawnError(missingCwdMessage(spec.cwd), error.errno);
    }
    throw error;
  }
}

/**
 * Starts `spec.command` through the shell, in a new session and process
 * group (so that signals reach its children, and a Ctrl+C at the worker's
 * terminal does not), with stdin closed and output captured.
 */
export function startCommand(spec: CommandSpec): RunningCommand {
  const { spawner } = libcSpawner();
  if (spawner !== null) useQuietCalls(spawner);
  const processes = new RunProcesses(spec.runId, spec.cgroups);
  const stdout = new TailBuffer(OUTPUT_TAIL_BYTES);
  const stderr = new TailBuffer(OUTPUT_TAIL_BYTES);
  let shell: SpawnedShell;
  try {
    shell = fastShell(spec, processes.joinFile, stdout, stderr) ??
      commandShell(spec, processes.joinFile, stdout, stderr);
  } catch (error) {
    const message = (error as Error).message;
    void processes.close();
    return {
      pid: undefined,
      exited: true,
      signalAll() {},
      terminate() {},
      outputBytes: 0,
      snapshot: () => ({
        stdout: new Uint8Array(),
        stderr: new Uint8Array(),
        stdoutTotal: 0,
        stderrTotal: 0,
      }),
      done: Promise.resolve({
        exitCode: null,
        signal: null,
        timedOut: false,
        startError: message,
        stdout: new Uint8Array(),
        stderr: new Uint8Array(),
        stdoutDropped: 0,
        stderrDropped: 0,
      }),
    };
  }

  return followRun(shell, processes, stdout, stderr, spec.timeoutMs);
}

/**
 * The run of a started shell: its timeout, its signals, and its result once
 * it has exited and its output is in (with what it left behind ended).
 */
export function followRun(
  shell: SpawnedShell,
  processes: RunProcesses,
  stdout: TailBuffer,
  stderr: TailBuffer,
  timeoutMs: number | null,
): RunningCommand {
  const pid = shell.pid;
  processes.started(pid);
  let exited = false;
  const signalAll = (signal: Deno.Signal) => processes.signal(signal, !exited);

  let terminatedAt: number | undefined;
  let timedOut = false;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const terminate = () => {
    if (terminatedAt !== undefined || exited) return;
    terminatedAt = Date.now();
    signalAll("SIGTERM");
    killTimer = setTimeout(() => signalAll("SIGKILL"), KILL_GRACE_MS);
  };
  const cancelTimeout = timeoutMs === null ? () => {} : afterLongDelay(timeoutMs, () => {
    timedOut = terminatedAt === undefined;
    terminate();
  });

  const done = (async (): Promise<CommandResult> => {
    const status = await shell.status;
    exited = true;
    cancelTimeout();
    // Children the shell left behind may hold the pipes open; do not wait on them for long.
    const linger = setTimeout(shell.stopReading, OUTPUT_LINGER_MS);
    await shell.reading;
    clearTimeout(linger);
    // A run's end ends every process it started. What a shell that exited by
    // itself left behind is terminated like a timed-out run.
    let endedAt = terminatedAt;
    if (endedAt === undefined && processes.leftBehind()) {
      endedAt = Date.now();
      signalAll("SIGTERM");
    }
    if (endedAt !== undefined) {
      // The shell is gone, but processes that trap SIGTERM may not be: give
      // them the rest of the grace period, then kill what is left.
      while (processes.anyLeft() && Date.now() < endedAt + KILL_GRACE_MS) await sleep(25);
      clearTimeout(killTimer);
      signalAll("SIGKILL");
    }
    await processes.close();
    return {
      exitCode: status.code,
      signal: status.signal,
      timedOut,
      startError: null,
      stdout: stdout.bytes(),
      stderr: stderr.bytes(),
      stdoutDropped: stdout.dropped,
      stderrDropped: stderr.dropped,
    };
  })();

  return {
    pid,
    done,
    signalAll,
    terminate,
    get exited() {
      return exited;
    },
    get outputBytes() {
      return stdout.total + stderr.total;
    },
    snapshot: () => ({
      stdout: stdout.bytes(),
      stderr: stderr.bytes(),
      stdoutTotal: stdout.total,
      stderrTotal: stderr.total,
    }),
  };
}
