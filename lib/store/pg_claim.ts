/**
 * The PostgreSQL backend: the claim. Workers on many hosts claim at once, so
 * a claim is one statement that takes the best due job nobody holds
 * (`FOR UPDATE SKIP LOCKED`) and marks it `processing`: concurrent claims
 * never wait for each other and never take the same job.
 *
 * The claimable states are written into the SQL as literals (from
 * lib/states.ts), not passed as a parameter: the partial indexes
 * `jobs_ready` and `jobs_waiting_by_time` apply only where the planner can
 * prove their `WHERE` from the statement itself, which a parameter does not
 * allow once the client's prepared statement gets a generic plan.
 *
 * @module
 */

import type { ClaimedJob } from "../job.ts";
import { TRANSITIONS } from "../states.ts";
import { sleep, timeOf } from "../timing.ts";
import type { PgConnection, Sql, Tx } from "./pg_connection.ts";
import { CLAIMABLE } from "./pg_rows.ts";
import { rowToClaimed } from "./rows.ts";
import { rateOpensAt } from "../queue_limits.ts";
import type { ClaimTime, QueueSelection } from "./store.ts";

/** `state IN (…claimable…)` as SQL text: the states are constants of lib/states.ts. */
const WAITING = `state IN (${CLAIMABLE.map((s) => `'${s}'`).join(", ")})`;

/** The selected, unpaused queues (`q`), as a condition. */
function selectedQueues(sql: Sql | Tx, selection: QueueSelection | undefined) {
  return selection?.queues === undefined
    ? sql`q.paused_at IS NULL`
    : sql`q.paused_at IS NULL AND q.name = ANY(${[...selection.queues]}::text[])`;
}

/**
 * Takes the best due job of the selected, unpaused queues for `workerId`
 * (priority high first, then `run_at`, then enqueue order), counting the
 * attempt; undefined when none is due. One statement ({@linkcode claimOn}):
 * for each queue, the front of its `jobs_ready` index that is due and not
 * held by another claim (an index walk that stops at the first such row),
 * then the best of those fronts. While one claim runs, the fronts of the
 * other queues are held too, so a concurrent claim takes the next job of
 * those queues: a brief inversion between queues, never a job handed out
 * twice.
 */
export async function claim(
  conn: PgConnection,
  workerId: string,
  now: ClaimTime,
  selection?: QueueSelection,
  token: string = crypto.randomUUID(),
): Promise<ClaimedJob | undefined> {
  try {
    return await claimOn(
      (body) => conn.read((sql) => body(sql)),
      workerId,
      now,
      selection,
      token,
      true,
    );
  } catch (error) {
    return await claimedAfterAll(conn, workerId, token, error);
  }
}

/**
 * The job claimed under `token` by a write that failed with `error`, when
 * it committed after all; else `error` is thrown. A connection lost after
 * the commit (the server restarted, the connection was ended) leaves the
 * client without the answer: the claim is then looked for by its token, on
 * a new connection, for a few seconds. Unchecked, such a claim would hold
 * its job `processing` under a worker process that is alive and never runs
 * it, beyond the reach of recovery.
 */
export async function claimedAfterAll(
  conn: PgConnection,
  workerId: string,
  token: string,
  error: unknown,
): Promise<ClaimedJob> {
  for (let tries = 0; tries < 6; tries++) {
    try {
      const [row] = await conn.read((sql) =>
        sql`SELECT * FROM jobs
          WHERE worker_id = ${workerId} AND state = 'processing' AND claim_token = ${token}`
      );
      if (row === undefined) break;
      return rowToClaimed(row);
    } catch {
      await sleep(250 * 2 ** tries);
    }
  }
  throw error;
}

/**
 * The claim of {@linkcode claim} inside transaction `tx` (after an outcome,
 * say), passing over limited queues another claim holds without waiting
 * for them: the rows this transaction has locked stay locked until it
 * ends, and two such claims each waiting for a queue the other holds would
 * deadlock. A worker that gets nothing here claims again on its own, and
 * that claim may wait.
 */
export function claimInTransaction(
  tx: Tx,
  workerId: string,
  now: ClaimTime,
  selection?: QueueSelection,
  token: string = crypto.randomUUID(),
): Promise<ClaimedJob | undefined> {
  return claimOn((body) => body(tx), workerId, now, selection, token, false);
}

/** Limits apply to queue `q`. */
const HAS_LIMITS = "(q.concurrency IS NOT NULL OR q.rate_limit IS NOT NULL)";

/**
 * The claim, run by `run` on the pool or in a transaction. Queues with
 * limits (lib/queue_limits.ts) are served only while the statement holds
 * their rows (`FOR NO KEY UPDATE`, which an enqueue's `FOR KEY SHARE` does
 * not meet) and `queue_has_room` (pg_migrations.ts) finds them within their
 * limits: that function's query takes its own snapshot once the row is
 * held, so it counts every claim and outcome committed by the row's
 * previous holders, which the statement's own snapshot (READ COMMITTED,
 * taken before the row was held) may miss. Whatever the number of
 * claimers, none overshoots. Rows another claim holds are skipped, so a
 * busy limited queue never delays a claim that finds a job elsewhere; a
 * claim that finds none, having skipped some, tries once more waiting for
 * them (another claim holds them for a moment) when `mayWait`: only a claim
 * that holds no queue row by then (its first statement has ended) may, or
 * two could wait for each other. Nothing that holds a queue's row waits
 * for a job's, so that wait closes no cycle.
 */
