/**
 * The claim planner: which job a worker takes next (priority high first,
 * then `run_at`, then enqueue order, over every served, unpaused queue), and
 * when the next one will be due. Each search walks the partial indexes of
 * waiting jobs (`jobs_ready`, `jobs_waiting_by_time`) a queue at a time, so
 * a claim costs a few index seeks however many jobs wait.
 *
 * @module
 */

import type { ClaimedJob } from "../job.ts";
import { TRANSITIONS } from "../states.ts";
import type { Row, SqliteConnection } from "./sqlite_connection.ts";
import { CLAIMABLE, leaving, queuesParam, SELECTED_QUEUES } from "./sqlite_rows.ts";
import { rowToJob } from "./rows.ts";
import { rateOpensAt } from "../queue_limits.ts";
import type { ClaimTime, QueueSelection } from "./store.ts";
import { timeOf } from "../timing.ts";

/** How many priority levels a claim visits one by one below a queue's top level (see dueBelow). */
const LEVELS_VISITED = 8;

/** Whether waiting job `a` goes before `b`: higher priority, then earlier due, then older. */
function ranksBefore(a: Row, b: Row): boolean {
  const [pa, pb] = [a.priority as number, b.priority as number];
  if (pa !== pb) return pa > pb;
  const [ra, rb] = [a.run_at as number, b.run_at as number];
  if (ra !== rb) return ra < rb;
  return (a.seq as number) < (b.seq as number);
}

// INDEXED BY pins the plans below: without statistics the planner prefers
// jobs_by_state and sorts every waiting job on every claim.

/**
 * Takes the best due job of the selected queues for `workerId`, in one
 * write transaction, counting the attempt; undefined when none is due.
 */
export function claim(
  conn: SqliteConnection,
  workerId: string,
  now: ClaimTime,
  selection?: QueueSelection,
  token?: string,
): Promise<ClaimedJob | undefined> {
  return conn.write(() => claimInTransaction(conn, workerId, timeOf(now), selection, token));
}

/** The body of {@linkcode claim}, inside a write transaction. */
export function claimInTransaction(
  conn: SqliteConnection,
  workerId: string,
  now: number,
  selection?: QueueSelection,
  token: string = crypto.randomUUID(),
): ClaimedJob | undefined {
  // Every served, unpaused queue that has a due job (one index probe),
  // with the front of its index: the earliest job of its highest priority
  // level (one seek). If that one is due, it is the queue's best; if not,
  // nothing at that level is, and the queue's best lies lower. Queues of
  // the second kind come first, then the rest best first: the first of
  // those ends the search.
  const fronts = conn.sql(
    `SELECT q.name AS queue, q.rate_limit IS NOT NULL AS rated, c.seq, c.priority, c.run_at
     FROM queues q
     JOIN jobs c ON c.seq = (
       SELECT seq FROM jobs INDEXED BY jobs_ready
       WHERE queue = q.name AND state IN (${CLAIMABLE})
       ORDER BY priority DESC, run_at, seq LIMIT 1
     )
     WHERE ${SELECTED_QUEUES} AND ${WITHIN_LIMITS}
       AND (SELECT min(run_at) FROM jobs INDEXED BY jobs_waiting_by_time
            WHERE queue = q.name AND state IN (${CLAIMABLE})) <= :now
     ORDER BY c.run_at > :now DESC, c.priority DESC, c.run_at, c.seq`,
  );
  const take = conn.sql(
    `UPDATE jobs SET state = '${TRANSITIONS.claim.to}', attempts = attempts + 1,
       claim_token = :token, worker_id = :worker, started_at = :now, updated_at = :now,
       kill_request = NULL
     WHERE seq = :seq AND ${leaving(TRANSITIONS.claim)}
     RETURNING *`,
  );
  const queues = queuesParam(selection);
  let best: Row | undefined;
  const rated = new Set<string>();
  for (const front of fronts.iterate({ queues, now }) as Iterable<Row>) {
    if (front.rated) rated.add(front.queue as string);
    const due = (front.run_at as number) <= now;
    const candidate = due
      ? front
      : dueBelow(conn, front.queue as string, front.priority as number, now);
    if (candidate && (!best || ranksBefore(candidate, best))) best = candidate;
    if (due) break; // The rest come best first: this one beats them.
  }
  if (!best) return undefined;
  const row = take.get({ token, worker: workerId, now, seq: best.seq }) as Row | undefined;
  if (row && rated.has(row.queue as string)) recordStart(conn, row.queue as string, now);
  return row && { ...rowToJob(row), claimToken: token };
}

/**
 * The limits of lib/queue_limits.ts, as a condition on queue `q` at `:now`.
 * Exact inside the claim's write transaction: no other claim or outcome
 * commits between this count and the claim (queue_counts is kept by
 * triggers on every change of a job's state, and on its deletion).
 */
