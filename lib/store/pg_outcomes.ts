/**
 * The PostgreSQL backend: how jobs' runs end and what follows, with the
 * dependency rules of lib/store/rules.ts applied in the same transaction, as
 * lib/store/sqlite_outcomes.ts does for SQLite: a run's outcome (the kill
 * override, then the cascade to the jobs that run after it), giving a
 * claimed job back, starting finished jobs over, and deleting jobs. How jobs
 * enter the queue is pg_enqueue.ts.
 *
 * Transactions are READ COMMITTED and many hosts write at once, so every
 * decision is taken against locked rows, and every cascade step is a
 * statement of its own: a statement started after a lock wait sees what the
 * holder of the lock committed. Thus a job enqueued after X (X locked
 * `FOR SHARE` while its state is read) and X's end are ordered one way or
 * the other: either the enqueue (pg_enqueue.ts) sees X's final state, or X's
 * cascade sees the new job. The same holds for starting jobs over and for
 * deleting.
 *
 * @module
 */

import { JobNotFoundError, QueueError } from "../errors.ts";
import type { ClaimedJob } from "../job.ts";
import { DELETABLE_STATES, type JobState, type Transition, TRANSITIONS } from "../states.ts";
import {
  ABANDON,
  abandonedBecause,
  type Cascade,
  cascadeOnDelete,
  cascadeOnEnd,
  DEPENDENCY_MET,
  type DependencyState,
  mustWaitOnStartOver,
  outcomeTransition,
  RELEASE,
  UNIQUE_HOLDING_STATES,
  uniqueKeyHeldOnStartOver,
} from "./rules.ts";
import { type PgConnection, type PgRow, type Tx } from "./pg_connection.ts";
import { lockUniqueKeys } from "./pg_enqueue.ts";
import { leaving } from "./pg_rows.ts";
import type {
  AttemptOutcome,
  ClaimTime,
  DeleteTarget,
  FinishAndClaim,
  KillMode,
  OrphanSettlement,
  QueueSelection,
} from "./store.ts";
import { claimedAfterAll, claimInTransaction } from "./pg_claim.ts";

/** Jobs deleted per transaction when deleting by state. */
const DELETE_BATCH = 500;

/**
 * Records the end of a run while the job is still `processing` under its
 * claim; returns whether it did. The kill asked for the run, if any, may
 * override the outcome ({@linkcode outcomeTransition}); the jobs after it
 * are released or abandoned in the same transaction.
 */
export function finishAttempt(
  conn: PgConnection,
  job: ClaimedJob,
  outcome: AttemptOutcome,
): Promise<boolean> {
  return conn.write(async (tx) => {
    const { finished, released } = await finishInTransaction(tx, job, outcome);
    if (released) await conn.notify(tx, "jobs");
    return finished;
  });
}

/**
 * {@linkcode finishAttempt}, then a claim for `workerId`, in one
 * transaction (`Store.finishAndClaim`).
 */
export async function finishAndClaim(
  conn: PgConnection,
  job: ClaimedJob,
  outcome: AttemptOutcome,
  workerId: string,
  now: ClaimTime,
  selection?: QueueSelection,
  token: string = crypto.randomUUID(),
): Promise<FinishAndClaim> {
  try {
    return await conn.write(async (tx) => {
      const { finished, released } = await finishInTransaction(tx, job, outcome);
      if (released) await conn.notify(tx, "jobs");
      return {
        recorded: finished,
        next: await claimInTransaction(tx, workerId, now, selection, token),
      };
    });
  } catch (error) {
    // Committed after all (its answer lost with the connection): the next job is ours to run,
    // and so was the outcome. Otherwise the caller tries the whole again.
    return { recorded: true, next: await claimedAfterAll(conn, workerId, token, error) };
  }
}

/**
 * Records the ends of several runs in one write (`Store.settleOrphans`),
 * each as {@linkcode finishAttempt}; returns the jobs whose end it recorded.
 */
export function finishAttempts(
  conn: PgConnection,
  settlements: readonly OrphanSettlement[],
): Promise<ClaimedJob[]> {
  return conn.write(async (tx) => {
    const settled: ClaimedJob[] = [];
    let released = false;
    for (const { job, outcome } of settlements) {
      const result = await finishInTransaction(tx, job, outcome);
      if (result.finished) settled.push(job);
      released ||= result.released;
    }
    if (released) await conn.notify(tx, "jobs");
    return settled;
  });
}

