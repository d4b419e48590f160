/**
 * The PostgreSQL backend: leases on the server's clock, the leader, and
 * recovery of the jobs that dead worker processes left running. The rules
 * are SQLite's (lib/store/sqlite_leases.ts, lib/store/rules.ts): the lease
 * clock is the time of heartbeat commits with the stalls left out, a
 * worker's `live_at` is its latest beat on it, and its lease expired when it
 * is more than the lease behind the latest beat of anyone.
 *
 * Worker processes on many hosts share the queue, and their clocks differ:
 * heartbeats are stamped with the server's clock (`now_ms()`), read once the
 * `lease_clock` row is locked, as SQLite stamps them once its write lock is
 * held. That row lock puts every heartbeat and registration in one line: a
 * beat that waited for another is stamped after it, the lease clock never
 * moves back, and the leader changes hands only inside that line. At one
 * beat a second per process, the line is short.
 *
 * @module
 */

import type { ClaimedJob } from "../job.ts";
import type { PgConnection, PgRow, Sql, Tx } from "./pg_connection.ts";
import { rowToClaimed } from "./rows.ts";
import {
  advanceLeaseClock,
  type LeaseClock,
  leaseClockNow,
  leaseExpired,
  STALL_GAP_MS,
} from "./rules.ts";
import type { Orphan, Rescue, RescueRequest } from "./store.ts";

/** A beat's place on the lease clock, and the new clock once it is written. */
export interface LeaseBeat {
  /** The beat's stamp on the store's clock. */
  now: number;
  /** The beat on the lease clock (stalls left out): the worker's `live_at`. */
  live: number;
  /** The lease clock to write with the beat. */
  clock: LeaseClock;
}

/**
 * Inside a write: locks the lease clock (waiting for any heartbeat or
 * registration under way) and places a beat on it, stamped with `stamp`
 * given the server's clock as read once the lock is held. The caller writes
 * `clock` back in the same transaction ({@linkcode writeLeaseClock}).
 */
export async function lockLeaseClock(
  tx: Tx,
  stamp: (serverNow: number) => number,
): Promise<LeaseBeat> {
  const [row] = await tx`SELECT beat_at, stalled_ms FROM lease_clock WHERE id = 1 FOR UPDATE`;
  // A statement of its own, once the lock is ours: in the one that locks, now_ms()
  // would be read before a wait for the lock (tests/pg_store_leases_test.ts).
  const [server] = await tx`SELECT now_ms() AS server_now`;
  const now = stamp(server.server_now as number);
  const { clock, live } = advanceLeaseClock(
    { beatAt: row.beat_at as number, stalledMs: row.stalled_ms as number },
    now,
  );
  return { now, live, clock };
}

/** The holder of the leader lease as a beat's statement read it. */
export interface LeaderHolder {
  /** The worker process holding it; null when nobody ever held it. */
  workerId: string | null;
  /** Its `live_at`; null when it holds it no more (its record is gone). */
  liveAt: number | null;
}

/** The holder from a beat's row, which reads it as `leader_id` and `leader_live_at`. */
export function leaderOf(row: PgRow): LeaderHolder {
  return {
    workerId: (row.leader_id as string | null) ?? null,
    liveAt: (row.leader_live_at as number | null) ?? null,
  };
}

/**
 * Inside a beat's write, the lease clock locked: makes `workerId` the
 * leader when no worker process holds the lease, or its holder is gone or
 * its lease expired (the leader's lease is its own heartbeat's). Every
 * change of hands happens under the lease clock's lock, so two beats never
 * both take the lead.
 */
export async function takeLeadIfFree(
  tx: Tx,
  workerId: string,
  holder: LeaderHolder,
  live: number,
  leaseTimeoutMs: number,
): Promise<void> {
  if (holder.workerId === workerId) return;
  if (
    holder.workerId !== null && holder.liveAt !== null &&
    !leaseExpired(live, holder.liveAt, leaseTimeoutMs)
  ) return;
  await tx`
    INSERT INTO leader (id, worker_id) VALUES (1, ${workerId})
    ON CONFLICT (id) DO UPDATE SET worker_id = excluded.worker_id`;
}

/** Whether `workerId` holds the leader lease. */
export function isLeader(conn: PgConnection, workerId: string): Promise<boolean> {
  return conn.read(async (sql) =>
    (await sql`SELECT 1 FROM leader WHERE id = 1 AND worker_id = ${workerId}`).length > 0
  );
}

/**
 * See `Store.rescue`, judged on the server's clock unless `request.now` is
 * given: one write, skipped when a read finds nothing to do (every worker
 * process calls this every few seconds).
 *
 * Two rescuers may run at once, on two hosts. Each locks the worker rows it
 * is about to delete, in one statement and in id order (so they never
 * deadlock), and deletes only those still as it judged them: a worker that
 * beat since its judgement is kept, and one the other rescuer already
 * deleted is skipped (READ COMMITTED returns no row deleted by a commit it
 * waited for). So each dead worker is removed once, and only its remover
 * knows its host. The orphans are read after that, in a new snapshot: the
 * second rescuer therefore sees the same orphans as the first (they stay
 * `processing` until someone settles them), with a host of null for a
 * worker it did not remove itself. Both hand them back; settleOrphans fences
 * each settlement by the claim token, so only the first settlement of a run
 * takes effect and the other finds nothing to settle.
 */
