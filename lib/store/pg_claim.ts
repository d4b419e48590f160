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
 */
export async function claim(
  conn: PgConnection,
  workerId: string,
  now: number,
  selection?: QueueSelection,
): Promise<ClaimedJob | undefined> {
  const token = crypto.randomUUID();
  try {
    return await conn.read((sql) => claimOn(sql, workerId, now, selection, token));
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

/** The statement of {@linkcode claim}, on `sql`: the pool, or a transaction it joins. */
export async function claimOn(
  sql: Sql | Tx,
  workerId: string,
  now: number,
  selection?: QueueSelection,
  token: string = crypto.randomUUID(),
): Promise<ClaimedJob | undefined> {
  const [row] = await sql`
    WITH fronts AS (
      SELECT front.seq, front.priority, front.run_at FROM queues q
      CROSS JOIN LATERAL (
        SELECT seq, priority, run_at FROM jobs
        WHERE queue = q.name AND ${sql.unsafe(WAITING)} AND run_at <= ${now}
        ORDER BY priority DESC, run_at, seq
        LIMIT 1 FOR UPDATE SKIP LOCKED
      ) front
      WHERE ${selectedQueues(sql, selection)}
    ), best AS (
      SELECT seq FROM fronts ORDER BY priority DESC, run_at, seq LIMIT 1
    )
    UPDATE jobs SET state = ${TRANSITIONS.claim.to}, attempts = attempts + 1,
      claim_token = ${token}, worker_id = ${workerId}, started_at = ${now},
      updated_at = ${now}, kill_request = NULL
    FROM best
    WHERE jobs.seq = best.seq AND jobs.${sql.unsafe(WAITING)}
    RETURNING jobs.*`;
  return row === undefined ? undefined : rowToClaimed(row);
}

/** The earliest `run_at` of any job waiting in the selected, unpaused queues. */
export function nextRunAt(
  conn: PgConnection,
  selection?: QueueSelection,
): Promise<number | undefined> {
  return conn.read(async (sql) => {
    const [row] = await sql`
      SELECT min(first.run_at) AS t FROM queues q
      CROSS JOIN LATERAL (
        SELECT min(run_at) AS run_at FROM jobs WHERE queue = q.name AND ${sql.unsafe(WAITING)}
      ) first
      WHERE ${selectedQueues(sql, selection)}`;
    return (row.t as number | null) ?? undefined;
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