/** The body of {@linkcode finishAttempt}: whether it recorded the end, and released any job. */
async function finishInTransaction(
  tx: Tx,
  job: ClaimedJob,
  outcome: AttemptOutcome,
): Promise<{ finished: boolean; released: boolean }> {
  const running = leaving(TRANSITIONS.complete);
  const out = outcome.output;
  // Most runs end with no kill asked: then the outcome is the run's own, and the
  // job's update (which locks it) and its attempt's record are one statement.
  const unkilled = outcomeTransition(outcome.state, null);
  const unkilledRetryAt = unkilled === TRANSITIONS.scheduleRetry ? outcome.retryAt ?? null : null;
  const kind = cascadeOnEnd(unkilled.to);
  const ending = tx`
    WITH ended AS (
      UPDATE jobs SET state = ${unkilled.to}, run_at = coalesce(${unkilledRetryAt}::bigint, run_at),
        updated_at = ${outcome.finishedAt}, finished_at = ${outcome.finishedAt},
        exit_code = ${outcome.exitCode}, last_error = ${outcome.error},
        claim_token = NULL, worker_id = NULL, kill_request = NULL
      WHERE id = ${job.id} AND claim_token = ${job.claimToken} AND kill_request IS NULL
        AND state = ANY(${running}::text[]) AND state = ANY(${leaving(unkilled)}::text[])
      RETURNING id
    )
    INSERT INTO job_attempts (job_id, attempt, started_at, finished_at, exit_code, error,
      stdout, stderr, stdout_dropped, stderr_dropped)
    SELECT id, ${job.attempts}, ${job.startedAt}, ${outcome.finishedAt},
      ${outcome.exitCode}, ${outcome.error}, ${out.stdout}, ${out.stderr},
      ${out.stdoutDropped}, ${out.stderrDropped}
    FROM ended`;
  if (kind === "release") {
    // The lock of the jobs to release goes out with the end, not a round trip later: a
    // statement of its own, so it sees what committed while the end waited for the job's
    // lock. It locks nothing unless the end took place (the job is no longer `processing`).
    // The client sends queries in the order they are first awaited: the end first.
    const ended = ending.then((result) => result);
    const locking = lockBlockedDependents(tx, job.id, {
      state: unkilled.to,
      finishedAt: outcome.finishedAt,
    });
    const [recorded, blocked] = await Promise.all([ended, locking]);
    if (recorded.count > 0) {
      const released = await releaseLocked(tx, blocked, outcome.finishedAt) > 0;
      return { finished: true, released };
    }
  } else if ((await ending).count > 0) {
    const released = await cascade(tx, job.id, kind, "dead", outcome.finishedAt);
    return { finished: true, released };
  }
  // Not ended: a kill was asked (it may change the outcome), or the job is no longer this run's.
  // Locked, so that a kill request cannot land between its read and the outcome.
  const [held] = await tx`
    SELECT kill_request FROM jobs
    WHERE id = ${job.id} AND claim_token = ${job.claimToken} AND state = ANY(${running}::text[])
    FOR UPDATE`;
  if (!held) return { finished: false, released: false };
  const transition = outcomeTransition(outcome.state, held.kill_request as KillMode | null);
  const retryAt = transition === TRANSITIONS.scheduleRetry ? outcome.retryAt ?? null : null;
  const updated = await tx`
    UPDATE jobs SET state = ${transition.to}, run_at = coalesce(${retryAt}::bigint, run_at),
      updated_at = ${outcome.finishedAt}, finished_at = ${outcome.finishedAt},
      exit_code = ${outcome.exitCode}, last_error = ${outcome.error},
      claim_token = NULL, worker_id = NULL, kill_request = NULL
    WHERE id = ${job.id} AND claim_token = ${job.claimToken}
      AND state = ANY(${leaving(transition)}::text[])`;
  if (updated.count === 0) return { finished: false, released: false };
  await tx`
    INSERT INTO job_attempts (job_id, attempt, started_at, finished_at, exit_code, error,
      stdout, stderr, stdout_dropped, stderr_dropped)
    VALUES (${job.id}, ${job.attempts}, ${job.startedAt}, ${outcome.finishedAt},
      ${outcome.exitCode}, ${outcome.error}, ${out.stdout}, ${out.stderr},
      ${out.stdoutDropped}, ${out.stderrDropped})`;
  const released = await cascade(
    tx,
    job.id,
    cascadeOnEnd(transition.to),
    "dead",
    outcome.finishedAt,
  );
  return { finished: true, released };
}

/**
 * Applies a {@linkcode Cascade} to the jobs that run after `id`, and the
 * cascades that starts in turn: an abandoned job is dead, so the jobs after
 * it get what the rules give a death. One statement per step, never one
 * recursive statement: each step must see the jobs enqueued after the ones
 * the step before changed, whose enqueues it may have waited for. Returns
 * whether it released any job.
 */
