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
import { sleep } from "../timing.ts";
import type { PgConnection, Sql, Tx } from "./pg_connection.ts";
import { CLAIMABLE } from "./pg_rows.ts";
import { rowToClaimed } from "./rows.ts";
import { rateOpensAt } from "../queue_limits.ts";
import type { QueueSelection } from "./store.ts";

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
 * attempt; undefined when none is due. One statement: for each queue, the
 * front of its `jobs_ready` index that is due and not held by another
 * claim (an index walk that stops at the first such row), then the best of
 * those fronts. While one claim runs, the fronts of the other queues are
 * held too, so a concurrent claim takes the next job of those queues: a
 * brief inversion between queues, never a job handed out twice.
 *
 * When a selected queue has limits (lib/queue_limits.ts), that statement
 * claims nothing and says so, and the claim is made in a transaction that
 * first holds the limited queues' rows ({@linkcode claimLimited}). A
 * connection that met limits goes straight to that transaction until it
 * finds none (a hint only: both ways are exact).
 */
export async function claim(
  conn: PgConnection,
  workerId: string,
  now: number,
  selection?: QueueSelection,
): Promise<ClaimedJob | undefined> {
  const token = crypto.randomUUID();
  try {
    if (!metLimits.has(conn)) {
      const found = await conn.read((sql) => claimStatement(sql, workerId, now, selection, token));
      if (!found.limited) return found.job;
      metLimits.add(conn);
    }
    return await conn.write(async (tx) => {
      const { job, limited } = await claimLimited(tx, workerId, now, selection, token);
      if (!limited) metLimits.delete(conn);
      return job;
    });
  } catch (error) {
    return await claimedAfterAll(conn, workerId, token, error);
  }
}

/** Connections whose latest claim met a selected queue with limits. */
const metLimits = new WeakSet<PgConnection>();

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

/** The claim of {@linkcode claim} inside transaction `tx` (after an outcome, say). */
export async function claimInTransaction(
  tx: Tx,
  workerId: string,
  now: number,
  selection?: QueueSelection,
  token: string = crypto.randomUUID(),
): Promise<ClaimedJob | undefined> {
  const found = await claimStatement(tx, workerId, now, selection, token);
  if (!found.limited) return found.job;
  return (await claimLimited(tx, workerId, now, selection, token)).job;
}

/** What a claim statement did: the job it claimed, and whether a selected queue has limits. */
interface Claimed {
  job: ClaimedJob | undefined;
  limited: boolean;
}

/** Limits apply to queue `q`. */
const HAS_LIMITS = "(q.concurrency IS NOT NULL OR q.rate_limit IS NOT NULL)";

/**
 * The transaction's setting that names the limited queues whose rows it
 * holds (a JSON array), so that the claim statement, sent right behind the
 * statement that takes them, needs no answer in between.
 */
const HELD = "queuectl.held_queues";

/**
 * The claim under limits, in `tx`; `limited` says whether any selected queue
 * has limits. Its first statement holds the rows of the selected queues
 * that have limits (`FOR NO KEY UPDATE`, which an enqueue's `FOR KEY SHARE`
 * does not meet), skipping those another claim holds. The claim itself is
 * a second statement, so that under READ COMMITTED its snapshot is taken
 * once the rows are held, and sees every claim and outcome committed by
 * their previous holders: the running jobs and recent starts it counts are
 * exact for the queues it holds, whatever the number of claimers. So a busy
 * limited queue never delays a claim that finds a job elsewhere; only a
 * claim that finds none waits for the rows it skipped (another claim holds
 * them for a moment) and tries once more. Nothing that holds a queue's row
 * waits for a job's, so this wait cannot close a cycle.
 */
