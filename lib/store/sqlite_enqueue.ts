/**
 * How jobs enter the queue: one transaction that inserts them, each in the
 * initial state the dependency rules of lib/store/rules.ts give it, and
 * counts them per queue and state. Apart from sqlite_outcomes.ts (what
 * happens to jobs afterwards) because it is all that `enqueue`, the most
 * frequent command, needs of the two: the rest is compiled on first use.
 *
 * @module
 */

import { DuplicateJobError } from "../errors.ts";
import type { NewJob } from "../job.ts";
import type { JobState } from "../states.ts";
import { envColumn } from "./rows.ts";
import { initialState, uniqueHolder, uniqueWindowStart } from "./rules.ts";
import { UNFINISHED } from "./sqlite_rows.ts";
import type { UniqueKeyHeld } from "./store.ts";
import {
  errcode,
  type Row,
  SQLITE_CONSTRAINT_UNIQUE,
  type SqliteConnection,
} from "./sqlite_connection.ts";

/**
 * Adds jobs in one transaction, each in the state its dependencies give it;
 * all or none. A job whose unique key is held is left out and named in the
 * answer: SQLite has one writer at a time, so the key's holders read inside
 * the write transaction cannot change before the insert.
 */
export function enqueue(
  conn: SqliteConnection,
  jobs: NewJob[],
  now: number,
): Promise<UniqueKeyHeld[]> {
  return conn.write(() => insertJobs(conn, jobs, now));
}

/** {@linkcode enqueue} inside a write transaction already begun (a schedule's firing's). */
export function insertJobs(conn: SqliteConnection, jobs: NewJob[], now: number): UniqueKeyHeld[] {
  const insert = conn.sql(
    `INSERT INTO jobs (id, queue, command, state, max_retries, priority, run_at, created_at,
       updated_at, finished_at, last_error, timeout_ms, cwd, env, unique_key)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const addDependency = conn.sql(
    "INSERT OR IGNORE INTO job_dependencies (job_id, depends_on) VALUES (?, ?)",
  );
  const findState = conn.sql("SELECT state FROM jobs WHERE id = ?");
  const stateOf = (id: string) =>
    ((findState.get(id) as Row | undefined)?.state as JobState | undefined) ?? null;
  const held: UniqueKeyHeld[] = [];
  // Inserts are counted once per queue and state, not by a per-row trigger (see migration 2).
  const counts = new Map<string, { queue: string; state: JobState; n: number }>();
  for (const [index, job] of jobs.entries()) {
    if (job.uniqueKey != null) {
      const holder = findUniqueHolder(conn, job.queue, job.uniqueKey, now, job.uniqueForMs ?? 0);
      if (holder !== undefined) {
        held.push({ index, holder: holder.id, holderState: holder.state });
        continue;
      }
    }
    // Jobs earlier in the batch count: they are inserted already.
    const { state, lastError } = initialState(job.id, job.after, stateOf);
    try {
      insert.run(
        job.id,
        job.queue,
        job.command,
        state,
        job.maxRetries,
        job.priority,
        job.runAt,
        now,
        now,
        state === "dead" ? now : null,
        lastError,
        job.timeoutMs,
        job.cwd,
        envColumn(job.env),
        job.uniqueKey ?? null,
      );
    } catch (error) {
      if (errcode(error) === SQLITE_CONSTRAINT_UNIQUE && /\.id\b/.test(String(error))) {
        throw new DuplicateJobError(job.id);
      }
      throw error;
    }
    for (const dependency of job.after) addDependency.run(job.id, dependency);
    const key = `${job.queue}\0${state}`;
    const entry = counts.get(key) ?? { queue: job.queue, state, n: 0 };
    entry.n++;
    counts.set(key, entry);
  }
  for (const { queue, state, n } of counts.values()) countInsert(conn, queue, state, n);
  return held;
}

/** The job holding a unique key against an enqueue at `now`, if any (rules.ts). */
function findUniqueHolder(
  conn: SqliteConnection,
  queue: string,
  key: string,
  now: number,
  uniqueForMs: number,
) {
  // The unfinished holder (at most one, by the unique index) first, else the
  // latest finish inside the window.
  const rows = conn.sql(
    `SELECT id, state, finished_at FROM jobs INDEXED BY jobs_by_unique_key
     WHERE queue = ? AND unique_key = ? AND (state IN (${UNFINISHED}) OR finished_at > ?)
     ORDER BY state IN (${UNFINISHED}) DESC, finished_at DESC LIMIT 1`,
  ).all(queue, key, uniqueWindowStart(now, uniqueForMs)) as Row[];
  return uniqueHolder(
    rows.map((row) => ({
      id: row.id as string,
      state: row.state as JobState,
      finishedAt: row.finished_at as number | null,
    })),
    now,
    uniqueForMs,
  );
}

function countInsert(conn: SqliteConnection, queue: string, state: JobState, n: number): void {
  conn.sql("INSERT INTO queues (name) VALUES (?) ON CONFLICT (name) DO NOTHING").run(queue);
  conn.sql(
    `INSERT INTO queue_counts (queue, state, n) VALUES (?, ?, ?)
     ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n`,
  ).run(queue, state, n);
}
