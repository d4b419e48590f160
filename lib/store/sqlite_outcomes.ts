/**
 * How jobs' runs end and what follows, with the dependency rules of
 * lib/store/rules.ts applied in the same transaction: a run's outcome (the
 * kill override, then the cascade to the jobs that run after it), giving a
 * claimed job back, starting finished jobs over, and deleting jobs. How
 * jobs enter the queue is sqlite_enqueue.ts.
 *
 * The rules decide in TypeScript from facts read here; the cascade runs as
 * SQL inside the transaction, built from the rules' transitions and
 * {@linkcode DEPENDENCY_MET}, so that the SQL cannot drift from them.
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
import { DELETE_BATCH, type Row, type SqliteConnection } from "./sqlite_connection.ts";
import { leaving, sqlList } from "./sqlite_rows.ts";
import type {
  AttemptOutcome,
  ClaimTime,
  DeleteTarget,
  FinishAndClaim,
  KillMode,
  QueueSelection,
} from "./store.ts";
import { timeOf } from "../timing.ts";

/**
 * Records the end of a run while the job is still `processing` under its
 * claim; returns whether it did. The kill asked for the run, if any, may
 * override the outcome ({@linkcode outcomeTransition}).
 */
export function finishAttempt(
  conn: SqliteConnection,
  job: ClaimedJob,
  outcome: AttemptOutcome,
): Promise<boolean> {
  return conn.write(() => finishAttemptInTransaction(conn, job, outcome));
}

/**
 * {@linkcode finishAttempt}, then a claim for `workerId`, in one write
 * transaction (`Store.finishAndClaim`).
 */
export async function finishAndClaim(
  conn: SqliteConnection,
  job: ClaimedJob,
  outcome: AttemptOutcome,
  workerId: string,
  now: ClaimTime,
  selection?: QueueSelection,
  token?: string,
): Promise<FinishAndClaim> {
  // The claim planner is compiled on its first use, not with `enqueue` (see sqlite_store.ts).
  const { claimInTransaction } = await import("./sqlite_claim.ts");
  return await conn.write(() => {
    const recorded = finishAttemptInTransaction(conn, job, outcome);
    return { recorded, next: claimInTransaction(conn, workerId, timeOf(now), selection, token) };
  });
}

/**
 * Records the ends of several runs in one write, each as
 * {@linkcode finishAttempt}; returns the jobs whose end it recorded.
 */
export function finishAttempts(
  conn: SqliteConnection,
  settlements: readonly { job: ClaimedJob; outcome: AttemptOutcome }[],
): Promise<ClaimedJob[]> {
  return conn.write(() =>
    settlements.filter(({ job, outcome }) => finishAttemptInTransaction(conn, job, outcome))
      .map(({ job }) => job)
  );
}

