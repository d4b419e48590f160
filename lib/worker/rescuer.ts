/**
 * The rescuer: gives the jobs that dead worker processes left `processing`
 * back to the queue. The attempt counts (it was started), so a job whose
 * runs keep killing their worker still ends in the DLQ.
 *
 * Who is dead is decided by the store, by lease, on the database's clock
 * ({@linkcode Store.rescue}, lib/store/sqlite_leases.ts): a worker process
 * whose heartbeat is older than the lease, with stalls of the database left
 * out, judged only by the leader while its own heartbeats commit; no judge
 * judges itself, and a worker that beat since it was judged stays. So hosts
 * whose clocks disagree still agree on who is dead.
 *
 * What only this host can know is local evidence ({@linkcode localEvidence}),
 * used for worker processes of this host alone: one whose pid runs with the
 * start time it registered is alive whatever its heartbeat says (a lock, a
 * bulk enqueue, a slow disk or a stopped process delay heartbeats, but only
 * the end of the process ends a worker), and its lease never expires; one
 * whose pid is gone (or a zombie), or now belongs to a later process, is dead
 * at once, without waiting for its lease. Every worker process applies it to
 * its own host's workers; the lease is judged by the leader alone.
 *
 * The processes of a lost run and its exit-status file are on the host that
 * ran it: this host reads the statuses of its own runs only, and kills by
 * claim token on this machine only; a run of another host whose worker's
 * lease expired is failed as "worker lost" (by the leader, which removed it).
 *
 * @module
 */

import { DEFAULT_CONFIG } from "../config.ts";
import type { ClaimedJob } from "../job.ts";
import type { Orphan, OrphanSettlement, Store, WorkerRecord } from "../store/store.ts";
import { killLostRun } from "./containment.ts";
import { failureOutcome, NO_OUTPUT } from "./outcome.ts";
import { hostname, probeProcess } from "./process_info.ts";
import { readExitStatus, removeStatusFile, statusFilePath } from "./runs_folder.ts";
import { removeStrayWakeSockets } from "./wake.ts";

export { HEARTBEAT_MS } from "../store/rules.ts";

/** What local evidence says of a worker process. */
export type Verdict = "alive" | "dead" | "unknown";

/**
 * What this host's processes say of a worker process: alive while its pid
 * runs with the start time it registered; dead once its pid is gone (or a
 * zombie) or belongs to a later process; unknown on another host, or with
 * no start time or nothing in /proc (its lease then tells).
 */
export function localEvidence(worker: WorkerRecord): Verdict {
  if (worker.host !== hostname()) return "unknown";
  const probe = probeProcess(worker.pid);
  if (probe.state === "gone") return "dead";
  if (probe.state === "running" && worker.procStart !== null) {
    return probe.start === worker.procStart ? "alive" : "dead";
  }
  return "unknown";
}

/**
 * Whether a worker process is to be shown as alive at `now` (for `status`,
 * `top`, `worker stop`): by local evidence on this host, else by the
 * wall-clock age of its heartbeat. Shows only: only the store removes a
 * worker for its silence ({@linkcode rescueOrphanedJobs}).
 */
export function isWorkerAlive(
  worker: WorkerRecord,
  now: number,
  leaseTimeoutMs = DEFAULT_CONFIG.leaseTimeoutMs,
): boolean {
  const local = localEvidence(worker);
  if (local !== "unknown") return local === "alive";
  return now - worker.heartbeatAt <= leaseTimeoutMs;
}

/**
 * For commands (`status`, `worker stop`): drops registry rows of worker
 * processes of this host that are gone by local evidence, and removes the
 * wake sockets in `runsDir` that no live worker process serves; returns the
 * workers shown as alive ({@linkcode isWorkerAlive}). Silence removes no
 * worker here: it may be a lock.
 */
