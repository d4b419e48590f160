/**
 * The PostgreSQL backend: the worker registry, heartbeats, stop and kill
 * requests, as SQLite keeps them (lib/store/sqlite_workers.ts). Heartbeats
 * and registrations are beats on the lease clock (pg_leases.ts); rows of
 * several workers are locked in id order, so that two writers removing
 * workers never deadlock.
 *
 * @module
 */

import { JobNotFoundError, QueueError } from "../errors.ts";
import type { PgConnection, PgRow, Tx } from "./pg_connection.ts";
import { leaderOf, type LeaseBeat, lockLeaseClock, takeLeadIfFree } from "./pg_leases.ts";
import { rowToWorker } from "./rows.ts";
import type { Heartbeat, KillMode, KillRequest, WorkerRecord } from "./store.ts";

/**
 * Registers a `worker start` process (again, if it was), stamped with its
 * record's `heartbeatAt`; a registration is a beat on the lease clock, and
 * may take the leader lease (pg_leases.ts).
 */
export function registerWorker(
  conn: PgConnection,
  worker: WorkerRecord,
  leaseTimeoutMs: number,
): Promise<void> {
  return conn.write(async (tx) => {
    const beat = await lockLeaseClock(tx, () => worker.heartbeatAt);
    const row = await register(tx, worker, beat);
    await takeLeadIfFree(tx, worker.id, leaderOf(row), beat.live, leaseTimeoutMs);
  });
}

/**
 * Inside a beat's write: writes the lease clock and the worker's record (all
 * of it, as a new registration, stamped with the beat), and reads the leader lease's holder as it
 * was before, in one statement.
 */
async function register(tx: Tx, worker: WorkerRecord, beat: LeaseBeat): Promise<PgRow> {
  const [row] = await tx`
    WITH clock AS (
      UPDATE lease_clock SET beat_at = ${beat.clock.beatAt}, stalled_ms = ${beat.clock.stalledMs}
      WHERE id = 1
    ), registered AS (
      INSERT INTO workers (id, pid, host, threads, started_at, heartbeat_at, stop_requested,
        proc_start, live_at)
      VALUES (${worker.id}, ${worker.pid}, ${worker.host}, ${worker.threads}, ${worker.startedAt},
        ${beat.now}, ${worker.stopRequested}, ${worker.procStart}, ${beat.live})
      ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, host = excluded.host,
        threads = excluded.threads, started_at = excluded.started_at,
        heartbeat_at = excluded.heartbeat_at, stop_requested = excluded.stop_requested,
        proc_start = excluded.proc_start, live_at = excluded.live_at
    )
    SELECT (SELECT worker_id FROM leader WHERE id = 1) AS leader_id,
      (SELECT w.live_at FROM leader l JOIN workers w ON w.id = l.worker_id WHERE l.id = 1)
        AS leader_live_at`;
  return row;
}

/**
 * Records that a worker process is alive, stamped with the server's clock
 * (or `clock()`, for tests) read once the lease clock is locked, so that a
 * beat that waited for another does not land already stale; a stamp never
 * moves back. Re-registers the worker if its row went missing. The beat
 * advances the lease clock and may take the leader lease (pg_leases.ts).
 */
export function heartbeatWorker(
  conn: PgConnection,
  worker: WorkerRecord,
  clock: (() => number) | undefined,
  leaseTimeoutMs: number,
): Promise<Heartbeat> {
  return conn.write(async (tx): Promise<Heartbeat> => {
    const beat = await lockLeaseClock(tx, (serverNow) => clock?.() ?? serverNow);
    const [row] = await tx`
      WITH clock AS (
        UPDATE lease_clock SET beat_at = ${beat.clock.beatAt}, stalled_ms = ${beat.clock.stalledMs}
        WHERE id = 1
      ), beat AS (
        UPDATE workers SET heartbeat_at = greatest(heartbeat_at, ${beat.now}),
          live_at = greatest(live_at, ${beat.live})
        WHERE id = ${worker.id}
        RETURNING heartbeat_at, stop_requested
      )
      SELECT b.heartbeat_at, b.stop_requested,
        (SELECT worker_id FROM leader WHERE id = 1) AS leader_id,
        (SELECT w.live_at FROM leader l JOIN workers w ON w.id = l.worker_id WHERE l.id = 1)
          AS leader_live_at
      FROM (VALUES (1)) one LEFT JOIN beat b ON true`;
    if (row.heartbeat_at !== null) {
      await takeLeadIfFree(tx, worker.id, leaderOf(row), beat.live, leaseTimeoutMs);
      return { beatAt: row.heartbeat_at as number, stopRequested: row.stop_requested as boolean };
    }
    // Someone pruned this process as dead while it was stalled: it is alive, so say so again.
    const registered = await register(tx, worker, beat);
    await takeLeadIfFree(tx, worker.id, leaderOf(registered), beat.live, leaseTimeoutMs);
    return { beatAt: beat.now, stopRequested: worker.stopRequested };
  });
}

