/**
 * `queuectl worker start`: runs workers in the foreground, or with
 * `--detach` starts them as a background process and returns.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import type { DbLocation } from "../../db_location.ts";
import { QueueError, UsageError } from "../../errors.ts";
import { checkQueueName } from "../../spec.ts";
import type { Store } from "../../store/store.ts";
import { pollUntil } from "../../timing.ts";
import { findExecutable } from "../../worker/executor.ts";
import { hostname } from "../../worker/process_info.ts";
import { runWorkers } from "../../worker/supervisor.ts";
import type { CommandContext } from "../context.ts";
import { writeErr, writeOut } from "../output.ts";

/** The most Web Workers one process runs: each costs about 10 MB and a thread. */
export const MAX_WORKER_COUNT = 256;

/** How long `--detach` waits for the background process to register, in ms. */
const DETACH_TIMEOUT_MS = 15_000;
const DETACH_POLL_MS = 100;
/** Lines of the log shown when the background process fails to start. */
const LOG_TAIL_LINES = 10;

/** The foreground options, checked, as the background process is given them again. */
interface WorkerOptions {
  count: number;
  drain: boolean;
  once: boolean;
  queues: string[] | undefined;
}

/** Reads `--count`: a whole number from 1 to {@linkcode MAX_WORKER_COUNT}; one message for the rest. */
function parseWorkerCount(text: string): number {
  const count = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (count >= 1 && count <= MAX_WORKER_COUNT) return count;
  throw new UsageError(
    `--count: '${text}' is not a whole number from 1 to ${MAX_WORKER_COUNT}`,
  );
}

/** Runs `worker start`. */
export async function run({ args, location, openStore }: CommandContext): Promise<number> {
  const count = args.options.count === undefined
    ? 1
    : parseWorkerCount(args.options.count as string);
  const once = args.options.once === true;
  if (once && count > 1) {
    throw new UsageError("--once runs one job: it cannot take --count above 1");
  }
  const queueList = args.options.queue as string | undefined;
  const queues = queueList === undefined
    ? undefined
    : [...new Set(queueList.split(",").map((name) => checkQueueName(name, "--queue")))];
  const detach = args.options.detach === true;
  const log = args.options.log as string | undefined;
  if (log !== undefined && !detach) throw new UsageError("--log only goes with --detach");
  if (log === "") throw new UsageError("--log: the file name is empty");
  const options: WorkerOptions = { count, drain: args.options.drain === true, once, queues };
  const store = await openStore();
  try {
    if (detach) return await startDetached(store, location, options, log);
    return await runWorkers({ store, location, ...options });
  } finally {
    await store.close();
  }
}

/**
 * The program and leading arguments that run this CLI again: the compiled
 * binary itself, or `deno run -A` with the main module.
 */
function selfInvocation(): [string, string[]] {
  // Deno.build.standalone is true only in a `deno compile`d binary (checked on the main thread).
  if (Deno.build.standalone) return [Deno.execPath(), []];
  const main = Deno.mainModule.startsWith("file:")
    ? fileURLToPath(Deno.mainModule)
    : Deno.mainModule;
  return [Deno.execPath(), ["run", "-A", main]];
}

/** The last lines of the log file, or "" when there is none. */
function logTail(log: string | undefined): string {
  if (log === undefined) return "";
  try {
    const lines = Deno.readTextFileSync(log).split("\n").filter((line) => line.trim() !== "");
    return lines.slice(-LOG_TAIL_LINES).join("\n");
  } catch {
    return "";
  }
}

/** Fails with `message`, showing the end of the log (when there is one) first. */
function failStart(message: string, log: string | undefined): never {
  const tail = logTail(log);
  if (tail !== "") writeErr(`last lines of ${log}:\n${tail}\n`);
  throw new QueueError(message);
}

/**
 * Starts the workers as a background process in a session of its own (so a
 * closing terminal or a Ctrl+C does not reach it), stdin from /dev/null and
 * its output appended to `log` or discarded, and waits until it has
 * registered. Prints its pid. Resolves with the exit code.
 */
async function startDetached(
  store: Store,
  location: DbLocation,
  options: WorkerOptions,
  logOption: string | undefined,
): Promise<number> {
  const log = logOption === undefined
    ? undefined
    : logOption.startsWith("/")
    ? logOption
    : `${Deno.cwd()}/${logOption}`;
  if (log !== undefined) {
    // Fail here, with a clear message, rather than in a child that cannot report it.
    // The log holds commands and their errors: a new one is private to the owner
    // (0600, whatever the umask would allow). An existing one keeps the mode its
    // owner gave it, as an existing database does.
    try {
      Deno.openSync(log, { append: true, create: true, mode: 0o600 }).close();
    } catch (error) {
      throw new QueueError(`--log: cannot write to '${log}': ${(error as Error).message}`);
    }
  }
  const [program, lead] = selfInvocation();
  // The background process is told where the database is as this one was told. A URL goes
  // by the environment, where `ps` does not show the password in it.
  const dbArgs = location.kind === "sqlite" ? ["--db", location.path] : [];
  const env: Record<string, string> = location.kind === "sqlite"
    ? {}
    : { QUEUECTL_DB: location.url };
  const workerArgs = [
    ...lead,
    "worker",
    "start",
    ...dbArgs,
    "--count",
    String(options.count),
    ...(options.drain ? ["--drain"] : []),
    ...(options.once ? ["--once"] : []),
    ...(options.queues === undefined ? [] : ["--queue", options.queues.join(",")]),
  ];
  // Deno.Command cannot point a child's output at a file: a shell does it,
  // then execs the worker, which keeps the shell's pid.
  let argv = log === undefined
    ? [program, ...workerArgs]
    : ["sh", "-c", 'log=$1; shift; exec "$@" >>"$log" 2>&1', "sh", log, program, ...workerArgs];
  // setsid(1) execs in place (the child of a spawn leads no process group), so the pid stays too.
  const setsid = Deno.build.os === "linux" ? findExecutable("setsid") : undefined;
  if (setsid !== undefined) argv = [setsid, ...argv];
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      env,
      stdin: "null",
      stdout: "null",
      stderr: "null",
      detached: setsid === undefined,
    }).spawn();
  } catch (error) {
    throw new QueueError(`cannot start the worker process: ${(error as Error).message}`);
  }
  let exited: Deno.CommandStatus | undefined;
  child.status.then((status) => exited = status);
  const host = hostname();
  const registered = await pollUntil(async () => {
    const workers = await store.listWorkers();
    if (workers.some((w) => w.pid === child.pid && w.host === host)) return true;
    if (exited !== undefined) {
      const how = exited.signal === null ? `code ${exited.code}` : exited.signal;
      failStart(`the worker process exited (${how}) before it was seen running`, log);
    }
    return false;
  }, { intervalMs: DETACH_POLL_MS, deadline: Date.now() + DETACH_TIMEOUT_MS });
  if (!registered) {
    try {
      child.kill("SIGTERM");
    } catch {
      // It has just exited.
    }
    failStart(
      `the worker process (pid ${child.pid}) did not register within ${
        DETACH_TIMEOUT_MS / 1000
      }s; it was sent SIGTERM`,
      log,
    );
  }
  // The worker lives on after this process exits; do not wait for it.
  child.unref();
  writeOut(`${child.pid}\n`);
  writeErr(
    `started worker process ${child.pid} in the background (${
      log === undefined ? "output discarded" : `log: ${log}`
    }); stop it with 'queuectl worker stop'\n`,
  );
  return 0;
}
