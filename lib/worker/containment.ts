/**
 * Finding, and ending, every process a run started. A run's processes are
 * found three ways on Linux, each catching what the one before may miss:
 *
 * - its own cgroup (v2), where the system allows one: the run's shell moves
 *   itself into it before it runs the command, so that every process the run
 *   starts is inside, whatever session, group or parent it takes; writing
 *   `cgroup.kill` ends them all at once;
 * - its process group, and every descendant of its shell while the shell
 *   lives (parent links in /proc);
 * - the variable {@linkcode RUN_ID_VAR} (the claim token) that every process
 *   of the run inherits: found in /proc even after a process left the group
 *   and lost its parent, unless it cleared its environment.
 *
 * Elsewhere only the process group is reached (on Windows, only the shell).
 *
 * Longer than most modules on purpose: the three ways of finding a run's
 * processes and the order in which they are signalled are one decision,
 * best read in one place.
 *
 * @module
 */

import type { QuietCalls } from "./libc_spawn.ts";

/** The variable that names the run (its claim token) in the environment of every job process. */
export const RUN_ID_VAR = "QUEUECTL_RUN_ID";

/** Set to anything but the empty string, it stops workers from giving runs cgroups. */
export const NO_CGROUPS_VAR = "QUEUECTL_NO_CGROUPS";

/** The folder, in the worker process's own cgroup, that holds one cgroup per run. */
const RUN_CGROUPS_NAME = "queuectl";

/** How long to wait for the processes of a killed cgroup to be gone before removing it, in ms. */
const CGROUP_EMPTY_WAIT_MS = 2_000;

/** One line of /proc/PID/stat, the fields used here. */
interface ProcessEntry {
  pid: number;
  ppid: number;
  pgrp: number;
  /** Clock ticks since boot: with the pid it names one process for good. */
  start: string;
  zombie: boolean;
}

function readProcess(pid: number): ProcessEntry | null {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return null; // Gone.
  }
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    pid,
    ppid: Number(fields[1]),
    pgrp: Number(fields[2]),
    start: fields[19],
    zombie: fields[0] === "Z" || fields[0] === "X",
  };
}

/** The pids in /proc. */
function allPids(): number[] {
  const pids: number[] = [];
  try {
    for (const entry of Deno.readDirSync("/proc")) {
      const pid = Number(entry.name);
      if (Number.isInteger(pid) && pid > 0) pids.push(pid);
    }
  } catch {
    // No /proc: nothing to find.
  }
  return pids;
}

/** Every live process on this host, zombies left out. */
function processTable(): ProcessEntry[] {
  return allPids().map(readProcess).filter((p): p is ProcessEntry => p !== null && !p.zombie);
}

/** The processes, other than this one, whose environment names run `runId`. */
function markedProcesses(runId: string): number[] {
  const marker = `${RUN_ID_VAR}=${runId}`;
  const found: number[] = [];
  for (const pid of allPids()) {
    if (pid === Deno.pid) continue;
    let environ: string;
    try {
      environ = Deno.readTextFileSync(`/proc/${pid}/environ`);
    } catch {
      continue; // Gone, or not ours to read.
    }
    if (environ.split("\0").includes(marker)) found.push(pid);
  }
  return found;
}

/**
 * `roots`, their descendants, and the members of their process groups: what
 * a run's processes reach on this host without a cgroup, each listed before
 * its descendants. This process is never among them.
 */
