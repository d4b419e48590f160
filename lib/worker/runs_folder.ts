/**
 * The runs folder: the one place for the files a worker process keeps on its
 * own host. Each run's shell writes its exit status there as it exits (one
 * file per claim token), so that a worker that finds the run orphaned can
 * settle it; and each worker process listens there on its wake socket (see
 * wake.ts).
 *
 * Where it is, one rule, per user and per database:
 *
 * - `$XDG_RUNTIME_DIR/queuectl/<hash of the database's real path>` when
 *   `XDG_RUNTIME_DIR` is set (an absolute path): a folder private to the
 *   user and, on systemd hosts, on tmpfs, which the status files and
 *   sockets suit, and whose socket paths stay short;
 * - else `<the database's real path>.runs`, beside the database.
 *
 * A PostgreSQL queue has no file on this host: its folder is named by the
 * hash of its URL as messages show it (no password; the schema included),
 * under `$XDG_RUNTIME_DIR/queuectl/` when set, else under
 * `$XDG_STATE_HOME/queuectl/runs/` (`~/.local/state/queuectl/runs/`). Each
 * host has its own: a run's exit status is read only on the host that ran
 * it. Workers of one host must name the server the same way (the same URL
 * up to the password) to share it.
 *
 * Every process of one database and user must find the same folder (a
 * recovering worker reads the status file that another worker's run left),
 * so the rule reads nothing but the location and the environment: two
 * workers with different `XDG_RUNTIME_DIR` use different folders, and
 * `worker start` says so ({@linkcode foreignRunsFolders}). The real path
 * makes two names of one file (through a symbolic link) one folder.
 *
 * @module
 */

import { type DbLocation, describeLocation } from "../db_location.ts";
import type { WorkerRecord } from "../store/store.ts";

/** The runs folder, or why there is none ({@linkcode prepareRunsFolder}). */
export type RunsFolder = { dir: string } | { dir: null; problem: string | null };

/** Reads an environment variable: this process's, or another's ({@linkcode foreignRunsFolders}). */
export type EnvReader = (name: string) => string | undefined;

const fromThisProcess: EnvReader = (name) => Deno.env.get(name);

/** The user's private runtime folder by `env`, or undefined when unset, empty or relative. */
function runtimeDir(env: EnvReader): string | undefined {
  const dir = env("XDG_RUNTIME_DIR");
  // The XDG specification: a relative path is invalid and is ignored.
  return dir !== undefined && dir.startsWith("/") ? dir.replace(/(.)\/+$/, "$1") : undefined;
}

/**
 * The runs folder of the database at `location` by the rule in the module
 * doc, with `env` as the environment (this process's by default); null for
 * a database that is no file on this host, or on Windows, where runs leave
 * no exit status.
 */
export function runsFolderOf(
  location: DbLocation,
  env: EnvReader = fromThisProcess,
): string | null {
  if (Deno.build.os === "windows") return null;
  const runtime = runtimeDir(env);
  if (location.kind === "postgres") {
    const name = shortHash(describeLocation(location));
    if (runtime !== undefined) return `${runtime}/queuectl/${name}`;
    const state = env("XDG_STATE_HOME");
    const home = env("HOME");
    const base = state !== undefined && state.startsWith("/")
      ? state
      : home !== undefined && home.startsWith("/")
      ? `${home}/.local/state`
      : undefined;
    return base === undefined ? null : `${base}/queuectl/runs/${name}`;
  }
  const path = realPath(location.path);
  return runtime === undefined ? `${path}.runs` : `${runtime}/queuectl/${shortHash(path)}`;
}

/** `path` with its symbolic links resolved: the file's, else its folder's, else as given. */
function realPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    // No such file yet: its folder may still be reached through a link.
  }
  const slash = path.lastIndexOf("/");
  try {
    return `${Deno.realPathSync(path.slice(0, slash) || "/")}${path.slice(slash)}`;
  } catch {
    return path;
  }
}

/**
 * 16 hex digits of the 64-bit FNV-1a hash of `text`'s UTF-8: short, so that
 * socket paths fit, and computed at once, with no import. Two databases
 * whose hashes met would only share a folder: status files are named by
 * random claim tokens and sockets by process.
 */
function shortHash(text: string): string {
  const prime = 0x100000001b3n;
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    hash = BigInt.asUintN(64, (hash ^ BigInt(byte)) * prime);
  }
  return hash.toString(16).padStart(16, "0");
}

/**
 * Makes the runs folder of the database at `location` if missing, and
 * checks that only this user can reach it: a folder that others may write to
 * is closed to them, and one that is not this user's own (or not a folder)
 * is not used, since whoever controls it could forge exit statuses or
 * intercept pokes. Under `XDG_RUNTIME_DIR`, that folder must be this user's
 * too, and `queuectl/` in it is held to the same rules.
 */
