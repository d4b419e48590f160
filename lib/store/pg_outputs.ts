/**
 * The PostgreSQL backend: job output, what finished runs captured
 * (`job_attempts`) and the newest output of a running job (`live_output`),
 * which its worker rewrites while it runs so that `logs --follow` can show
 * it, and which ends with the run (a trigger deletes it when the job leaves
 * `processing`).
 *
 * @module
 */

import type { AttemptOutput, ClaimedJob } from "../job.ts";
import type { PgConnection } from "./pg_connection.ts";
import { rowToLiveOutput, rowToNewestOutput, rowToOutput } from "./rows.ts";
import type { LiveOutput, NewestOutput } from "./store.ts";

/**
 * How long a live-output write waits for a lock before it gives up. Live
 * output is a convenience the worker skips when the job is busy (the run's
 * outcome being stored, a kill): the runner waits for this write before it
 * stores the outcome, so it must never wait long.
 */
const LIVE_OUTPUT_LOCK_TIMEOUT = "100ms";

/**
 * Stores the newest output of a running job while it still runs under its
 * claim; skips (throws) when another writer holds the job for more than a
 * moment. Returns whether it stored it.
 */
export function recordLiveOutput(
  conn: PgConnection,
  job: ClaimedJob,
  output: Omit<LiveOutput, "claimToken" | "attempt">,
): Promise<boolean> {
  return conn.write(async (tx) => {
    await tx.unsafe(`SET LOCAL lock_timeout = '${LIVE_OUTPUT_LOCK_TIMEOUT}'`);
    // The job's row locked in share mode fences the write by the claim: an
    // outcome stored meanwhile (which ends the live row) waits for this
    // commit, or has committed and changed the claim, and then nothing is
    // written.
    const [held] = await tx`
      SELECT 1 FROM jobs WHERE id = ${job.id} AND claim_token = ${job.claimToken} FOR SHARE`;
    if (held === undefined) return false;
    await tx`
      INSERT INTO live_output (job_id, claim_token, attempt, stdout, stderr, stdout_total,
        stderr_total, updated_at)
      VALUES (${job.id}, ${job.claimToken}, ${job.attempts}, ${output.stdout}, ${output.stderr},
        ${output.stdoutTotal}, ${output.stderrTotal}, ${output.updatedAt})
      ON CONFLICT (job_id) DO UPDATE SET claim_token = excluded.claim_token,
        attempt = excluded.attempt, stdout = excluded.stdout, stderr = excluded.stderr,
        stdout_total = excluded.stdout_total, stderr_total = excluded.stderr_total,
        updated_at = excluded.updated_at`;
    return true;
  });
}

/** The newest output of a running job, if it has recorded any. */
export function liveOutput(conn: PgConnection, id: string): Promise<LiveOutput | undefined> {
  return conn.read(async (sql) => {
    const [row] = await sql`SELECT * FROM live_output WHERE job_id = ${id}`;
    return row ? rowToLiveOutput(row) : undefined;
  });
}

/** The output captured from the latest finished run of a job. */
export function latestOutput(conn: PgConnection, id: string): Promise<AttemptOutput | undefined> {
  return conn.read(async (sql) => {
    const [row] = await sql`
      SELECT attempt, stdout, stderr, stdout_dropped, stderr_dropped FROM job_attempts
      WHERE job_id = ${id} ORDER BY seq DESC LIMIT 1`;
    return row && rowToOutput(row);
  });
}

/** The output captured from a job's newest finished run numbered `attempt`. */
export function attemptOutput(
  conn: PgConnection,
  id: string,
  attempt: number,
): Promise<AttemptOutput | undefined> {
  return conn.read(async (sql) => {
    const [row] = await sql`
      SELECT attempt, stdout, stderr, stdout_dropped, stderr_dropped FROM job_attempts
      WHERE job_id = ${id} AND attempt = ${attempt} ORDER BY seq DESC LIMIT 1`;
    return row && rowToOutput(row);
  });
}

/** The output of the newest run of each of these jobs (running or finished), in one read. */
export function newestOutputs(
  conn: PgConnection,
  ids: readonly string[],
): Promise<Map<string, NewestOutput>> {
  return conn.read(async (sql) => {
    const outputs = new Map<string, NewestOutput>();
    if (ids.length === 0) return outputs;
    // One statement for every id, in the order given: a running job's live
    // row, else its latest finished run (one seek per job through
    // job_attempts_by_job).
    const rows = await sql`
      SELECT j.id, j.state, j.attempts AS current_attempt,
        l.attempt AS live_attempt, l.stdout AS live_stdout, l.stderr AS live_stderr,
        l.stdout_total, l.stderr_total,
        a.attempt, a.stdout, a.stderr, a.stdout_dropped, a.stderr_dropped
      FROM unnest(${ids as string[]}::text[]) WITH ORDINALITY AS k (id, n)
      JOIN jobs j ON j.id = k.id
      LEFT JOIN live_output l ON j.state = 'processing' AND l.job_id = j.id
      LEFT JOIN LATERAL (
        SELECT attempt, stdout, stderr, stdout_dropped, stderr_dropped FROM job_attempts
        WHERE job_id = j.id AND j.state <> 'processing' ORDER BY seq DESC LIMIT 1
      ) a ON true
      ORDER BY k.n`;
    for (const row of rows) {
      const output = rowToNewestOutput(row);
      if (output !== undefined) outputs.set(row.id as string, output);
    }
    return outputs;
  });
}