async function cascade(
  tx: Tx,
  id: string,
  kind: Cascade,
  why: "dead" | "deleted",
  now: number,
): Promise<boolean> {
  if (kind === "release") return await releaseDependents(tx, id, now) > 0;
  if (kind !== "abandon") return false;
  // Breadth first: a step abandons every blocked job after any job of the step before.
  let causes = [{ id, error: abandonedBecause(id, why) }];
  while (causes.length > 0) {
    const abandoned = await tx`
      UPDATE jobs j SET state = ${ABANDON.to}, updated_at = ${now}, finished_at = ${now},
        last_error = c.error
      FROM (
        SELECT DISTINCT ON (d.job_id) d.job_id, cause.error
        FROM unnest(${causes.map((c) => c.id)}::text[], ${causes.map((c) => c.error)}::text[])
          WITH ORDINALITY AS cause(id, error, position)
        JOIN job_dependencies d ON d.depends_on = cause.id AND NOT d.gone
        ORDER BY d.job_id, cause.position
      ) c
      WHERE j.id = c.job_id AND j.state = ANY(${leaving(ABANDON)}::text[])
      RETURNING j.id`;
    if (cascadeOnEnd(ABANDON.to) !== "abandon") break;
    causes = abandoned.map((row) => ({
      id: row.id as string,
      error: abandonedBecause(row.id as string, "dead"),
    }));
  }
  return false;
}

/**
 * Releases the jobs blocked on `id` whose every dependency (still existing)
 * has now completed; returns how many. They are locked first and judged in
 * a later statement: of two dependencies completing at once, the second to
 * take the lock sees the first one's commit, so one of them releases the job.
 */
async function releaseDependents(tx: Tx, id: string, now: number): Promise<number> {
  return await releaseLocked(tx, await lockBlockedDependents(tx, id), now);
}

/**
 * Locks the blocked jobs that run after `id` (oldest first); returns their
 * `seq`. With `ended`, only if `id` has by now ended that way at that time
 * (this transaction ended it): otherwise nothing is locked.
 */
async function lockBlockedDependents(
  tx: Tx,
  id: string,
  ended?: { state: JobState; finishedAt: number },
): Promise<number[]> {
  const endedHere = ended === undefined ? tx`` : tx`
    AND EXISTS (
      SELECT 1 FROM jobs e WHERE e.id = ${id} AND e.state = ${ended.state}
        AND e.finished_at = ${ended.finishedAt} AND e.claim_token IS NULL
    )`;
  const locked = await tx`
    SELECT j.seq FROM jobs j
    WHERE j.id IN (SELECT d.job_id FROM job_dependencies d WHERE d.depends_on = ${id} AND NOT d.gone)
      AND j.state = ANY(${leaving(RELEASE)}::text[]) ${endedHere}
    ORDER BY j.seq FOR UPDATE`;
  return locked.map((row) => row.seq as number);
}

/** The second half of {@linkcode releaseDependents}: judges the locked jobs, releases those due. */
async function releaseLocked(tx: Tx, locked: number[], now: number): Promise<number> {
  if (locked.length === 0) return 0;
  const blocked = leaving(RELEASE);
  const released = await tx`
    UPDATE jobs SET state = ${RELEASE.to}, updated_at = ${now}
    WHERE seq = ANY(${locked}::bigint[])
      AND state = ANY(${blocked}::text[])
      AND NOT EXISTS (
        SELECT 1 FROM job_dependencies d2 JOIN jobs j2 ON j2.id = d2.depends_on
        WHERE d2.job_id = jobs.id AND NOT d2.gone AND j2.state <> ${DEPENDENCY_MET}
      )`;
  return released.count;
}

/** Returns a claimed job to `pending` without counting its attempt; returns whether it did. */
export function releaseJob(conn: PgConnection, job: ClaimedJob, now: number): Promise<boolean> {
  return conn.write(async (tx) => {
    const released = await tx`
      UPDATE jobs SET state = ${TRANSITIONS.release.to}, attempts = attempts - 1,
        claim_token = NULL, worker_id = NULL, updated_at = ${now}, kill_request = NULL
      WHERE id = ${job.id} AND claim_token = ${job.claimToken}
        AND state = ANY(${leaving(TRANSITIONS.release)}::text[])`;
    if (released.count === 0) return false;
    await conn.notify(tx, "jobs");
    return true;
  });
}