/** The body of {@linkcode finishAttempt}, inside a write transaction. */
function finishAttemptInTransaction(
  conn: SqliteConnection,
  job: ClaimedJob,
  outcome: AttemptOutcome,
): boolean {
  const update = conn.sql(
    `UPDATE jobs SET state = :state, run_at = coalesce(:retryAt, run_at), updated_at = :now,
       finished_at = :now, exit_code = :exitCode, last_error = :error,
       claim_token = NULL, worker_id = NULL, kill_request = NULL
     WHERE id = :id AND claim_token = :token AND state = 'processing'`,
  );
  const killRequest = conn.sql("SELECT kill_request FROM jobs WHERE id = ? AND claim_token = ?");
  const record = conn.sql(
    `INSERT INTO job_attempts (job_id, attempt, started_at, finished_at, exit_code, error,
       stdout, stderr, stdout_dropped, stderr_dropped)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const request = killRequest.get(job.id, job.claimToken) as Row | undefined;
  const kill = (request?.kill_request as KillMode | null | undefined) ?? null;
  const transition = outcomeTransition(outcome.state, kill);
  const { changes } = update.run({
    state: transition.to,
    retryAt: transition === TRANSITIONS.scheduleRetry ? outcome.retryAt ?? null : null,
    now: outcome.finishedAt,
    exitCode: outcome.exitCode,
    error: outcome.error,
    id: job.id,
    token: job.claimToken,
  });
  if (changes === 0) return false;
  const out = outcome.output;
  record.run(
    job.id,
    job.attempts,
    job.startedAt,
    outcome.finishedAt,
    outcome.exitCode,
    outcome.error,
    out.stdout,
    out.stderr,
    out.stdoutDropped,
    out.stderrDropped,
  );
  cascade(conn, job.id, cascadeOnEnd(transition.to), "dead", outcome.finishedAt);
  return true;
}

/**
 * Applies a {@linkcode Cascade} to the jobs that run after `id`, and the
 * cascades that starts in turn: an abandoned job is dead, so the jobs after
 * it get what the rules give a death. A worklist, not recursion: a long chain
 * of jobs must not overflow the call stack.
 */
function cascade(
  conn: SqliteConnection,
  id: string,
  kind: Cascade,
  why: "dead" | "deleted",
  now: number,
): void {
  const worklist = [{ id, kind, why }];
  while (worklist.length > 0) {
    const next = worklist.pop()!;
    if (next.kind === "release") releaseDependents(conn, next.id, now);
    if (next.kind !== "abandon") continue;
    for (const abandoned of abandonDependents(conn, next.id, next.why, now)) {
      worklist.push({ id: abandoned, kind: cascadeOnEnd(ABANDON.to), why: "dead" });
    }
  }
}

// The unary + in "+state IN (…)" keeps SQLite from searching jobs_by_state (every
// blocked job) instead of looking the few dependents up by id: that made every
// finished job cost a scan of all blocked ones.

/** Releases the jobs blocked on `id` whose every dependency (still existing) has now completed. */
function releaseDependents(conn: SqliteConnection, id: string, now: number): void {
  const release = conn.sql(
    `UPDATE jobs SET state = '${RELEASE.to}', updated_at = :now
     WHERE +${leaving(RELEASE)} AND id IN (
       SELECT d.job_id FROM job_dependencies d INDEXED BY job_dependencies_by_dependency
       WHERE d.depends_on = :id AND NOT d.gone
     ) AND NOT EXISTS (
       SELECT 1 FROM job_dependencies d2 JOIN jobs j2 ON j2.id = d2.depends_on
       WHERE d2.job_id = jobs.id AND NOT d2.gone AND j2.state <> '${DEPENDENCY_MET}'
     )`,
  );
  release.run({ now, id });
}

/** Sends the jobs blocked on `id` to the DLQ; returns their ids. */
function abandonDependents(
  conn: SqliteConnection,
  id: string,
  why: "dead" | "deleted",
  now: number,
): string[] {
  const abandon = conn.sql(
    `UPDATE jobs SET state = '${ABANDON.to}', updated_at = :now, finished_at = :now,
       last_error = :error
     WHERE +${leaving(ABANDON)} AND id IN (
       SELECT d.job_id FROM job_dependencies d INDEXED BY job_dependencies_by_dependency
       WHERE d.depends_on = :id AND NOT d.gone
     )
     RETURNING id`,
  );
  const rows = abandon.all({ now, id, error: abandonedBecause(id, why) }) as Row[];
  return rows.map((row) => row.id as string);
}

/** Returns a claimed job to `pending` without counting its attempt; returns whether it did. */
export function releaseJob(conn: SqliteConnection, job: ClaimedJob, now: number): Promise<boolean> {
  const release = conn.sql(
    `UPDATE jobs SET state = '${TRANSITIONS.release.to}', attempts = attempts - 1,
       claim_token = NULL, worker_id = NULL, updated_at = :now, kill_request = NULL
     WHERE id = :id AND claim_token = :token AND ${leaving(TRANSITIONS.release)}`,
  );
  return conn.write(() => release.run({ now, id: job.id, token: job.claimToken }).changes > 0);
}

/**
 * `dlq retry` (revive) and `retry` (rerun): finished jobs go back to the
 * queue with attempts 0, all or none; a job that must wait for a job it runs
 * after is blocked ({@linkcode mustWaitOnStartOver}). Returns the ids.
 */
export function startOver(
  conn: SqliteConnection,
  ids: string[] | "all",
  transition: Transition,
  now: number,
): Promise<string[]> {
  const update = conn.sql(
    `UPDATE jobs SET state = '${transition.to}', attempts = 0, run_at = :now, updated_at = :now
     WHERE id = :id AND ${leaving(transition)}`,
  );
  const block = conn.sql(
    `UPDATE jobs SET state = '${TRANSITIONS.block.to}' WHERE id = ? AND ${
      leaving(TRANSITIONS.block)
    }`,
  );
  const dependencyStates = conn.sql(
    `SELECT d.depends_on AS id, j.state FROM job_dependencies d
     JOIN jobs j ON j.id = d.depends_on WHERE d.job_id = ? AND NOT d.gone`,
  );
  // The waiting or running job that holds the unique key of a job, if any (rules.ts).
  const uniqueKeyHolder = conn.sql(
    `SELECT h.id, h.state, h.queue, h.unique_key FROM jobs t
     JOIN jobs h INDEXED BY jobs_unique_unfinished
       ON h.queue = t.queue AND h.unique_key = t.unique_key
     WHERE t.id = ? AND t.unique_key IS NOT NULL AND h.id != t.id
       AND h.state IN (${sqlList(UNIQUE_HOLDING_STATES)})`,
  );
  return conn.write(() => {
    let targets: string[];
    if (ids === "all") {
      targets = (conn.sql(`SELECT id FROM jobs WHERE ${leaving(transition)} ORDER BY seq`)
        .all() as Row[]).map((r) => r.id as string);
    } else {
      // Oldest first, so that a job started over together with one it runs after finds it waiting.
      const seqOf = conn.sql("SELECT seq, state FROM jobs WHERE id = ?");
      const found = [...new Set(ids)].map((id) => {
        const row = seqOf.get(id) as Row | undefined;
        if (!row) throw new JobNotFoundError(id);
        return { id, seq: row.seq as number };
      });
      targets = found.sort((a, b) => a.seq - b.seq).map((t) => t.id);
    }
    const startedOver = new Set<string>();
    for (const id of targets) {
      // Targets started over earlier in the loop hold their keys already.
      const holder = uniqueKeyHolder.get(id) as Row | undefined;
      if (holder !== undefined) {
        throw uniqueKeyHeldOnStartOver(id, holder.queue as string, holder.unique_key as string, {
          id: holder.id as string,
          state: holder.state as JobState,
          startedOverToo: startedOver.has(holder.id as string),
        });
      }
      startedOver.add(id);
      if (update.run({ now, id }).changes !== 1) {
        const row = conn.sql("SELECT state FROM jobs WHERE id = ?").get(id) as Row;
        const allowed = transition.from.join(" or ");
        throw new QueueError(`job '${id}' is ${row.state}; only ${allowed} jobs can be retried`);
      }
      const dependencies = (dependencyStates.all(id) as Row[]).map((row): DependencyState => ({
        id: row.id as string,
        state: row.state as JobState,
      }));
      if (mustWaitOnStartOver(id, dependencies)) block.run(id);
    }
    return targets;
  });
}

/**
 * Deletes jobs that are not running, with their history: by ids (all must
 * exist and not run, or nothing changes), or every job in some states in
 * batches. Jobs that ran after a deleted one follow {@linkcode cascadeOnDelete}.
 */
export async function deleteJobs(
  conn: SqliteConnection,
  target: DeleteTarget,
  now: number,
): Promise<number> {
  const remove = conn.sql("DELETE FROM jobs WHERE id = ?");
  // Dependents are found through job_dependencies, where the delete itself
  // marks the job gone (migration 4): the cascade runs first.
  const deleteOne = (id: string, state: JobState) => {
    cascade(conn, id, cascadeOnDelete(state), "deleted", now);
    remove.run(id);
  };
  if ("ids" in target) {
    return await conn.write(() => {
      const ids = [...new Set(target.ids)];
      const states = ids.map((id) => {
        const row = conn.sql("SELECT state FROM jobs WHERE id = ?").get(id) as Row | undefined;
        if (!row) throw new JobNotFoundError(id);
        if (!DELETABLE_STATES.includes(row.state as JobState)) {
          throw new QueueError(`job '${id}' is running; kill it first ('queuectl kill ${id}')`);
        }
        return row.state as JobState;
      });
      ids.forEach((id, i) => deleteOne(id, states[i]));
      return ids.length;
    });
  }
  for (const state of target.states) {
    if (!DELETABLE_STATES.includes(state)) throw new QueueError(`cannot delete ${state} jobs`);
  }
  const batch = conn.sql(
    `SELECT id FROM jobs INDEXED BY jobs_by_state WHERE state = ? AND updated_at < ?
     ORDER BY seq LIMIT ${DELETE_BATCH}`,
  );
  let total = 0;
  // Blocked jobs first: deleting the jobs they wait on would otherwise send them
  // to the DLQ before their turn came.
  const states = [...target.states].sort((a, b) =>
    Number(b === "blocked") - Number(a === "blocked")
  );
  for (const state of states) {
    while (true) {
      const deleted = await conn.write(() => {
        const rows = batch.all(state, target.changedBefore ?? Number.MAX_SAFE_INTEGER) as Row[];
        for (const row of rows) deleteOne(row.id as string, state);
        return rows.length;
      });
      total += deleted;
      if (deleted < DELETE_BATCH) break;
    }
  }
  return total;
}
