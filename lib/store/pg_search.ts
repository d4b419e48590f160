/**
 * The PostgreSQL backend: finding jobs by text in their id or command, and
 * from a place in the newest-first list (a page's cursor), for `listJobs`
 * and `countMatching`.
 *
 * Text of `INDEXED_TEXT_LENGTH` characters or more is `LIKE '%text%'`, which
 * the GIN index of trigrams `jobs_text` answers (schema migration 7, where
 * pg_trgm could be installed); the planner reads jobs newest first instead
 * when the text is common, as a page then fills early. Shorter text has no
 * trigram: `strpos`, reading jobs newest first.
 *
 * @module
 */

import type { Job } from "../job.ts";
import type { PgConnection, PgRow, Sql } from "./pg_connection.ts";
import { INDEXED_TEXT_LENGTH } from "./rules.ts";
import { rowToJob } from "./rows.ts";
import type { JobFilter, JobPosition } from "./store.ts";

/** `text` as a LIKE pattern that matches it anywhere, its `%`, `_` and `\` taken literally. */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The condition that a job's id or command holds the filter's text (none without text). */
function holdsText(sql: Sql, text: string) {
  if (text === "") return sql``;
  if ([...text].length < INDEXED_TEXT_LENGTH) {
    return sql`AND (strpos(id, ${text}) > 0 OR strpos(command, ${text}) > 0)`;
  }
  const pattern = containsPattern(text);
  return sql`AND (id LIKE ${pattern} OR command LIKE ${pattern})`;
}

/** The conditions on state and queue. */
function stateAndQueue(sql: Sql, filter: JobFilter) {
  const states = [...new Set(filter.states ?? [])];
  return sql`${states.length === 0 ? sql`` : sql`AND state = ANY(${states})`} ${
    filter.queue === undefined ? sql`` : sql`AND queue = ${filter.queue}`
  }`;
}

/**
 * The seq the list goes on below from `position` (exclusive); undefined
 * when no job is left there.
 */
async function positionSeq(sql: Sql, position: JobPosition): Promise<number | undefined> {
  const [anchor] = await sql`SELECT min(seq) AS seq FROM jobs WHERE id = ANY(${[
    ...position.ids,
  ]})`;
  if (anchor.seq !== null) return anchor.seq as number;
  // Every job the cursor named is gone: the newest job created no later than them.
  const [older] = await sql`
    SELECT seq FROM jobs WHERE created_at <= ${position.createdAt} ORDER BY seq DESC LIMIT 1`;
  return older === undefined ? undefined : (older.seq as number) + 1;
}

/** Jobs newest first matching a filter with text or a position. */
export function searchJobs(conn: PgConnection, filter: JobFilter): Promise<Job[]> {
  return conn.read(async (sql) => {
    let below = sql``;
    if (filter.after !== undefined) {
      const before = await positionSeq(sql, filter.after);
      if (before === undefined) return [];
      below = sql`AND seq < ${before}`;
    }
    const rows: PgRow[] = await sql`
      SELECT * FROM jobs
      WHERE true ${below} ${holdsText(sql, filter.text ?? "")} ${stateAndQueue(sql, filter)}
      ORDER BY seq DESC LIMIT ${filter.limit ?? null}`;
    return rows.map(rowToJob);
  });
}

/** How many jobs match a filter (its limit and position ignored). */
export function countMatching(conn: PgConnection, filter: JobFilter): Promise<number> {
  return conn.read(async (sql) => {
    const [row] = await sql`
      SELECT count(*)::bigint AS n FROM jobs
      WHERE true ${holdsText(sql, filter.text ?? "")} ${stateAndQueue(sql, filter)}`;
    return row.n as number;
  });
}