/**
 * `dlq retry` (revive) and `retry` (rerun): finished jobs go back to the
 * queue with attempts 0, all or none; a job that must wait for a job it runs
 * after is blocked ({@linkcode mustWaitOnStartOver}). Returns the ids, oldest
 * first. The jobs are locked `FOR UPDATE` and the jobs they run after
 * `FOR SHARE` while deciding, as enqueue does.
 */
export function startOver(
  conn: PgConnection,
  ids: string[] | "all",
  transition: Transition,
  now: number,
): Promise<string[]> {
  return conn.write(async (tx) => {
    const from = leaving(transition);
    // The keys' locks before the rows' (read unlocked: a job's key never
    // changes), in the order an enqueue takes them: the other order could
    // deadlock with an enqueue of a key that runs after one of these jobs.
    const keyed = ids === "all"
      ? await tx`
        SELECT DISTINCT queue, unique_key FROM jobs
        WHERE state = ANY(${from}::text[]) AND unique_key IS NOT NULL`
      : await tx`
        SELECT DISTINCT queue, unique_key FROM jobs
        WHERE id = ANY(${[...new Set(ids)]}::text[]) AND unique_key IS NOT NULL`;
    if (keyed.length > 0) {
      await lockUniqueKeys(
        tx,
        keyed.map((row) => row.queue as string),
        keyed.map((row) => row.unique_key as string),
      );
    }
    let targets: { id: string; state: JobState }[];
    if (ids === "all") {
      const rows = await tx`
        SELECT id, state FROM jobs WHERE state = ANY(${from}::text[]) ORDER BY seq FOR UPDATE`;
      targets = rows.map(target);
    } else {
      const unique = [...new Set(ids)];
      // Oldest first, so that a job started over together with one it runs after finds it waiting.
      const rows = await tx`
        SELECT id, state FROM jobs WHERE id = ANY(${unique}::text[]) ORDER BY seq FOR UPDATE`;
      const present = new Set(rows.map((row) => row.id as string));
      for (const id of unique) if (!present.has(id)) throw new JobNotFoundError(id);
      targets = rows.map(target);
      for (const { id, state } of targets) {
        if (!from.includes(state)) {
          const allowed = transition.from.join(" or ");
          throw new QueueError(`job '${id}' is ${state}; only ${allowed} jobs can be retried`);
        }
      }
    }
    if (targets.length === 0) return [];
    const targetIds = targets.map((t) => t.id);
    await checkUniqueKeysFree(tx, targetIds);
    const dependencyRows = await tx`
      SELECT d.job_id, d.depends_on, j.state FROM job_dependencies d
      JOIN jobs j ON j.id = d.depends_on
      WHERE d.job_id = ANY(${targetIds}::text[]) AND NOT d.gone
      ORDER BY j.seq FOR SHARE OF j`;
    const dependenciesOf = new Map<string, string[]>();
    const states = new Map<string, JobState>();
    for (const row of dependencyRows) {
      const list = dependenciesOf.get(row.job_id as string) ?? [];
      list.push(row.depends_on as string);
      dependenciesOf.set(row.job_id as string, list);
      states.set(row.depends_on as string, row.state as JobState);
    }
    const waiting: string[] = [];
    for (const { id } of targets) {
      // Targets started over earlier in the loop count with their new state, as in SQLite.
      const dependencies = (dependenciesOf.get(id) ?? []).map((dependency): DependencyState => ({
        id: dependency,
        state: states.get(dependency) ?? null,
      }));
      const wait = mustWaitOnStartOver(id, dependencies);
      if (wait) waiting.push(id);
      states.set(id, wait ? TRANSITIONS.block.to : transition.to);
    }
    await tx`
      UPDATE jobs SET attempts = 0, run_at = ${now}, updated_at = ${now},
        state = CASE WHEN id = ANY(${waiting}::text[]) THEN ${TRANSITIONS.block.to}
                     ELSE ${transition.to} END
      WHERE id = ANY(${targetIds}::text[]) AND state = ANY(${from}::text[])`;
    await conn.notify(tx, "jobs");
    return targetIds;
  });
}

/**
 * Refuses to start over a job whose unique key another job holds while
 * waiting or running (another job started over here included), under the
 * lock that enqueues of the key take (pg_enqueue.ts), so that an enqueue
 * and a start-over of one key never both find it free.
 */
const UNIQUE_HOLDING: string[] = [...UNIQUE_HOLDING_STATES];