function reachableFrom(roots: number[], table: ProcessEntry[]): ProcessEntry[] {
  const byPid = new Map(table.map((p) => [p.pid, p]));
  const children = new Map<number, ProcessEntry[]>();
  for (const p of table) {
    const siblings = children.get(p.ppid);
    if (siblings) siblings.push(p);
    else children.set(p.ppid, [p]);
  }
  const found = new Map<number, ProcessEntry>();
  const queue = roots.map((pid) => byPid.get(pid)).filter((p) => p !== undefined);
  const groups = new Set(queue.map((p) => p.pgrp));
  for (const p of table) if (groups.has(p.pgrp)) queue.push(p);
  while (queue.length > 0) {
    const p = queue.pop()!;
    if (found.has(p.pid) || p.pid === Deno.pid) continue;
    found.set(p.pid, p);
    queue.push(...(children.get(p.pid) ?? []));
  }
  // Parents before their children: a parent that traps SIGTERM to end its
  // children must hear it first, not be woken by their deaths and exit
  // before its trap runs (a process group gets one signal all at once).
  const depth = (p: ProcessEntry) => {
    let levels = 0;
    for (let up = found.get(p.ppid); up !== undefined && levels < found.size; levels++) {
      up = found.get(up.ppid);
    }
    return levels;
  };
  return [...found.values()].map((p) => ({ p, depth: depth(p) }))
    .sort((a, b) => a.depth - b.depth).map(({ p }) => p);
}

/** `\040`-style escapes of /proc/self/mountinfo, undone. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
}

let cgroupMount: { root: string; path: string } | null | undefined;

/** Where the cgroup v2 hierarchy is mounted (and which of its cgroups the mount shows), if it is. */
function cgroup2Mount(): { root: string; path: string } | null {
  if (cgroupMount !== undefined) return cgroupMount;
  cgroupMount = null;
  try {
    for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
      const [mount, fs] = line.split(" - ");
      if (fs?.split(" ")[0] !== "cgroup2") continue;
      const fields = mount.split(" ");
      cgroupMount = { root: unescapeMountPath(fields[3]), path: unescapeMountPath(fields[4]) };
      break;
    }
  } catch {
    // No /proc: no cgroups.
  }
  return cgroupMount;
}

/**
 * The folder of the cgroup v2 that `/proc/PID/cgroup` text names (its `0::`
 * line), or null when there is none or it is outside the mounted part.
 */
function cgroupFolderIn(procCgroup: string): string | null {
  const mount = cgroup2Mount();
  const line = procCgroup.split("\n").find((l) => l.startsWith("0::"));
  if (mount === null || line === undefined) return null;
  const path = line.slice(3);
  const root = mount.root === "/" ? "" : mount.root;
  if (path !== root && !path.startsWith(`${root}/`)) return null;
  const inMount = path.slice(root.length);
  return inMount === "/" || inMount === "" ? mount.path : `${mount.path}${inMount}`;
}

function cgroupFolderOf(pid: number | "self"): string | null {
  try {
    return cgroupFolderIn(Deno.readTextFileSync(`/proc/${pid}/cgroup`));
  } catch {
    return null;
  }
}

/**
 * Where worker processes in this process's cgroup make their runs' cgroups
 * (whether or not they can), or null where there is no cgroup v2. A
 * rescuer in the same cgroup as the lost worker finds the lost run's cgroup
 * here by its name, the claim token; one elsewhere finds it through the
 * run's marked processes.
 */
export function runCgroupsFolder(): string | null {
  if (Deno.build.os !== "linux") return null;
  const own = cgroupFolderOf("self");
  return own === null ? null : `${own}/${RUN_CGROUPS_NAME}`;
}

/** The probe cgroup of {@linkcode probeRunCgroups} is this followed by the worker's pid. */
const PROBE_PREFIX = "probe-";

/**
 * How old an empty run cgroup must be before a starting worker removes it,
 * in ms: one made a moment ago may still wait for its shell to join.
 */
const STALE_RUN_CGROUP_MS = 60_000;

/**
 * Removes the cgroups in `folder` that nothing uses. Probe cgroups: those
 * of processes that are gone, and one of this process's own pid (a worker
 * killed while it probed leaves its probe behind; pids are reused, and a
 * later worker with the same pid would take the probe it cannot make for
 * a system without cgroups); probes of live processes are left alone, they
 * may be probing now. Run cgroups that have been empty for a while: a
 * worker killed while its shell started ahead waited for a job leaves that
 * run's cgroup behind, and no recovery names a run that never had a job.
 */
