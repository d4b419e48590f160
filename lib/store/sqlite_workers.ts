/**
 * The worker registry: `worker start` processes register, heartbeat, are
 * asked to stop, and are removed (cleanly or as dead); jobs left running by
 * a process no longer registered are orphans (recovered in sqlite_leases.ts).
 * Kill requests for running jobs are kept on the job row, for the worker
 * process that runs it to act on.
 *
 * @module
 */

import { JobNotFoundError, QueueError } from "../errors.ts";
import type { Row, SqliteConnection } from "./sqlite_connection.ts";
import { advanceLeaseClock, takeLeadIfFree } from "./sqlite_leases.ts";
import { rowToWorker } from "./rows.ts";
import type { Heartbeat, KillMode, KillRequest, WorkerRecord } from "./store.ts";

/**
 * Registers a `worker start` process (again, if it was); a registration is
 * a beat on the lease clock, and may take the leader lease (sqlite_leases.ts).
 */
export function registerWorker(
  conn: SqliteConnection,
  worker: WorkerRecord,
  leaseTimeoutMs: number,
): Promise<void> {
  return conn.write(() => registerInTransaction(conn, worker, leaseTimeoutMs));
}

function registerInTransaction(
  conn: SqliteConnection,
  worker: WorkerRecord,
  leaseTimeoutMs: number,
): void {
  const insert = conn.sql(
    `INSERT OR REPLACE INTO workers (id, pid, host, threads, started_at, heartbeat_at,
       stop_requested, proc_start, live_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const live = advanceLeaseClock(conn, worker.heartbeatAt);
  insert.run(
    worker.id,
    worker.pid,
    worker.host,
    worker.threads,
    worker.startedAt,
    worker.heartbeatAt,
    worker.stopRequested ? 1 : 0,
    worker.procStart,
    live,
  );
  takeLeadIfFree(conn, worker.id, live, leaseTimeoutMs);
}

/**
 * Records that a worker process is alive, stamped with `clock()` read once
 * the write lock is held (a stamp never moves back); re-registers it if its
 * row went missing. The beat advances the lease clock and may take the
 * leader lease (sqlite_leases.ts).
 */
export function heartbeatWorker(
  conn: SqliteConnection,
  worker: WorkerRecord,
  clock: () => number,
  leaseTimeoutMs: number,
): Promise<Heartbeat> {
  const beat = conn.sql(
    `UPDATE workers SET heartbeat_at = max(heartbeat_at, ?), live_at = max(live_at, ?)
     WHERE id = ?
     RETURNING heartbeat_at, stop_requested`,
  );
  return conn.write((): Heartbeat => {
    const now = clock();
    const live = advanceLeaseClock(conn, now);
    const row = beat.get(now, live, worker.id) as Row | undefined;
    if (row) {
      takeLeadIfFree(conn, worker.id, live, leaseTimeoutMs);
      return { beatAt: row.heartbeat_at as number, stopRequested: row.stop_requested === 1 };
    }
    // Someone pruned this process as dead while it was stalled: it is alive, so say so again.
    registerInTransaction(conn, { ...worker, heartbeatAt: now }, leaseTimeoutMs);
    return { beatAt: now, stopRequested: worker.stopRequested };
  });
}

/** Removes worker processes from the registry. */
export function removeWorkers(conn: SqliteConnection, ids: string[]): Promise<void> {
  const remove = conn.sql("DELETE FROM workers WHERE id = ?");
  return conn.write(() => {
    for (const id of ids) remove.run(id);
  });
}

/** Removes worker processes judged dead, each only while its heartbeat is the one judged. */
export function pruneWorkers(
  conn: SqliteConnection,
  workers: Pick<WorkerRecord, "id" | "heartbeatAt">[],
): Promise<string[]> {
  const prune = conn.sql("DELETE FROM workers WHERE id = ? AND heartbeat_at = ?");
  return conn.write(() =>
    workers.filter((w) => prune.run(w.id, w.heartbeatAt).changes > 0).map((w) => w.id)
  );
}

/** Whether any worker process is registered, live or not. */
export function anyWorkers(conn: SqliteConnection): Promise<boolean> {
  return conn.read(() =>
    (conn.sql("SELECT EXISTS (SELECT 1 FROM workers) AS found").get() as Row).found === 1
  );
}

/** Every registered worker process, live or not. */
export function listWorkers(conn: SqliteConnection): Promise<WorkerRecord[]> {
  return conn.read(() =>
    (conn.sql("SELECT * FROM workers ORDER BY started_at, id").all() as Row[]).map(rowToWorker)
  );
}

/** Asks worker processes to finish their current jobs and exit. */
export function requestWorkerStop(conn: SqliteConnection, ids: string[]): Promise<void> {
  const request = conn.sql("UPDATE workers SET stop_requested = 1 WHERE id = ?");
  return conn.write(() => {
    for (const id of ids) request.run(id);
  });
}

/** Asks for a running job to be killed; throws when it is missing or not running. */
export function requestKill(
  conn: SqliteConnection,
  id: string,
  mode: KillMode,
): Promise<KillRequest> {
  const request = conn.sql(
    `UPDATE jobs SET kill_request = ? WHERE id = ? AND state = 'processing'
     RETURNING claim_token, attempts, started_at`,
  );
  return conn.write(() => {
    const row = request.get(mode, id) as Row | undefined;
    if (row) {
      return {
        id,
        claimToken: row.claim_token as string,
        mode,
        attempt: row.attempts as number,
        startedAt: row.started_at as number | null,
      };
    }
    const job = conn.sql("SELECT state FROM jobs WHERE id = ?").get(id) as Row | undefined;
    if (!job) throw new JobNotFoundError(id);
    throw new QueueError(`job '${id}' is not running (its state is ${job.state})`);
  });
}

/** Kills asked for jobs that a `worker start` process is running. */
export function listKillRequests(
  conn: SqliteConnection,
  workerId: string,
): Promise<KillRequest[]> {
  return conn.read(() =>
    (conn.sql(
      `SELECT id, claim_token, kill_request, attempts, started_at FROM jobs
       INDEXED BY jobs_by_worker
       WHERE worker_id = ? AND state = 'processing' AND kill_request IS NOT NULL`,
    ).all(workerId) as Row[]).map((row) => ({
      id: row.id as string,
      claimToken: row.claim_token as string,
      mode: row.kill_request as KillMode,
      attempt: row.attempts as number,
      startedAt: row.started_at as number | null,
    }))
  );
}