export async function rescue(
  conn: PgConnection,
  request: RescueRequest,
  leaseTimeoutMs: number,
): Promise<Rescue> {
  const deadByEvidence = request.deadWorkers.filter((dead) => dead.id !== request.judge);
  if (deadByEvidence.length === 0) {
    const idle = await conn.read(async (sql) =>
      (await expiredLeases(sql, request, leaseTimeoutMs)).length === 0 &&
      !await anyOrphan(sql)
    );
    if (idle) return { removed: [], orphans: [] };
  }
  return conn.write(async (tx) => {
    const judged = new Map(deadByEvidence.map((dead) => [dead.id, dead.heartbeatAt]));
    const expired = new Map(
      (await expiredLeases(tx, request, leaseTimeoutMs)).map((w) => [w.id, w.liveAt]),
    );
    const candidates = [...new Set([...judged.keys(), ...expired.keys()])];
    const hosts = new Map<string, string>();
    if (candidates.length > 0) {
      const locked = await tx`
        SELECT id, host, heartbeat_at, live_at FROM workers WHERE id = ANY(${candidates})
        ORDER BY id FOR UPDATE`;
      for (const row of locked) {
        const id = row.id as string;
        // Still the heartbeat judged dead, or still silent since its lease was judged expired.
        const dead = judged.get(id) === row.heartbeat_at || expired.get(id) === row.live_at;
        if (dead) hosts.set(id, row.host as string);
      }
      if (hosts.size > 0) await tx`DELETE FROM workers WHERE id = ANY(${[...hosts.keys()]})`;
    }
    const orphans = (await orphanedJobs(tx)).map((job): Orphan => ({
      ...job,
      host: hosts.get(job.workerId!) ?? null,
    }));
    return { removed: [...hosts.keys()].sort(byCandidateOrder(candidates)), orphans };
  });
}

/** Sorts removed ids as the request listed them: dead by evidence first, then expired. */
function byCandidateOrder(candidates: string[]): (a: string, b: string) => number {
  return (a, b) => candidates.indexOf(a) - candidates.indexOf(b);
}

/**
 * The workers whose lease expired, as `request.judge` may judge them now,
 * with the `live_at` judged: none unless it holds the leader lease and its
 * own heartbeat is fresh (one whose writes stall cannot tell a silent worker
 * from a blocked one); never itself or a worker alive by local evidence.
 */
async function expiredLeases(
  sql: Sql | Tx,
  request: RescueRequest,
  leaseTimeoutMs: number,
): Promise<{ id: string; liveAt: number }[]> {
  const [row] = await sql`
    SELECT c.beat_at, c.stalled_ms, now_ms() AS server_now,
      (SELECT w.heartbeat_at FROM workers w JOIN leader l ON l.worker_id = w.id
        WHERE l.id = 1 AND w.id = ${request.judge}) AS judge_beat_at
    FROM lease_clock c WHERE c.id = 1`;
  const now = request.now ?? (row.server_now as number);
  const judgeBeatAt = row.judge_beat_at as number | null;
  if (judgeBeatAt === null || now - judgeBeatAt > STALL_GAP_MS) return [];
  const live = leaseClockNow({
    beatAt: row.beat_at as number,
    stalledMs: row.stalled_ms as number,
  });
  // Read after the lease clock, never before: a beat committing between the
  // two reads makes its worker look younger, never older, than it is.
  const alive = new Set([request.judge, ...request.aliveWorkers]);
  return (await sql`SELECT id, live_at FROM workers`)
    .filter((worker) =>
      !alive.has(worker.id as string) &&
      leaseExpired(live, worker.live_at as number, leaseTimeoutMs)
    )
    .map((worker) => ({ id: worker.id as string, liveAt: worker.live_at as number }));
}

// 'processing' is spelled out as in the partial index jobs_by_worker, so that the planner uses it.

/** Whether any job is left `processing` by a worker process that is no longer registered. */
async function anyOrphan(sql: Sql | Tx): Promise<boolean> {
  return (await sql`
    SELECT 1 FROM jobs j WHERE j.state = 'processing'
      AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = j.worker_id)
    LIMIT 1`).length > 0;
}

/** Jobs left `processing` by a worker process that is no longer registered, with their claims. */
async function orphanedJobs(tx: Tx): Promise<ClaimedJob[]> {
  return (await tx`
    SELECT * FROM jobs j WHERE j.state = 'processing'
      AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = j.worker_id)
    ORDER BY j.seq`).map(rowToClaimed);
}