async function claimLimited(
  tx: Tx,
  workerId: string,
  now: number,
  selection: QueueSelection | undefined,
  token: string,
): Promise<Claimed> {
  const hold = (skipLocked: boolean) =>
    tx`SELECT set_config(${HELD}, (
        SELECT coalesce(json_agg(h.name), '[]')::text FROM (
          SELECT q.name FROM queues q
          WHERE ${selectedQueues(tx, selection)} AND ${tx.unsafe(HAS_LIMITS)}
          ORDER BY q.name FOR NO KEY UPDATE ${skipLocked ? tx`SKIP LOCKED` : tx``}
        ) h
      ), true)`;
  // Sent first (a query goes out when first awaited, or asked to), the claim right behind it.
  const held = hold(true).execute();
  const [, first] = await Promise.all([
    held,
    claimStatement(tx, workerId, now, selection, token, true),
  ]);
  if (first.job !== undefined || !first.limited) return first;
  const [{ skipped }] = await tx`
    SELECT count(*) AS skipped FROM queues q
    WHERE ${selectedQueues(tx, selection)} AND ${tx.unsafe(HAS_LIMITS)}
      AND q.name NOT IN (SELECT json_array_elements_text(current_setting(${HELD}, true)::json))`;
  if (Number(skipped) === 0) return first;
  await hold(false);
  return await claimStatement(tx, workerId, now, selection, token, true);
}

/**
 * The claim statement, on `sql`: the pool, or a transaction it joins.
 * Without `underHeldRows`, it claims only when no selected queue has
 * limits; with it, it serves unlimited queues and those limited ones whose
 * rows the transaction holds (named by {@linkcode HELD}) that are within
 * their limits, and records the start of a job of a rate-limited queue,
 * pruning starts that left its window.
 */
async function claimStatement(
  sql: Sql | Tx,
  workerId: string,
  now: number,
  selection: QueueSelection | undefined,
  token: string,
  underHeldRows = false,
): Promise<Claimed> {
  const anyLimited = sql`EXISTS (
    SELECT 1 FROM queues q WHERE ${selectedQueues(sql, selection)} AND ${sql.unsafe(HAS_LIMITS)}
  )`;
  const eligible = !underHeldRows ? sql`NOT ${anyLimited}` : sql`(NOT ${sql.unsafe(HAS_LIMITS)}
      OR q.name IN (SELECT json_array_elements_text(current_setting(${HELD}, true)::json))
        AND (q.concurrency IS NULL OR (
          SELECT count(*) FROM jobs r WHERE r.queue = q.name AND r.state = ${TRANSITIONS.claim.to}
        ) < q.concurrency)
        AND (q.rate_limit IS NULL OR NOT EXISTS (
          SELECT 1 FROM queue_starts s
          WHERE s.queue = q.name AND s.slot = q.rate_starts % q.rate_limit
            AND s.started_at > ${now} - q.rate_period_ms
        )))`;
  // The start goes in the ring's next slot, over the start rate_limit starts ago.
  const startRecorded = !underHeldRows ? sql`` : sql`, started AS (
      INSERT INTO queue_starts (queue, slot, started_at)
      SELECT q.name, q.rate_starts % q.rate_limit, ${now}::bigint
      FROM claimed c JOIN queues q ON q.name = c.queue WHERE q.rate_limit IS NOT NULL
      ON CONFLICT (queue, slot) DO UPDATE SET started_at = excluded.started_at
    ), counted AS (
      UPDATE queues q SET rate_starts = q.rate_starts + 1
      FROM claimed c WHERE q.name = c.queue AND q.rate_limit IS NOT NULL
    )`;
  const [row] = await sql`
    WITH fronts AS (
      SELECT front.seq, front.priority, front.run_at FROM queues q
      CROSS JOIN LATERAL (
        SELECT seq, priority, run_at FROM jobs
        WHERE queue = q.name AND ${sql.unsafe(WAITING)} AND run_at <= ${now}
        ORDER BY priority DESC, run_at, seq
        LIMIT 1 FOR UPDATE SKIP LOCKED
      ) front
      WHERE ${selectedQueues(sql, selection)} AND ${eligible}
    ), best AS (
      SELECT seq FROM fronts ORDER BY priority DESC, run_at, seq LIMIT 1
    ), claimed AS (
      UPDATE jobs SET state = ${TRANSITIONS.claim.to}, attempts = attempts + 1,
        claim_token = ${token}, worker_id = ${workerId}, started_at = ${now},
        updated_at = ${now}, kill_request = NULL
      FROM best
      WHERE jobs.seq = best.seq AND jobs.${sql.unsafe(WAITING)}
      RETURNING jobs.*
    )${startRecorded}
    SELECT ${anyLimited} AS limited, claimed.* FROM (SELECT 1) one LEFT JOIN claimed ON true`;
  return { job: row.seq === null ? undefined : rowToClaimed(row), limited: row.limited as boolean };
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
