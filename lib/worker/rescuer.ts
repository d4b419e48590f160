/**
 * The rescuer: tells live worker processes from dead ones, and gives the
 * jobs that dead ones left `processing` back to the queue. The attempt
 * counts (it was started), so a job whose runs keep killing their worker
 * still ends in the DLQ.
 *
 * @module
 */

import { DEFAULT_CONFIG } from "../config.ts";
import type { ClaimedJob } from "../job.ts";
import type { AttemptOutcome, Store, WorkerRecord } from "../store/store.ts";
import { killLostRun } from "./containment.ts";
import { failureOutcome, NO_OUTPUT } from "./outcome.ts";
import { hostname, processStartTime } from "./process_info.ts";
import { removeStrayWakeSockets, runsDirOf } from "./wake.ts";

/**
 * Whether the process of a worker record is alive, as far as this host can
 * tell: a heartbeat within the lease timeout, and on the same Linux host a
 * process with the same pid and start time.
 */
export function isWorkerAlive(
  worker: WorkerRecord,
  now: number,
  leaseTimeoutMs = DEFAULT_CONFIG.leaseTimeoutMs,
): boolean {
  if (now - worker.heartbeatAt > leaseTimeoutMs) return false;
  if (worker.host !== hostname() || Deno.build.os !== "linux") return true;
  const started = processStartTime(worker.pid);
  if (started === null) return false;
  return worker.procStart === null || worker.procStart === started;
}

/**
 * Drops registry rows of worker processes that are gone, and removes the
 * wake sockets in `runsDir` that no live worker process serves; returns the
 * live ones.
 */
export async function pruneDeadWorkers(
  store: Store,
  runsDir: string | null,
  now = Date.now(),
): Promise<WorkerRecord[]> {
  const [workers, { leaseTimeoutMs }] = await Promise.all([store.listWorkers(), store.getConfig()]);
  const dead = workers.filter((w) => !isWorkerAlive(w, now, leaseTimeoutMs)).map((w) => w.id);
  if (dead.length > 0) await store.removeWorkers(dead);
  const live = workers.filter((w) => !dead.includes(w.id));
  if (runsDir !== null) await removeStrayWakeSockets(runsDir, live);
  return live;
}

/** The runs folder, or why there is none ({@linkcode prepareRunsDir}). */
export type RunsDir = { dir: string } | { dir: null; problem: string | null };

/**
 * The folder, beside the database, where each run's shell writes its exit
 * status as it exits (one file per claim token) and each worker process
 * keeps its wake socket. Private to the owner, like the database: a folder
 * that others may write to is closed to them, and one that is not this
 * user's own (or not a folder) is not used, since whoever controls it could
 * forge exit statuses or intercept pokes. No folder on Windows, where runs
 * leave no status.
 */
export function prepareRunsDir(dbPath: string): RunsDir {
  if (Deno.build.os === "windows") return { dir: null, problem: null };
  const dir = runsDirOf(dbPath);
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const info = Deno.statSync(dir);
    if (!info.isDirectory) return { dir: null, problem: `${dir} is not a folder` };
    if (info.uid !== Deno.uid()) {
      return { dir: null, problem: `${dir} belongs to another user (uid ${info.uid})` };
    }
    if (((info.mode ?? 0) & 0o077) !== 0) Deno.chmodSync(dir, 0o700);
    return { dir };
  } catch (error) {
    return { dir: null, problem: `cannot use ${dir}: ${(error as Error).message}` };
  }
}

/** Where the run of a claim leaves its exit status, or null where runs leave none. */
function statusPath(runsDir: string | null, job: ClaimedJob): string | null {
  return runsDir === null ? null : `${runsDir}/${job.claimToken}`;
}

/** The exit status a lost run left behind, if it finished. */
function readRecordedStatus(path: string | null): number | undefined {
  if (path === null) return undefined;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return undefined; // The run never finished: its worker died first, or it was killed.
  }
  return /^\d+\n?$/.test(text) ? Number(text) : undefined;
}

/**
 * Kills, on this host, every process of a run whose worker is gone, found
 * by what only that run has: its claim token, which names its cgroup and
 * is in its processes' environment (see containment.ts). A job's id and
 * attempt would not do: a job of another database may have the same. Runs
 * on other hosts are out of reach. Returns the pids killed.
 */
export function killOrphanedRun(job: Pick<ClaimedJob, "claimToken">): Promise<number[]> {
  return killLostRun(job.claimToken);
}

/**
 * Prunes dead worker processes, then settles the jobs they left
 * `processing`: from the exit status a finished run left in `runsDir`, or
 * else as failed ("worker lost"), following the retry rule. Each update is
 * fenced by the job's claim token, so a worker that was only slow cannot be
 * overruled twice, and its own late outcome is discarded. Returns the
 * rescued jobs.
 */
export async function rescueOrphanedJobs(
  store: Store,
  runsDir: string | null,
  now = Date.now(),
): Promise<ClaimedJob[]> {
  await pruneDeadWorkers(store, runsDir, now);
  const orphans = await store.listOrphanedJobs();
  if (orphans.length === 0) return [];
  const config = await store.getConfig();
  const rescued: ClaimedJob[] = [];
  for (const job of orphans) {
    // The lost worker's run may still be going: end it before the retry can start.
    await killOrphanedRun(job);
    // A run that finished before anyone noticed its worker was gone left its
    // status behind: settle the job from it rather than run it again.
    const path = statusPath(runsDir, job);
    const status = readRecordedStatus(path);
    const outcome: AttemptOutcome = status === 0
      ? { state: "completed", exitCode: 0, error: null, finishedAt: now, output: NO_OUTPUT }
      : failureOutcome(
        job,
        {
          exitCode: status ?? null,
          error: status === undefined
            ? "worker lost: its process exited while the job ran"
            : `exited with code ${status} (recorded after its worker was lost)`,
          output: NO_OUTPUT,
        },
        config,
        now,
      );
    if (await store.finishAttempt(job, outcome)) rescued.push(job);
    // Removed only now that the job is settled (here or by a faster rescuer,
    // who read the same file): removed earlier, a rescuer that then failed
    // to commit would lose the status, and the finished run would run again.
    if (path !== null) {
      try {
        Deno.removeSync(path);
      } catch {
        // Already removed by another rescuer, or never written.
      }
    }
  }
  return rescued;
}