export async function pruneDeadWorkers(
  store: Store,
  runsDir: string | null,
): Promise<WorkerRecord[]> {
  const [workers, { leaseTimeoutMs }] = await Promise.all([store.listWorkers(), store.getConfig()]);
  const dead = workers.filter((w) => localEvidence(w) === "dead");
  const removed = dead.length > 0 ? await store.pruneWorkers(dead) : [];
  const now = store.now();
  const live = workers.filter((w) =>
    !removed.includes(w.id) && isWorkerAlive(w, now, leaseTimeoutMs)
  );
  if (runsDir !== null) await removeStrayWakeSockets(runsDir, live);
  return live;
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
 * One round of recovery by the worker process `selfId`: tells the store
 * which workers of this host local evidence finds dead or alive, lets it
 * remove the dead ones (and, if this process leads, those whose lease
 * expired) in one write, then settles the orphaned runs it hands back in
 * one more: a run of this host (or of a host no longer known) from the exit
 * status it left in `runsDir` once its processes are killed, else as failed
 * ("worker lost"), following the retry rule; a run of another host as
 * failed. Each settlement is fenced by the job's claim token, so a worker
 * that was only slow cannot be overruled twice, and its own late outcome is
 * discarded. Returns the rescued jobs.
 */
export async function rescueOrphanedJobs(
  store: Store,
  runsDir: string | null,
  selfId: string,
): Promise<ClaimedJob[]> {
  const deadWorkers: WorkerRecord[] = [];
  const aliveWorkers: string[] = [];
  for (const worker of await store.listWorkers()) {
    if (worker.id === selfId) continue;
    const local = localEvidence(worker);
    if (local === "dead") deadWorkers.push(worker);
    if (local === "alive") aliveWorkers.push(worker.id);
  }
  const { orphans } = await store.rescue({ judge: selfId, deadWorkers, aliveWorkers });
  if (runsDir !== null) await pruneStraySockets(store, runsDir);
  if (orphans.length === 0) return [];
  const config = await store.getConfig();
  const now = store.now();
  const here = hostname();
  const settlements: OrphanSettlement[] = [];
  const statusFiles: string[] = [];
  for (const job of orphans) {
    // Host unknown: its worker was removed by another rescuer, who knows the
    // host and may be settling it from its exit status right now. A run of
    // this host is told by its worker id; one of another host is left to
    // that rescuer for a grace period, and settled as lost only after it.
    const ours = job.host === here ||
      (job.host === null && job.workerId !== null &&
        job.workerId.startsWith(`${here}-`.replace(/[^A-Za-z0-9._:-]/g, "_")));
    if (!ours && job.host === null && !graceOver(job.claimToken, now)) continue;
    const local = ours;
    // The lost worker's run may still be going: end it before the retry can
    // start. Looked for by claim token on this machine only, so a run of
    // another host is found only when that host shares this machine's
    // processes (a container, a UTS namespace); elsewhere it is out of reach.
    await killOrphanedRun(job);
    // A run that finished before anyone noticed its worker was gone left its
    // status behind: settle the job from it rather than run it again.
    const path = local && runsDir !== null ? statusFilePath(runsDir, job.claimToken) : null;
    if (path !== null) statusFiles.push(path);
    settlements.push({
      job,
      outcome: outcomeOf(job, path === null ? undefined : readExitStatus(path), config, now),
    });
  }
  if (settlements.length === 0) return [];
  const rescued = await store.settleOrphans(settlements);
  // Removed only now that the jobs are settled (here or by a faster rescuer,
  // who read the same file): removed earlier, a rescuer that then failed to
  // commit would lose the status, and the finished run would run again.
  for (const path of statusFiles) removeStatusFile(path);
  return rescued;
}

/** How long a run of another host, whose host is no longer known, is left to the rescuer that knows it, in ms. */
const FOREIGN_GRACE_MS = 10_000;
/** When each such run was first seen orphaned by this process, by claim token. */
const foreignSeen = new Map<string, number>();

/** Whether the grace period of a run of an unknown host is over, counting from its first sight. */
function graceOver(claimToken: string, now: number): boolean {
  for (const [token, seen] of foreignSeen) {
    if (now - seen > 10 * FOREIGN_GRACE_MS) foreignSeen.delete(token);
  }
  const seen = foreignSeen.get(claimToken);
  if (seen === undefined) foreignSeen.set(claimToken, now);
  return seen !== undefined && now - seen >= FOREIGN_GRACE_MS;
}

/** The outcome of an orphaned run from the exit status it left (undefined: none). */
function outcomeOf(
  job: Orphan,
  status: number | undefined,
  config: Parameters<typeof failureOutcome>[2],
  now: number,
): OrphanSettlement["outcome"] {
  if (status === 0) {
    return { state: "completed", exitCode: 0, error: null, finishedAt: now, output: NO_OUTPUT };
  }
  return failureOutcome(
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
}

/** Removes the wake sockets in `runsDir` that no worker process shown as alive serves. */
async function pruneStraySockets(store: Store, runsDir: string): Promise<void> {
  const [workers, { leaseTimeoutMs }] = await Promise.all([store.listWorkers(), store.getConfig()]);
  const now = store.now();
  await removeStrayWakeSockets(
    runsDir,
    workers.filter((w) => isWorkerAlive(w, now, leaseTimeoutMs)),
  );
}
