/**
 * Leases on the database's clock: which worker processes are alive, which
 * one is the leader that does the upkeep, and recovery of the jobs that dead
 * ones left running.
 *
 * SQLite is one file on one host, so the store's clock is the database's
 * clock: heartbeats are stamped with it inside their write transaction, and
 * leases are judged with it. The lease clock (table `lease_clock`) is that
 * time with the stalls left out: a gap of more than {@linkcode STALL_GAP_MS}
 * between two heartbeat commits (of any worker process) is a stall, during
 * which nobody could write a beat (a lock held, a bulk enqueue, a hung disk,
 * or no worker running at all), so it counts against no lease. A worker's
 * `live_at` is its latest beat on that clock; its lease expired when it is
 * more than the lease behind the latest beat of anyone.
 *
 * @module
 */

import type { ClaimedJob } from "../job.ts";
import { advanceLeaseClock as advance, leaseExpired, STALL_GAP_MS } from "./rules.ts";
import type { Row, SqliteConnection } from "./sqlite_connection.ts";
import { rowToClaimed } from "./rows.ts";
import type { Orphan, Rescue, RescueRequest } from "./store.ts";

/**
 * Records, inside a write transaction, that a heartbeat (or registration)
 * commits at `now`: advances the lease clock, leaving out the gap since the
 * previous beat when it is a stall. Returns the beat on the lease clock.
 */
export function advanceLeaseClock(conn: SqliteConnection, now: number): number {
  const row = conn.sql("SELECT beat_at, stalled_ms FROM lease_clock WHERE id = 1").get() as Row;
  const { clock, live } = advance(
    { beatAt: row.beat_at as number, stalledMs: row.stalled_ms as number },
    now,
  );
  conn.sql("UPDATE lease_clock SET beat_at = ?, stalled_ms = ? WHERE id = 1").run(
    clock.beatAt,
    clock.stalledMs,
  );
  return live;
}

/** The latest beat of anyone on the lease clock, and its stamp on the store's clock. */
function leaseClockNow(conn: SqliteConnection): { live: number; beatAt: number } {
  const row = conn.sql("SELECT beat_at, stalled_ms FROM lease_clock WHERE id = 1").get() as Row;
  return {
    live: (row.beat_at as number) - (row.stalled_ms as number),
    beatAt: row.beat_at as number,
  };
}

/**
 * Inside a write transaction: makes `workerId` the leader when no worker
 * process holds the lease, or its holder is gone or its lease expired (the
 * leader's lease is its own heartbeat's).
 */
export function takeLeadIfFree(
  conn: SqliteConnection,
  workerId: string,
  live: number,
  leaseTimeoutMs: number,
): void {
  const holder = conn.sql(
    `SELECT w.id, w.live_at FROM leader l LEFT JOIN workers w ON w.id = l.worker_id
     WHERE l.id = 1`,
  ).get() as Row | undefined;
  if (holder !== undefined && holder.id === workerId) return;
  if (
    holder !== undefined && holder.id !== null &&
    !leaseExpired(live, holder.live_at as number, leaseTimeoutMs)
  ) return;
  conn.sql("INSERT OR REPLACE INTO leader (id, worker_id) VALUES (1, ?)").run(workerId);
}

/** Whether `workerId` holds the leader lease. */
export function isLeader(conn: SqliteConnection, workerId: string): Promise<boolean> {
  return conn.read(() =>
    conn.sql("SELECT 1 FROM leader WHERE id = 1 AND worker_id = ?").get(workerId) !== undefined
  );
}

/**
 * See `Store.rescue`: one write transaction, skipped when a read finds
 * nothing to do (every worker process calls this every few seconds).
 */
export async function rescue(
  conn: SqliteConnection,
  request: RescueRequest,
  leaseTimeoutMs: number,
): Promise<Rescue> {
  const hostOf = conn.sql("SELECT host FROM workers WHERE id = ? AND heartbeat_at = ?");
  const prune = conn.sql("DELETE FROM workers WHERE id = ? AND heartbeat_at = ?");
  const remove = conn.sql("DELETE FROM workers WHERE id = ?");
  const anyOrphan = conn.sql(
    `SELECT 1 FROM jobs INDEXED BY jobs_by_worker
     WHERE state = 'processing' AND worker_id NOT IN (SELECT id FROM workers) LIMIT 1`,
  );
  if (!request.deadWorkers.some((dead) => dead.id !== request.judge)) {
    const idle = await conn.read(() =>
      expiredLeases(conn, request, leaseTimeoutMs).length === 0 && anyOrphan.get() === undefined
    );
    if (idle) return { removed: [], orphans: [] };
  }
  return conn.write(() => {
    const hosts = new Map<string, string>();
    for (const dead of request.deadWorkers) {
      if (dead.id === request.judge) continue; // No judge judges itself.
      const row = hostOf.get(dead.id, dead.heartbeatAt) as Row | undefined;
      if (row === undefined) continue; // Gone already, or it beat since it was judged.
      prune.run(dead.id, dead.heartbeatAt);
      hosts.set(dead.id, row.host as string);
    }
    for (const worker of expiredLeases(conn, request, leaseTimeoutMs)) {
      remove.run(worker.id);
      hosts.set(worker.id, worker.host);
    }
    const orphans = orphanedJobs(conn).map((job): Orphan => ({
      ...job,
      host: hosts.get(job.workerId!) ?? null,
    }));
    return { removed: [...hosts.keys()], orphans };
  });
}

/**
 * The workers whose lease expired, as `request.judge` may judge them now:
 * none unless it holds the leader lease and its own heartbeat is fresh (one
 * whose writes stall cannot tell a silent worker from a blocked one); never
 * itself or a worker alive by local evidence.
 */
function expiredLeases(
  conn: SqliteConnection,
  request: RescueRequest,
  leaseTimeoutMs: number,
): { id: string; host: string }[] {
  // Read once the transaction began: a rescue that waited out a lock judges at its end.
  const now = request.now ?? Date.now();
  const judge = conn.sql(
    `SELECT w.heartbeat_at FROM workers w JOIN leader l ON l.worker_id = w.id
     WHERE l.id = 1 AND w.id = ?`,
  ).get(request.judge) as Row | undefined;
  if (judge === undefined || now - (judge.heartbeat_at as number) > STALL_GAP_MS) return [];
  const { live } = leaseClockNow(conn);
  const alive = new Set([request.judge, ...request.aliveWorkers]);
  return (conn.sql("SELECT id, host, live_at FROM workers").all() as Row[])
    .filter((worker) =>
      !alive.has(worker.id as string) &&
      leaseExpired(live, worker.live_at as number, leaseTimeoutMs)
    )
    .map((worker) => ({ id: worker.id as string, host: worker.host as string }));
}

/** Jobs left `processing` by a worker process that is no longer registered, with their claims. */
export function orphanedJobs(conn: SqliteConnection): ClaimedJob[] {
  return (conn.sql(
    `SELECT * FROM jobs INDEXED BY jobs_by_worker
     WHERE state = 'processing' AND worker_id NOT IN (SELECT id FROM workers)`,
  ).all() as Row[]).map(rowToClaimed);
}