function removeStaleCgroups(folder: string): void {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(folder)];
  } catch {
    return; // Its own probe will fail to be made, and say why.
  }
  for (const entry of entries) {
    if (!entry.isDirectory) continue;
    if (!entry.name.startsWith(PROBE_PREFIX)) {
      const cgroup = `${folder}/${entry.name}`;
      if (!populated(cgroup) && olderThan(cgroup, STALE_RUN_CGROUP_MS)) removeCgroup(cgroup);
      continue;
    }
    const pid = Number(entry.name.slice(PROBE_PREFIX.length));
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const owner = readProcess(pid);
    if (pid === Deno.pid || owner === null || owner.zombie) removeCgroup(`${folder}/${entry.name}`);
  }
}

/** Whether runs can have cgroups here: the folder that holds them, or why not. */
export type CgroupProbe = { folder: string; problem: null } | { folder: null; problem: string };

/**
 * Finds out, once per worker process, whether each run can have a cgroup
 * of its own: the folder for them must be made, a cgroup in it must offer
 * `cgroup.kill` (Linux 5.14 and later), and a shell must be allowed to move
 * itself into it (a user may only move processes between cgroups delegated
 * to them). Turned off by {@linkcode NO_CGROUPS_VAR}.
 */
export function probeRunCgroups(): CgroupProbe {
  if (Deno.build.os !== "linux") return { folder: null, problem: "not Linux" };
  if ((Deno.env.get(NO_CGROUPS_VAR) ?? "") !== "") {
    return { folder: null, problem: `turned off by ${NO_CGROUPS_VAR}` };
  }
  const folder = runCgroupsFolder();
  if (folder === null) return { folder: null, problem: "no cgroup v2 hierarchy is mounted" };
  const probe = `${folder}/${PROBE_PREFIX}${Deno.pid}`;
  try {
    try {
      Deno.mkdirSync(folder);
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
    removeStaleCgroups(folder);
    Deno.mkdirSync(probe);
  } catch (error) {
    return {
      folder: null,
      problem: `cannot make cgroups in ${folder}: ${(error as Error).message}`,
    };
  }
  try {
    if (!Deno.statSync(`${probe}/cgroup.kill`).isFile) throw new Error();
  } catch {
    removeCgroup(probe);
    return { folder: null, problem: "cgroups have no cgroup.kill (Linux before 5.14)" };
  }
  try {
    const joined = new Deno.Command("sh", {
      args: ["-c", 'echo $$ > "$1"', "sh", `${probe}/cgroup.procs`],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).outputSync();
    if (!joined.success) {
      return { folder: null, problem: `a process may not move itself into ${folder}` };
    }
    return { folder, problem: null };
  } catch (error) {
    return { folder: null, problem: `cannot start sh: ${(error as Error).message}` };
  } finally {
    removeCgroup(probe);
  }
}

/** Whether `path` was last changed more than `ms` ago (false if it cannot tell). */
function olderThan(path: string, ms: number): boolean {
  try {
    const changed = Deno.statSync(path).mtime;
    return changed !== null && Date.now() - changed.getTime() > ms;
  } catch {
    return false;
  }
}

/** Whether any process is in cgroup `folder` or the cgroups below it. */
function populated(folder: string): boolean {
  try {
    return /^populated 1$/m.test(Deno.readTextFileSync(`${folder}/cgroup.events`));
  } catch {
    return false; // Removed.
  }
}

/** The processes in cgroup `folder` and the cgroups below it. */
function cgroupMembers(folder: string): number[] {
  const pids: number[] = [];
  try {
    for (const line of Deno.readTextFileSync(`${folder}/cgroup.procs`).split("\n")) {
      if (line !== "") pids.push(Number(line));
    }
    for (const entry of Deno.readDirSync(folder)) {
      if (entry.isDirectory) pids.push(...cgroupMembers(`${folder}/${entry.name}`));
    }
  } catch {
    // Removed meanwhile.
  }
  return pids;
}

/** SIGKILLs every process in cgroup `folder` and below. */
function killCgroup(folder: string): void {
  try {
    Deno.writeTextFileSync(`${folder}/cgroup.kill`, "1");
  } catch {
    // Removed already.
  }
}

/** The C library's calls, once the executor has it loaded; else Deno's. */
let quiet: QuietCalls | null = null;

/**
 * Makes this module signal processes and remove cgroups through `calls`:
 * a run's end does both, and Deno's own calls stat first and build an
 * exception (stack trace and all) for every process already gone.
 */
export function useQuietCalls(calls: QuietCalls): void {
  quiet = calls;
}

/**
 * Removes cgroup `folder` and the cgroups below it (a worker that the run
 * started makes some); whether it is gone. It stays while processes are in it.
 */
function removeCgroup(folder: string): boolean {
  const remove = () => {
    if (quiet !== null) return quiet.rmdir(folder);
    try {
      Deno.removeSync(folder);
      return true;
    } catch (error) {
      return error instanceof Deno.errors.NotFound;
    }
  };
  // Listed only when a plain removal fails: a run's cgroup seldom has cgroups below it.
  if (remove()) return true;
  try {
    for (const entry of Deno.readDirSync(folder)) {
      if (entry.isDirectory) removeCgroup(`${folder}/${entry.name}`);
    }
  } catch {
    // Removed meanwhile.
  }
  return remove();
}

/**
 * Removes cgroup `folder` once its processes are gone; gives up after
 * {@linkcode CGROUP_EMPTY_WAIT_MS} (a process stuck in the kernel), leaving
 * an empty cgroup behind.
 */
async function removeWhenEmpty(folder: string): Promise<void> {
  const deadline = Date.now() + CGROUP_EMPTY_WAIT_MS;
  while (!removeCgroup(folder) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function send(pid: number, signal: Deno.Signal): boolean {
  if (quiet !== null) return quiet.kill(pid, signal);
  try {
    Deno.kill(pid, signal);
    return true;
  } catch {
    return false; // Gone already.
  }
}

/**
 * Whether any live process of group `pgid` is left. SIGCONT is the probe:
 * harmless to a running process. It also reaches zombies, which an init
 * process may take seconds to reap (or, in a container without one, never),
 * so on Linux a group that answers is looked for in /proc, zombies left out.
 */
function groupExists(pgid: number): boolean {
  if (!send(-pgid, "SIGCONT")) return false;
  if (Deno.build.os !== "linux") return true;
  return allPids().some((pid) => {
    const p = readProcess(pid);
    return p !== null && p.pgrp === pgid && !p.zombie;
  });
}

/**
 * The processes of one run, from before its shell starts (its cgroup is
 * made first, for the shell to join) until all of them have ended.
 */
export class RunProcesses {
  #cgroup: string | null = null;
  #shell: number | undefined;
  /** Processes outside the run's group that were signalled one by one, by pid, with their start time. */
  #strays = new Map<number, string>();

  /**
   * @param runId the run's name, {@linkcode RUN_ID_VAR} in its processes' environment
   * @param cgroups where the run gets its cgroup ({@linkcode probeRunCgroups}); none if null
   */
  constructor(readonly runId: string | undefined, cgroups: string | null | undefined) {
    if (Deno.build.os !== "linux" || runId === undefined || !cgroups) return;
    try {
      Deno.mkdirSync(`${cgroups}/${runId}`);
      this.#cgroup = `${cgroups}/${runId}`;
    } catch {
      // Too many cgroups, say: this run does without one.
    }
  }

  /** The file the run's shell writes its pid to, to join the run's cgroup; undefined if it has none. */
  get joinFile(): string | undefined {
    return this.#cgroup === null ? undefined : `${this.#cgroup}/cgroup.procs`;
  }

  /** Records the run's shell, which leads the run's process group. */
  started(pid: number): void {
    this.#shell = pid;
  }

  /**
   * Sends `signal` to every process of the run that can be found: its
   * cgroup, its process group, and on Linux every descendant of the shell
   * (while `shellAlive`: its pid is not anyone else's until it is reaped)
   * and every process marked with the run's id, with their descendants and
   * process groups; each once, a parent before its children. Those outside
   * the run's process group are remembered, so that {@linkcode anyLeft}
   * waits for them too.
   */
  signal(signal: Deno.Signal, shellAlive: boolean): void {
    const shell = this.#shell;
    if (shell === undefined) return;
    if (Deno.build.os === "windows") {
      // No process groups (Deno refuses a negative pid there): the shell alone,
      // and only until it has exited, when its pid may be reused.
      if (shellAlive) send(shell, signal);
      return;
    }
    if (Deno.build.os !== "linux") {
      send(-shell, signal);
      return;
    }
    // Found before anything is signalled: a shell that dies of the signal hands its
    // children to init at once, and one that left the group and cleared its
    // environment would then be found by nothing (without a cgroup).
    const roots = this.runId === undefined ? [] : markedProcesses(this.runId);
    if (shellAlive) roots.push(shell);
    if (this.#cgroup !== null) roots.push(...cgroupMembers(this.#cgroup));
    const reachable = reachableFrom(roots, processTable());
    send(-shell, signal);
    // Each once, parents first; what started since is left to the SIGKILL (cgroup.kill).
    for (const p of reachable) {
      if (p.pgrp !== shell && send(p.pid, signal)) this.#strays.set(p.pid, p.start);
    }
    if (this.#cgroup !== null && signal === "SIGKILL") killCgroup(this.#cgroup);
  }

  /**
   * Once the shell has exited by itself: whether it left processes behind.
   * The run's cgroup, when empty, is removed at once: one system call where
   * nothing was left, the usual case.
   */
  leftBehind(): boolean {
    if (this.#cgroup !== null) {
      if (removeCgroup(this.#cgroup)) this.#cgroup = null;
      else if (populated(this.#cgroup)) return true;
    }
    return this.anyLeft();
  }

  /** Whether any process of the run is still running (zombies do not count). */
  anyLeft(): boolean {
    if (this.#cgroup !== null && populated(this.#cgroup)) return true;
    if (this.#shell !== undefined && Deno.build.os !== "windows" && groupExists(this.#shell)) {
      return true;
    }
    for (const [pid, start] of this.#strays) {
      const p = readProcess(pid);
      if (p !== null && p.start === start && !p.zombie) return true;
      this.#strays.delete(pid);
    }
    return false;
  }

  /** Removes the run's cgroup once its processes are gone. */
  async close(): Promise<void> {
    if (this.#cgroup !== null) await removeWhenEmpty(this.#cgroup);
  }
}

/**
 * SIGKILLs, on this host, every process of run `runId` whose worker is
 * gone: the run's cgroup (in this process's cgroup folder, or wherever a
 * marked process of the run is, if its folder is named by the run), its
 * marked processes, their descendants and process groups. Then removes the
 * cgroup. Returns the pids it found.
 */
export async function killLostRun(runId: string): Promise<number[]> {
  if (Deno.build.os !== "linux") return [];
  const marked = markedProcesses(runId);
  const cgroups = new Set<string>();
  const folder = runCgroupsFolder();
  if (folder !== null && isFolder(`${folder}/${runId}`)) cgroups.add(`${folder}/${runId}`);
  for (const pid of marked) {
    const cgroup = cgroupFolderOf(pid);
    if (cgroup?.endsWith(`/${runId}`)) cgroups.add(cgroup);
  }
  const killed = new Set<number>();
  for (const cgroup of cgroups) {
    for (const pid of cgroupMembers(cgroup)) killed.add(pid);
    killCgroup(cgroup);
  }
  for (const p of reachableFrom(marked, processTable())) {
    if (send(p.pid, "SIGKILL")) killed.add(p.pid);
  }
  for (const cgroup of cgroups) await removeWhenEmpty(cgroup);
  return [...killed];
}

/** Whether `folder` is a folder here (false if it is missing or cannot be seen). */
export function isFolder(folder: string): boolean {
  try {
    return Deno.statSync(folder).isDirectory;
  } catch {
    return false;
  }
}
