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
import { initialState } from "./rules.ts";
import {
  errcode,
  type Row,
  SQLITE_CONSTRAINT_UNIQUE,
  type SqliteConnection,
} from "./sqlite_connection.ts";

/** Adds jobs in one transaction, each in the state its dependencies give it; all or none. */
export function enqueue(conn: SqliteConnection, jobs: NewJob[], now: number): Promise<void> {
  return conn.write(() => insertJobs(conn, jobs, now));
}

/** {@linkcode enqueue} inside a write transaction already begun (a schedule's firing's). */
export function insertJobs(conn: SqliteConnection, jobs: NewJob[], now: number): void {
  const insert = conn.sql(
    `INSERT INTO jobs (id, queue, command, state, max_retries, priority, run_at, created_at,
       updated_at, finished_at, last_error, timeout_ms, cwd)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const addDependency = conn.sql(
    "INSERT OR IGNORE INTO job_dependencies (job_id, depends_on) VALUES (?, ?)",
  );
  const findState = conn.sql("SELECT state FROM jobs WHERE id = ?");
  const stateOf = (id: string) =>
    ((findState.get(id) as Row | undefined)?.state as JobState | undefined) ?? null;
  // A block: the former body of enqueue's transaction, kept as it was.
  {
    // Inserts are counted once per queue and state, not by a per-row trigger (see migration 2).
    const counts = new Map<string, { queue: string; state: JobState; n: number }>();
    for (const job of jobs) {
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
        );
      } catch (error) {
        if (errcode(error) === SQLITE_CONSTRAINT_UNIQUE) throw new DuplicateJobError(job.id);
        throw error;
      }
      for (const dependency of job.after) addDependency.run(job.id, dependency);
      const key = `${job.queue}\0${state}`;
      const entry = counts.get(key) ?? { queue: job.queue, state, n: 0 };
      entry.n++;
      counts.set(key, entry);
    }
    for (const { queue, state, n } of counts.values()) countInsert(conn, queue, state, n);
  }
}

function countInsert(conn: SqliteConnection, queue: string, state: JobState, n: number): void {
  conn.sql("INSERT INTO queues (name) VALUES (?) ON CONFLICT (name) DO NOTHING").run(queue);
  conn.sql(
    `INSERT INTO queue_counts (queue, state, n) VALUES (?, ?, ?)
     ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n`,
  ).run(queue, state, n);
}
