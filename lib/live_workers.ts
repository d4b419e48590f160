/**
 * The worker registry as commands see it: which registered worker processes
 * are live, and, for `worker stop`, clearing away those that are gone.
 *
 * Commands (`status`, `top`, `wait`, `worker stop`) come here, not to the
 * worker's internals. Who is dead is decided by the store, by lease
 * (`Store.rescue`), with local evidence from lib/worker/rescuer.ts; a
 * command only shows liveness (by local evidence, else the heartbeat's age)
 * and removes workers whose process is gone, never one for its silence.
 *
 * @module
 */

import type { DbLocation } from "./db_location.ts";
import type { Store, WorkerRecord } from "./store/store.ts";
import { isWorkerAlive, localEvidence, pruneDeadWorkers } from "./worker/rescuer.ts";
import { runsFolderOf } from "./worker/runs_folder.ts";

/**
 * The registered worker processes shown as alive at `now`: by their process
 * on this host, else by the age of their heartbeat against the queue's lease.
 * Reads only: silence alone never removes a worker.
 */
export async function listLiveWorkers(store: Store, now: number): Promise<WorkerRecord[]> {
  const [workers, { leaseTimeoutMs }] = await Promise.all([store.listWorkers(), store.getConfig()]);
  return workers.filter((worker) => isWorkerAlive(worker, now, leaseTimeoutMs));
}

/**
 * Removes the records of worker processes that are gone by the evidence of
 * this host (their process has exited), and the wake sockets that no live
 * one serves, in the runs folder of the database at `location`; returns the
 * workers shown as alive, as {@linkcode listLiveWorkers} does.
 */
export function clearGoneWorkers(store: Store, location: DbLocation): Promise<WorkerRecord[]> {
  return pruneDeadWorkers(store, runsFolderOf(location));
}

/**
 * Whether `worker`'s process still runs on this host (same pid, same start
 * time); false for a process of another host, which this one cannot see.
 * A worker removes its record as its last write, then closes its
 * connections and exits: `worker stop` waits for that too.
 */
export function runsHere(worker: WorkerRecord): boolean {
  return localEvidence(worker) === "alive";
}