async function checkUniqueKeysFree(tx: Tx, ids: string[]): Promise<void> {
  const keyed = await tx`
    SELECT id, queue, unique_key FROM jobs
    WHERE id = ANY(${ids}::text[]) AND unique_key IS NOT NULL ORDER BY seq`;
  if (keyed.length === 0) return;
  const queues = keyed.map((row) => row.queue as string);
  const keys = keyed.map((row) => row.unique_key as string);
  await lockUniqueKeys(tx, queues, keys);
  const holders = await tx`
    SELECT id, queue, unique_key, state FROM jobs
    WHERE (queue, unique_key) IN (SELECT * FROM unnest(${queues}::text[], ${keys}::text[]))
      AND state = ANY(${UNIQUE_HOLDING}::text[])`;
  const holderOf = new Map<string, { id: string; state: JobState; startedOverToo?: boolean }>(
    holders.map((row) => [
      `${row.queue}\n${row.unique_key}`,
      { id: row.id as string, state: row.state as JobState },
    ]),
  );
  for (const row of keyed) {
    const name = `${row.queue}\n${row.unique_key}`;
    const holder = holderOf.get(name);
    if (holder !== undefined) {
      throw uniqueKeyHeldOnStartOver(
        row.id as string,
        row.queue as string,
        row.unique_key as string,
        holder,
      );
    }
    holderOf.set(name, {
      id: row.id as string,
      state: TRANSITIONS.rerun.to,
      startedOverToo: true,
    });
  }
}

function target(row: PgRow): { id: string; state: JobState } {
  return { id: row.id as string, state: row.state as JobState };
}

/**
 * Deletes jobs that are not running, with their history: by ids (all must
 * exist and not run, or nothing changes), or every job in some states in
 * batches. Jobs that ran after a deleted one follow {@linkcode cascadeOnDelete}.
 * The jobs are locked before their state decides, and the cascade runs
 * before the delete (the delete marks the job gone in job_dependencies).
 */
export async function deleteJobs(
  conn: PgConnection,
  target: DeleteTarget,
  now: number,
): Promise<number> {
  if ("ids" in target) {
    return await conn.write(async (tx) => {
      const ids = [...new Set(target.ids)];
      const rows = await tx`
        SELECT id, state FROM jobs WHERE id = ANY(${ids}::text[]) ORDER BY seq FOR UPDATE`;
      const states = new Map(rows.map((row) => [row.id as string, row.state as JobState]));
      for (const id of ids) {
        const state = states.get(id);
        if (state === undefined) throw new JobNotFoundError(id);
        if (!DELETABLE_STATES.includes(state)) {
          throw new QueueError(`job '${id}' is running; kill it first ('queuectl kill ${id}')`);
        }
      }
      await deleteLocked(tx, ids.map((id) => ({ id, state: states.get(id)! })), now);
      return ids.length;
    });
  }
  for (const state of target.states) {
    if (!DELETABLE_STATES.includes(state)) throw new QueueError(`cannot delete ${state} jobs`);
  }
  let total = 0;
  // Blocked jobs first: deleting the jobs they wait on would otherwise send them
  // to the DLQ before their turn came.
  const states = [...target.states].sort((a, b) =>
    Number(b === "blocked") - Number(a === "blocked")
  );
  const before = target.changedBefore ?? Number.MAX_SAFE_INTEGER;
  for (const state of states) {
    while (true) {
      const deleted = await conn.write(async (tx) => {
        const rows = await tx`
          SELECT id FROM jobs WHERE state = ${state} AND updated_at < ${before}
          ORDER BY seq LIMIT ${DELETE_BATCH} FOR UPDATE`;
        await deleteLocked(tx, rows.map((row) => ({ id: row.id as string, state })), now);
        return rows.length;
      });
      total += deleted;
      if (deleted < DELETE_BATCH) break;
    }
  }
  return total;
}

/**
 * Deletes locked jobs in order, each after its cascade. Jobs that no job
 * runs after cascade nothing, whatever their state: they go in one statement.
 */
async function deleteLocked(
  tx: Tx,
  jobs: readonly { id: string; state: JobState }[],
  now: number,
): Promise<void> {
  if (jobs.length === 0) return;
  const ids = jobs.map((job) => job.id);
  const withDependents = new Set(
    (await tx`
      SELECT DISTINCT depends_on FROM job_dependencies
      WHERE depends_on = ANY(${ids}::text[]) AND NOT gone`).map((row) => row.depends_on as string),
  );
  for (const { id, state } of jobs) {
    if (!withDependents.has(id)) continue;
    await cascade(tx, id, cascadeOnDelete(state), "deleted", now);
    await tx`DELETE FROM jobs WHERE id = ${id}`;
  }
  const rest = ids.filter((id) => !withDependents.has(id));
  if (rest.length > 0) await tx`DELETE FROM jobs WHERE id = ANY(${rest}::text[])`;
}