/** Removes worker processes from the registry. */
export function removeWorkers(conn: PgConnection, ids: string[]): Promise<void> {
  if (ids.length === 0) return Promise.resolve();
  return conn.write(async (tx) => {
    await tx`
      DELETE FROM workers WHERE id IN (
        SELECT id FROM workers WHERE id = ANY(${ids}) ORDER BY id FOR UPDATE
      )`;
  });
}

/** Removes worker processes judged dead, each only while its heartbeat is the one judged. */
export function pruneWorkers(
  conn: PgConnection,
  workers: Pick<WorkerRecord, "id" | "heartbeatAt">[],
): Promise<string[]> {
  if (workers.length === 0) return Promise.resolve([]);
  const judged = new Map(workers.map((w) => [w.id, w.heartbeatAt]));
  return conn.write(async (tx) => {
    // Compared on the rows as locked: a beat that committed while this waited keeps its worker.
    const locked = await tx`
      SELECT id, heartbeat_at FROM workers WHERE id = ANY(${[...judged.keys()]})
      ORDER BY id FOR UPDATE`;
    const pruned = new Set(
      locked.filter((row) => judged.get(row.id as string) === row.heartbeat_at)
        .map((row) => row.id as string),
    );
    if (pruned.size > 0) await tx`DELETE FROM workers WHERE id = ANY(${[...pruned]})`;
    return workers.map((w) => w.id).filter((id) => pruned.has(id));
  });
}

/** Every registered worker process, live or not. */
export function listWorkers(conn: PgConnection): Promise<WorkerRecord[]> {
  return conn.read(async (sql) =>
    (await sql`SELECT * FROM workers ORDER BY started_at, id`).map(rowToWorker)
  );
}

/** Asks worker processes to finish their current jobs and exit. */
export function requestWorkerStop(conn: PgConnection, ids: string[]): Promise<void> {
  if (ids.length === 0) return Promise.resolve();
  return conn.read(async (sql) => {
    await sql`UPDATE workers SET stop_requested = true WHERE id = ANY(${ids})`;
  });
}

/**
 * Asks for a running job to be killed; throws when it is missing or not
 * running. Tells the queue's listeners (`kill`) in the same transaction, so
 * that the worker process running it acts at once.
 */
export function requestKill(conn: PgConnection, id: string, mode: KillMode): Promise<KillRequest> {
  return conn.write(async (tx): Promise<KillRequest> => {
    const [row] = await tx`
      UPDATE jobs SET kill_request = ${mode} WHERE id = ${id} AND state = 'processing'
      RETURNING claim_token, attempts, started_at`;
    if (row) {
      await conn.notify(tx, "kill");
      return {
        id,
        claimToken: row.claim_token as string,
        mode,
        attempt: row.attempts as number,
        startedAt: row.started_at as number | null,
      };
    }
    const [job] = await tx`SELECT state FROM jobs WHERE id = ${id}`;
    if (!job) throw new JobNotFoundError(id);
    throw new QueueError(`job '${id}' is not running (its state is ${job.state})`);
  });
}

/** Kills asked for jobs that a `worker start` process is running. */
export function listKillRequests(conn: PgConnection, workerId: string): Promise<KillRequest[]> {
  return conn.read(async (sql) =>
    (await sql`
      SELECT id, claim_token, kill_request, attempts, started_at FROM jobs
      WHERE worker_id = ${workerId} AND state = 'processing' AND kill_request IS NOT NULL`)
      .map((row) => ({
        id: row.id as string,
        claimToken: row.claim_token as string,
        mode: row.kill_request as KillMode,
        attempt: row.attempts as number,
        startedAt: row.started_at as number | null,
      }))
  );
}