const WITHIN_LIMITS = `(q.concurrency IS NULL
    OR coalesce((SELECT n FROM queue_counts
                 WHERE queue = q.name AND state = '${TRANSITIONS.claim.to}'), 0) < q.concurrency)
  AND (q.rate_limit IS NULL OR NOT EXISTS (
    SELECT 1 FROM queue_starts WHERE queue = q.name AND slot = q.rate_starts % q.rate_limit
      AND started_at > :now - q.rate_period_ms))`;

/** Records a start of rate-limited `queue` in its ring, over the start `rate_limit` starts ago. */
function recordStart(conn: SqliteConnection, queue: string, now: number): void {
  conn.sql(
    `INSERT INTO queue_starts (queue, slot, started_at)
     SELECT name, rate_starts % rate_limit, :now FROM queues WHERE name = :queue AND true
     ON CONFLICT (queue, slot) DO UPDATE SET started_at = excluded.started_at`,
  ).run({ queue, now });
  conn.sql("UPDATE queues SET rate_starts = rate_starts + 1 WHERE name = ?").run(queue);
}

/**
 * The best due job of `queue` below priority `level`. The next levels are
 * visited one index seek each, which skips jobs scheduled later however
 * many; past {@linkcode LEVELS_VISITED} levels, one ordered search takes
 * the rest, so that many sparse levels cost no more than that search.
 */
function dueBelow(
  conn: SqliteConnection,
  queue: string,
  level: number,
  now: number,
): Row | undefined {
  const nextLevel = conn.sql(
    `SELECT max(priority) AS level FROM jobs INDEXED BY jobs_ready
     WHERE queue = :queue AND state IN (${CLAIMABLE}) AND priority < :level`,
  );
  const dueAtLevel = conn.sql(
    `SELECT seq, priority, run_at FROM jobs INDEXED BY jobs_ready
     WHERE queue = :queue AND state IN (${CLAIMABLE}) AND priority = :level
       AND run_at <= :now
     ORDER BY run_at, seq LIMIT 1`,
  );
  const dueAnywhereBelow = conn.sql(
    `SELECT seq, priority, run_at FROM jobs INDEXED BY jobs_ready
     WHERE queue = :queue AND state IN (${CLAIMABLE}) AND priority < :level
       AND run_at <= :now
     ORDER BY priority DESC, run_at, seq LIMIT 1`,
  );
  for (let visited = 0; visited < LEVELS_VISITED; visited++) {
    const next = (nextLevel.get({ queue, level }) as Row).level as number | null;
    if (next === null) return undefined;
    level = next;
    const due = dueAtLevel.get({ queue, level, now }) as Row | undefined;
    if (due) return due;
  }
  return dueAnywhereBelow.get({ queue, level, now }) as Row | undefined;
}

/**
 * The earliest moment a claim could take a job waiting in the selected,
 * unpaused queues: its `run_at`, or later while its queue's rate window is
 * full. Queues at their concurrency limit are left out: a run ending there
 * is a change of the database, which ends an idle worker's wait.
 */
export function nextRunAt(
  conn: SqliteConnection,
  selection?: QueueSelection,
): Promise<number | undefined> {
  return conn.read(() => {
    const rows = conn.sql(
      `SELECT q.name, q.rate_limit, q.rate_period_ms,
         (SELECT min(run_at) FROM jobs INDEXED BY jobs_waiting_by_time
          WHERE queue = q.name AND state IN (${CLAIMABLE})) AS first
       FROM queues q
       WHERE ${SELECTED_QUEUES} AND (q.concurrency IS NULL
         OR coalesce((SELECT n FROM queue_counts
                      WHERE queue = q.name AND state = '${TRANSITIONS.claim.to}'), 0)
            < q.concurrency)`,
    ).all({ queues: queuesParam(selection) }) as Row[];
    const nthLatest = conn.sql(
      `SELECT s.started_at FROM queues q
       JOIN queue_starts s ON s.queue = q.name AND s.slot = q.rate_starts % q.rate_limit
       WHERE q.name = ?`,
    );
    let next: number | undefined;
    for (const row of rows) {
      let at = row.first as number | null;
      if (at === null) continue;
      if (row.rate_limit !== null) {
        const nth = nthLatest.get(row.name) as Row | undefined;
        if (nth) {
          at = Math.max(at, rateOpensAt(nth.started_at as number, row.rate_period_ms as number));
        }
      }
      if (next === undefined || at < next) next = at;
    }
    return next;
  });
}

/** The earliest `run_at` of any job waiting in any queue, paused or not. */
export function oldestWaitingRunAt(conn: SqliteConnection): Promise<number | undefined> {
  return conn.read(() => {
    const row = conn.sql(
      `SELECT min((SELECT min(run_at) FROM jobs INDEXED BY jobs_waiting_by_time
                   WHERE queue = q.name AND state IN (${CLAIMABLE}))) AS t
       FROM queues q`,
    ).get() as Row;
    return (row.t as number | null) ?? undefined;
  });
}