export function prepareRunsFolder(
  location: DbLocation,
  env: EnvReader = fromThisProcess,
): RunsFolder {
  const dir = runsFolderOf(location, env);
  if (dir === null) return { dir: null, problem: null };
  const runtime = runtimeDir(env);
  try {
    if (runtime !== undefined) {
      const info = Deno.statSync(runtime);
      if (info.uid !== Deno.uid()) {
        return {
          dir: null,
          problem: `XDG_RUNTIME_DIR ${runtime} belongs to another user (uid ${info.uid})`,
        };
      }
    }
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const made = runtime === undefined ? [dir] : [`${runtime}/queuectl`, dir];
    for (const folder of made) {
      const info = Deno.statSync(folder);
      if (!info.isDirectory) return { dir: null, problem: `${folder} is not a folder` };
      if (info.uid !== Deno.uid()) {
        return { dir: null, problem: `${folder} belongs to another user (uid ${info.uid})` };
      }
      if (((info.mode ?? 0) & 0o077) !== 0) Deno.chmodSync(folder, 0o700);
    }
    return { dir };
  } catch (error) {
    return { dir: null, problem: `cannot use ${dir}: ${(error as Error).message}` };
  }
}

/**
 * Makes the runs folder again, by {@linkcode prepareRunsFolder}'s rules, if
 * it has gone while a worker runs (removed by hand, or by a cleaner of old
 * files): without it, runs leave no exit status. Returns undefined while
 * the folder is there, which costs one stat: cheap enough for a heartbeat.
 */
export function restoreRunsFolder(
  location: DbLocation,
  dir: string,
  env: EnvReader = fromThisProcess,
): RunsFolder | undefined {
  try {
    Deno.lstatSync(dir);
    return undefined;
  } catch {
    return prepareRunsFolder(location, env);
  }
}

/** Where the run of the claim `claimToken` leaves its exit status. */
export function statusFilePath(runsDir: string, claimToken: string): string {
  return `${runsDir}/${claimToken}`;
}

/** The exit status a run left at `path`, if it finished and wrote one. */
export function readExitStatus(path: string): number | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return undefined; // The run never finished: its worker died first, or it was killed.
  }
  return /^\d+\n?$/.test(text) ? Number(text) : undefined;
}

/**
 * Removes a status file that has served; through `unlink` when given (a
 * worker's C library: no stat first, no exception when it is gone).
 */
export function removeStatusFile(path: string, unlink?: (path: string) => boolean): void {
  if (unlink !== undefined) {
    unlink(path);
    return;
  }
  try {
    Deno.removeSync(path);
  } catch {
    // Already removed by another rescuer, or never written.
  }
}

/** What names a worker process's wake socket. */
export type WakeIdentity = Pick<WorkerRecord, "pid" | "startedAt">;

const WAKE_SUFFIX = ".wake";

/**
 * Where a worker process listens for pokes. The name is short on purpose:
 * a socket's whole path must fit in about 107 bytes (the runs folder under
 * `XDG_RUNTIME_DIR` keeps it well within that).
 */
export function wakeSocketPath(runsDir: string, worker: WakeIdentity): string {
  return `${runsDir}/${worker.pid}-${worker.startedAt.toString(36)}${WAKE_SUFFIX}`;
}

/** The paths of the wake sockets (live or not) in `runsDir`; none if it cannot be read. */
export function listWakeSockets(runsDir: string): string[] {
  try {
    return [...Deno.readDirSync(runsDir)]
      .filter((entry) => entry.name.endsWith(WAKE_SUFFIX))
      .map((entry) => `${runsDir}/${entry.name}`);
  } catch {
    return [];
  }
}

/**
 * The worker processes among `workers` that run on this host as this user
 * but keep the runs folder of the database at `location` somewhere other
 * than `runsDir`, because they started with another `XDG_RUNTIME_DIR` (one
 * under systemd, one from a login shell, say): each then misses the status
 * files the other's runs leave. Judged from their environment as
 * `/proc/<pid>/environ` shows it; a process whose environment cannot be read
 * is left out. Linux only.
 */
export function foreignRunsFolders(
  location: DbLocation,
  runsDir: string,
  workers: readonly Pick<WorkerRecord, "pid">[],
): { pid: number; dir: string | null }[] {
  const foreign: { pid: number; dir: string | null }[] = [];
  for (const { pid } of workers) {
    let environ: string;
    try {
      if (Deno.statSync(`/proc/${pid}`).uid !== Deno.uid()) continue;
      environ = Deno.readTextFileSync(`/proc/${pid}/environ`);
    } catch {
      continue;
    }
    const vars = new Map<string, string>();
    for (const entry of environ.split("\0")) {
      const equals = entry.indexOf("=");
      if (equals > 0) vars.set(entry.slice(0, equals), entry.slice(equals + 1));
    }
    const dir = runsFolderOf(location, (name) => vars.get(name));
    if (dir !== runsDir) foreign.push({ pid, dir });
  }
  return foreign;
}

/**
 * Why a run could not leave its exit status in runs folder `dir` now (no
 * room or no inode left, a read-only file system), or null when it could:
 * a file like a status file is written there and removed again. The run's
 * shell never says (its errors are kept out of the job's output), and a
 * job that `exec`s leaves no status anyway, so a missing status file
 * cannot tell; this costs one small file, cheap enough for a heartbeat.
 */
export function runsFolderUnwritable(dir: string): string | null {
  const check = `${dir}/.write-check-${Deno.pid}`;
  try {
    Deno.writeTextFileSync(check, "0\n");
    return null;
  } catch (error) {
    return (error as Error).message;
  } finally {
    try {
      Deno.removeSync(check);
    } catch {
      // Never made.
    }
  }
}