async function claimOn(
  run: <T>(body: (sql: Sql | Tx) => Promise<T>) => Promise<T>,
  workerId: string,
  now: ClaimTime,
  selection: QueueSelection | undefined,
  token: string,
  mayWait: boolean,
): Promise<ClaimedJob | undefined> {
  // The time is read as each statement starts (the waiting one may start late).
  const first = await run((sql) =>
    claimStatement(sql, workerId, timeOf(now), selection, token, true)
  );
  if (first.job !== undefined || !first.skippedLimited || !mayWait) return first.job;
  return (await run((sql) => claimStatement(sql, workerId, timeOf(now), selection, token, false)))
    .job;
}

/** What a claim statement did: the job it claimed; whether it passed over held limited queues. */
interface Claimed {
  job: ClaimedJob | undefined;
  skippedLimited: boolean;
}

/** The claim statement of {@linkcode claimOn}; `skipLocked` passes over held queue rows. */
async function claimStatement(
  sql: Sql | Tx,
  workerId: string,
  now: number,
  selection: QueueSelection | undefined,
  token: string,
  skipLocked: boolean,
): Promise<Claimed> {
  const [row] = await sql`
    WITH held AS MATERIALIZED (
      SELECT q.name, q.rate_limit, q.rate_starts FROM queues q
      WHERE ${selectedQueues(sql, selection)} AND ${sql.unsafe(HAS_LIMITS)}
      ORDER BY q.name FOR NO KEY UPDATE ${skipLocked ? sql`SKIP LOCKED` : sql``}
    ), roomy AS MATERIALIZED (
      SELECT h.name FROM held h WHERE queue_has_room(h.name, ${now}::bigint)
    ), fronts AS (
      SELECT front.seq, front.priority, front.run_at FROM queues q
      CROSS JOIN LATERAL (
        SELECT seq, priority, run_at FROM jobs
        WHERE queue = q.name AND ${sql.unsafe(WAITING)} AND run_at <= ${now}
        ORDER BY priority DESC, run_at, seq
        LIMIT 1 FOR UPDATE SKIP LOCKED
      ) front
      WHERE ${selectedQueues(sql, selection)}
        AND (NOT ${sql.unsafe(HAS_LIMITS)} OR q.name IN (SELECT name FROM roomy))
    ), best AS (
      SELECT seq FROM fronts ORDER BY priority DESC, run_at, seq LIMIT 1
    ), claimed AS (
      UPDATE jobs SET state = ${TRANSITIONS.claim.to}, attempts = attempts + 1,
        claim_token = ${token}, worker_id = ${workerId}, started_at = ${now},
        updated_at = ${now}, kill_request = NULL
      FROM best
      WHERE jobs.seq = best.seq AND jobs.${sql.unsafe(WAITING)}
      RETURNING jobs.*
    ), started AS (
      -- The start goes in its queue's ring, over the start rate_limit starts ago; the held
      -- row is the newest, so rate_starts is.
      INSERT INTO queue_starts (queue, slot, started_at)
      SELECT h.name, h.rate_starts % h.rate_limit, ${now}::bigint
      FROM claimed c JOIN held h ON h.name = c.queue WHERE h.rate_limit IS NOT NULL
      ON CONFLICT (queue, slot) DO UPDATE SET started_at = excluded.started_at
    ), counted AS (
      UPDATE queues q SET rate_starts = q.rate_starts + 1
      FROM claimed c JOIN held h ON h.name = c.queue
      WHERE q.name = c.queue AND h.rate_limit IS NOT NULL
    )
    SELECT (SELECT count(*) FROM queues q
            WHERE ${selectedQueues(sql, selection)} AND ${sql.unsafe(HAS_LIMITS)})
        > (SELECT count(*) FROM held) AS skipped_limited,
      claimed.*
    FROM (SELECT 1) one LEFT JOIN claimed ON true`;
  return {
    job: row.seq === null ? undefined : rowToClaimed(row),
    skippedLimited: row.skipped_limited as boolean,
  };
}

/**
 * The earliest moment a claim could take a job waiting in the selected,
 * unpaused queues: its `run_at`, or later while its queue's rate window is
 * full (lib/queue_limits.ts `rateOpensAt`). Queues at their concurrency
 * limit are left out: a run ending there is news that wakes idle workers.
 */
export function nextRunAt(
  conn: PgConnection,
  selection?: QueueSelection,
): Promise<number | undefined> {
  return conn.read(async (sql) => {
    const rows = await sql`
      SELECT first.run_at, q.rate_period_ms, (
          SELECT s.started_at FROM queue_starts s
          WHERE s.queue = q.name AND s.slot = q.rate_starts % q.rate_limit
        ) AS nth_latest
      FROM queues q
      CROSS JOIN LATERAL (
        SELECT min(run_at) AS run_at FROM jobs WHERE queue = q.name AND ${sql.unsafe(WAITING)}
      ) first
      WHERE ${selectedQueues(sql, selection)} AND first.run_at IS NOT NULL
        AND (q.concurrency IS NULL OR (
          SELECT count(*) FROM jobs r WHERE r.queue = q.name AND r.state = ${TRANSITIONS.claim.to}
        ) < q.concurrency)`;
    let next: number | undefined;
    for (const row of rows) {
      let at = Number(row.run_at);
      if (row.nth_latest !== null) {
        at = Math.max(at, rateOpensAt(Number(row.nth_latest), Number(row.rate_period_ms)));
      }
      if (next === undefined || at < next) next = at;
    }
    return next;
  });
}

/** The earliest `run_at` of any job waiting in any queue, paused or not. */
export function oldestWaitingRunAt(conn: PgConnection): Promise<number | undefined> {
  return conn.read(async (sql) => {
    const [row] = await sql`
      SELECT min(first.run_at) AS t FROM queues q
      CROSS JOIN LATERAL (
        SELECT min(run_at) AS run_at FROM jobs WHERE queue = q.name AND ${sql.unsafe(WAITING)}
      ) first`;
    return (row.t as number | null) ?? undefined;
  });
}
