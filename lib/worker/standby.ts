/**
 * A job's shell started before its job is known (fast launch path only):
 * already in its own session and its run's cgroup, with the run's id in its
 * environment, waiting on a pipe. When the job comes, the worker writes it
 * a short script (where to run, the job's variables, the command) and the
 * shell runs it as the status wrapper of executor.ts would. The program
 * start, the cgroup join (one RCU grace period on kernels without
 * `favordynmods`) and the shell's own start-up are then off the path from
 * a claim to the command's first instruction.
 *
 * The run's id is the claim token: the worker claims with the id its
 * shell was made for (`Store.claim`'s `token`), so the run's cgroup, status
 * file and {@linkcode RUN_ID_VAR} are named as for any run, and recovery
 * finds them the same way.
 *
 * Where a shell started ahead would not run a job exactly as a fresh one
 * does (a job variable the shell itself reads, such as IFS), or the shell
 * is gone, {@linkcode StandbyShell.start} declines and the caller discards
 * it and starts the job the usual way.
 *
 * @module
 */

import { ENV_NAME_PATTERN } from "../job_env.ts";
import { isFolder, RUN_ID_VAR, RunProcesses } from "./containment.ts";
import {
  type CommandSpec,
  followRun,
  OUTPUT_TAIL_BYTES,
  type RunningCommand,
  SHELL,
  TailBuffer,
  workerEnvironment,
} from "./executor.ts";
import { libcSpawner, type StandbySpawn } from "./libc_spawn.ts";

/**
 * The shell's script. It joins its cgroup (the file given as $1, if any),
 * keeps the status file's name ($2), then reads its job from stdin: the
 * job's script defines `__queuectl_command`, or, when the worker discards
 * the shell, nothing, and the shell leaves without a status. Then as
 * executor.ts's status wrapper: stdin back to /dev/null, the exit status
 * written on exit, the command run in the shell itself.
 */
const STANDBY_SCRIPT = `[ -z "$1" ] || { echo $$ > "$1"; } 2>/dev/null
__queuectl_status=$2
shift 2
. /dev/stdin
[ -n "\${__queuectl_command+set}" ] || exit 0
exec </dev/null
trap '{ echo $? > "$__queuectl_status"; } 2>/dev/null || :' EXIT
eval "$__queuectl_command"`;

/**
 * Variables the shell reads for itself, or sets: given to a fresh shell
 * in its environment they do what dash makes of them at start-up (IFS, for
 * one, is ignored there), which an `export` in a running shell would not
 * repeat. Jobs that set one start the usual way.
 */
const SHELL_OWN_VARIABLES = new Set([
  "IFS",
  "PPID",
  "PWD",
  "OLDPWD",
  "OPTIND",
  "ENV",
  "CDPATH",
  "PS1",
  "PS2",
  "PS4",
  "LINENO",
  "HISTSIZE",
  "MAIL",
  "MAILPATH",
  "MAILCHECK",
]);

/** What of a job a shell started ahead takes when it comes. */
export type StandbyJob = Pick<
  CommandSpec,
  "command" | "cwd" | "env" | "timeoutMs" | "blockingWaitMs"
>;

/** A shell started ahead of its job; see the module's documentation. */
export interface StandbyShell {
  /** The run's id: the claim token to claim its job with. */
  readonly runId: string;
  /**
   * Runs `job` in this shell; undefined when it cannot (the shell is gone,
   * the job's folder is missing, or a variable of the job is the shell's
   * own): then {@linkcode discard} it and start the job the usual way.
   */
  start(job: StandbyJob): RunningCommand | undefined;
  /** Ends the shell without a job, and removes its cgroup. */
  discard(): Promise<void>;
}

/** `text` as one single-quoted shell word. */
function quoted(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The script that hands `job` to its shell, or undefined where a fresh shell must run it. */
function jobScript(job: StandbyJob): string | undefined {
  const names = Object.keys(job.env);
  if (names.some((name) => !ENV_NAME_PATTERN.test(name) || SHELL_OWN_VARIABLES.has(name))) {
    return undefined;
  }
  if (!isFolder(job.cwd)) return undefined;
  // `cd -P`: PWD as a fresh shell started in the folder finds it; OLDPWD as the worker had it.
  const inherited = workerEnvironment().OLDPWD;
  const lines = [
    `cd -P -- ${quoted(job.cwd)} || exit 2`,
    inherited === undefined ? "unset OLDPWD" : `OLDPWD=${quoted(inherited)}`,
  ];
  if (names.length > 0) {
    lines.push(`export ${names.map((name) => `${name}=${quoted(job.env[name])}`).join(" ")}`);
  }
  lines.push(`__queuectl_command=${quoted(job.command)}`);
  return lines.join("\n") + "\n";
}

const encoder = new TextEncoder();

/**
 * Starts a shell for the run `runId` ahead of its job, in a cgroup of its
 * own under `cgroups` (none if null) and with its exit status to go to
 * `statusFile`; undefined where there is no fast launch path or the shell
 * cannot start (then jobs start the usual way).
 */
export function startStandby(
  prep: { runId: string; cgroups: string | null; statusFile?: string },
): StandbyShell | undefined {
  const { spawner } = libcSpawner();
  if (spawner === null || Deno.build.os !== "linux") return undefined;
  const processes = new RunProcesses(prep.runId, prep.cgroups);
  const stdout = new TailBuffer(OUTPUT_TAIL_BYTES);
  const stderr = new TailBuffer(OUTPUT_TAIL_BYTES);
  let shell: StandbySpawn;
  try {
    shell = spawner.spawnStandby({
      program: SHELL,
      args: ["-c", STANDBY_SCRIPT, "sh", processes.joinFile ?? "", prep.statusFile ?? "/dev/null"],
      cwd: "/",
      env: { ...workerEnvironment(), [RUN_ID_VAR]: prep.runId },
      onStdout: (chunk) => stdout.push(chunk),
      onStderr: (chunk) => stderr.push(chunk),
    });
  } catch {
    void processes.close();
    return undefined;
  }
  processes.started(shell.pid);
  /** Set once the shell has its job, or is being discarded. */
  let taken = false;
  return {
    runId: prep.runId,
    start(job) {
      if (taken) throw new Error("a shell started ahead runs one job");
      const script = jobScript(job);
      // A shell gone since it started cannot take it: discard() reaps it.
      if (script === undefined || shell.exited() || !shell.feed(encoder.encode(script))) {
        return undefined;
      }
      taken = true;
      shell.begin(job.blockingWaitMs ?? 0);
      return followRun(shell, processes, stdout, stderr, job.timeoutMs);
    },
    async discard() {
      if (taken) return;
      taken = true;
      // Its stdin closed (if it is not already), the shell reads no job and leaves.
      shell.begin(0);
      await shell.status;
      await shell.reading;
      await processes.close();
    },
  };
}
