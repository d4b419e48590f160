/**
 * Job output: what finished runs captured (`job_attempts`), and the newest
 * output of a running job (`live_output`), which its worker rewrites while it
 * runs so that `logs --follow` can show it, and which ends with the run.
 *
 * @module
 */

import type { AttemptOutput, ClaimedJob } from "../job.ts";
import type { Row, SqliteConnection } from "./sqlite_connection.ts";
import { rowToLiveOutput, rowToNewestOutput, rowToOutput } from "./rows.ts";
import type { LiveOutput, NewestOutput } from "./store.ts";

/**
 * Stores the newest output of a running job while it still runs under its
 * claim; skips (throws) when another writer holds the lock for more than a
 * moment. Returns whether it stored it.
 */
export async function recordLiveOutput(
  conn: SqliteConnection,
  job: ClaimedJob,
  output: Omit<LiveOutput, "claimToken" | "attempt">,
): Promise<boolean> {
  const upsert = conn.sql(
    `INSERT INTO live_output (job_id, claim_token, attempt, stdout, stderr, stdout_total,
       stderr_total, updated_at)
     SELECT :id, :token, :attempt, :stdout, :stderr, :stdoutTotal, :stderrTotal, :now
     WHERE EXISTS (SELECT 1 FROM jobs WHERE id = :id AND claim_token = :token)
     ON CONFLICT (job_id) DO UPDATE SET claim_token = excluded.claim_token,
       attempt = excluded.attempt, stdout = excluded.stdout, stderr = excluded.stderr,
       stdout_total = excluded.stdout_total, stderr_total = excluded.stderr_total,
       updated_at = excluded.updated_at`,
  );
  // Awaited in an async function so that a busy lock rejects the promise, not throws.
  return await conn.writeIfFree(() =>
    upsert.run({
      id: job.id,
      token: job.claimToken,
      attempt: job.attempts,
      stdout: output.stdout,
      stderr: output.stderr,
      stdoutTotal: output.stdoutTotal,
      stderrTotal: output.stderrTotal,
      now: output.updatedAt,
    }).changes > 0
  );
}

/** The newest output of a running job, if it has recorded any. */
export function liveOutput(conn: SqliteConnection, id: string): Promise<LiveOutput | undefined> {
  return conn.read(() => {
    const row = conn.sql("SELECT * FROM live_output WHERE job_id = ?").get(id) as Row | undefined;
    return row ? rowToLiveOutput(row) : undefined;
  });
}

/** The output captured from the latest finished run of a job. */
export function latestOutput(
  conn: SqliteConnection,
  id: string,
): Promise<AttemptOutput | undefined> {
  return conn.read(() => {
    const row = conn.sql(
      `SELECT attempt, stdout, stderr, stdout_dropped, stderr_dropped FROM job_attempts
       WHERE job_id = ? ORDER BY seq DESC LIMIT 1`,
    ).get(id) as Row | undefined;
    return row && rowToOutput(row);
  });
}

/** The output captured from a job's newest finished run numbered `attempt`. */
export function attemptOutput(
  conn: SqliteConnection,
  id: string,
  attempt: number,
): Promise<AttemptOutput | undefined> {
  return conn.read(() => {
    const row = conn.sql(
      `SELECT attempt, stdout, stderr, stdout_dropped, stderr_dropped FROM job_attempts
       INDEXED BY job_attempts_by_job WHERE job_id = ? AND attempt = ? ORDER BY seq DESC LIMIT 1`,
    ).get(id, attempt) as Row | undefined;
    return row && rowToOutput(row);
  });
}

/** The output of the newest run of each of these jobs (running or finished), in one read. */
export function newestOutputs(
  conn: SqliteConnection,
  ids: readonly string[],
): Promise<Map<string, NewestOutput>> {
  // One statement for every id: a running job's live row, else its latest
  // finished run (found through job_attempts_by_job, one seek per job).
  const newest = conn.sql(
    `SELECT j.id, j.state, j.attempts AS current_attempt,
       l.attempt AS live_attempt, l.stdout AS live_stdout, l.stderr AS live_stderr,
       l.stdout_total, l.stderr_total,
       a.attempt, a.stdout, a.stderr, a.stdout_dropped, a.stderr_dropped
     FROM json_each(:ids) AS k
     JOIN jobs j ON j.id = k.value
     LEFT JOIN live_output l ON j.state = 'processing' AND l.job_id = j.id
     LEFT JOIN job_attempts a ON j.state <> 'processing' AND a.seq = (
       SELECT max(seq) FROM job_attempts INDEXED BY job_attempts_by_job WHERE job_id = j.id
     )`,
  );
  return conn.read(() => {
    const outputs = new Map<string, NewestOutput>();
    for (const row of newest.all({ ids: JSON.stringify(ids) }) as Row[]) {
      const output = rowToNewestOutput(row);
      if (output !== undefined) outputs.set(row.id as string, output);
    }
    return outputs;
  });
}
