/**
 * Finding jobs by text in their id or command, and from a place in the
 * newest-first list (a page's cursor), for `listJobs` and `countMatching`.
 *
 * Text of `INDEXED_TEXT_LENGTH` characters or more is looked up in the FTS5
 * index `job_text` (trigrams, case as written; schema migration 7), which
 * holds every job through the seq `job_text_indexed` names: the jobs above
 * it, enqueued since, are read one by one, and indexed here first when they
 * are many. Every match the index gives is checked against the job's own
 * text, so the index only ever narrows the search. Shorter text is found by
 * reading jobs newest first.
 *
 * @module
 */

import type { Job } from "../job.ts";
import { JOB_STATES } from "../states.ts";
import { INDEXED_TEXT_LENGTH } from "./rules.ts";
import type { Row, SqliteConnection } from "./sqlite_connection.ts";
import { listJobsSql } from "./sqlite_queries.ts";
import { rowToJob } from "./rows.ts";
import type { JobFilter, JobPosition } from "./store.ts";

/** Jobs indexed per write transaction: short enough that workers are never kept waiting long. */
const INDEX_BATCH = 2_000;

/**
 * How many unindexed jobs a search reads one by one before it indexes them
 * instead: reading is cheaper for a few, indexing for many (and then once).
 */
const UNINDEXED_READ_LIMIT = 10_000;

/**
 * Indexes the jobs enqueued since the index was last brought up to date,
 * at most `batches` transactions of {@linkcode INDEX_BATCH} jobs; returns
 * how many jobs it indexed.
 */
export async function indexNewJobs(conn: SqliteConnection, batches = Infinity): Promise<number> {
  const indexed = conn.sql("SELECT seq FROM job_text_indexed WHERE id = 1");
  const batchEnd = conn.sql(
    `SELECT max(seq) AS last FROM (SELECT seq FROM jobs WHERE seq > ? ORDER BY seq LIMIT ${INDEX_BATCH})`,
  );
  const insert = conn.sql(
    `INSERT INTO job_text (rowid, id, command)
     SELECT seq, id, command FROM jobs WHERE seq > ? AND seq <= ?`,
  );
  const mark = conn.sql("UPDATE job_text_indexed SET seq = ? WHERE id = 1");
  let total = 0;
  for (let batch = 0; batch < batches; batch++) {
    const added = await conn.write(() => {
      const from = (indexed.get() as Row).seq as number;
      const last = (batchEnd.get(from) as Row).last as number | null;
      if (last === null) return 0;
      const count = Number(insert.run(from, last).changes);
      mark.run(last);
      return count;
    });
    total += added;
    if (added === 0) break;
  }
  return total;
}

/** The FTS5 query that finds `text` anywhere in a column: one phrase of its trigrams. */
function phrase(text: string): string {
  return `"${text.replaceAll('"', '""')}"`;
}

/** Whether `text` is long enough for the trigram index. */
function indexable(text: string): boolean {
  return [...text].length >= INDEXED_TEXT_LENGTH;
}

/**
 * The seq the list goes on below from `position` (exclusive); undefined
 * when no job is left there.
 */
function positionSeq(conn: SqliteConnection, position: JobPosition): number | undefined {
  const ids = [...position.ids];
  const anchor = conn.sql(
    `SELECT min(seq) AS seq FROM jobs WHERE id IN (${ids.map(() => "?").join(", ")})`,
  ).get(...ids) as Row;
  if (anchor.seq !== null) return anchor.seq as number;
  // Every job the cursor named is gone: the newest job created no later than them.
  const older = conn.sql(
    "SELECT seq FROM jobs NOT INDEXED WHERE created_at <= ? ORDER BY seq DESC LIMIT 1",
  ).get(position.createdAt) as Row | undefined;
  return older === undefined ? undefined : (older.seq as number) + 1;
}

/** SQL conditions on `jobs` (aliased `alias`) for the filter's states and queue, and their parameters. */
function stateAndQueue(filter: JobFilter, alias: string): { sql: string; params: string[] } {
  const states = [...new Set(filter.states ?? [])];
  let sql = "";
  const params: string[] = [];
  if (states.length > 0 && states.length < JOB_STATES.length) {
    sql += ` AND ${alias}.state IN (${states.map(() => "?").join(", ")})`;
    params.push(...states);
  }
  if (filter.queue !== undefined) {
    sql += ` AND ${alias}.queue = ?`;
    params.push(filter.queue);
  }
  return { sql, params };
}

/** The condition that a job's (aliased `alias`) id or command holds the text given twice. */
function holdsTextSql(alias: string): string {
  return `(instr(${alias}.id, ?) > 0 OR instr(${alias}.command, ?) > 0)`;
}

/**
 * Jobs newest first matching a filter with text or a position (the others
 * are `listJobs`'s plain searches).
 */
export async function searchJobs(conn: SqliteConnection, filter: JobFilter): Promise<Job[]> {
  const text = filter.text ?? "";
  if (text !== "" && indexable(text)) await indexIfBehind(conn);
  return conn.readSnapshot(() => {
    let before: number | undefined;
    if (filter.after !== undefined) {
      before = positionSeq(conn, filter.after);
      if (before === undefined) return [];
    }
    const limit = filter.limit ?? -1;
    if (text === "") return positionOnly(conn, filter, before, limit);
    const { sql: narrow, params } = stateAndQueue(filter, "j");
    const below = before === undefined ? "" : " AND j.seq < ?";
    const belowParams = before === undefined ? [] : [before];
    if (!indexable(text)) {
      return (conn.sql(
        `SELECT j.* FROM jobs j NOT INDEXED WHERE ${holdsTextSql("j")}${below}${narrow}
         ORDER BY j.seq DESC LIMIT ?`,
      ).all(text, text, ...belowParams, ...params, limit) as Row[]).map(rowToJob);
    }
    const indexedThrough = (conn.sql("SELECT seq FROM job_text_indexed WHERE id = 1")
      .get() as Row).seq as number;
    // Jobs not indexed yet are the newest: read first, one by one.
    const rows = conn.sql(
      `SELECT j.* FROM jobs j NOT INDEXED WHERE j.seq > ? AND ${holdsTextSql("j")}${below}${narrow}
       ORDER BY j.seq DESC LIMIT ?`,
    ).all(indexedThrough, text, text, ...belowParams, ...params, limit) as Row[];
    if (limit === -1 || rows.length < limit) {
      rows.push(
        ...conn.sql(
          `SELECT j.* FROM job_text t CROSS JOIN jobs j NOT INDEXED ON j.seq = t.rowid
           WHERE job_text MATCH ? AND ${holdsTextSql("j")}${
            before === undefined ? "" : " AND t.rowid < ?"
          }${narrow}
           ORDER BY t.rowid DESC LIMIT ?`,
        ).all(
          phrase(text),
          text,
          text,
          ...belowParams,
          ...params,
          limit === -1 ? -1 : limit - rows.length,
        ) as Row[],
      );
    }
    return rows.map(rowToJob);
  });
}

/** Jobs below `before` (all when undefined), by state and queue, through the plain searches. */
function positionOnly(
  conn: SqliteConnection,
  filter: JobFilter,
  before: number | undefined,
  limit: number,
): Job[] {
  const states = [...new Set(filter.states ?? [])];
  const byQueue = filter.queue !== undefined;
  const sql = listJobsSql(states.length, byQueue, before !== undefined);
  const each = [
    ...(byQueue ? [filter.queue as string] : []),
    ...(before !== undefined ? [before] : []),
  ];
  const params = states.length === 0 ? each : states.flatMap((state) => [state, ...each]);
  return (conn.sql(sql).all(...params, limit) as Row[]).map(rowToJob);
}

/** How many jobs match a filter (its limit and position ignored). */
export async function countMatching(conn: SqliteConnection, filter: JobFilter): Promise<number> {
  const text = filter.text ?? "";
  if (text !== "" && indexable(text)) await indexIfBehind(conn);
  return conn.readSnapshot(() => {
    const { sql: narrow, params } = stateAndQueue(filter, "j");
    const count = (sql: string, ...values: (string | number)[]) =>
      (conn.sql(sql).get(...values) as Row).n as number;
    if (text === "") return count(`SELECT count(*) AS n FROM jobs j WHERE 1${narrow}`, ...params);
    if (!indexable(text)) {
      return count(
        `SELECT count(*) AS n FROM jobs j NOT INDEXED WHERE ${holdsTextSql("j")}${narrow}`,
        text,
        text,
        ...params,
      );
    }
    const indexedThrough = (conn.sql("SELECT seq FROM job_text_indexed WHERE id = 1")
      .get() as Row).seq as number;
    return count(
      `SELECT count(*) AS n FROM jobs j NOT INDEXED
       WHERE j.seq > ? AND ${holdsTextSql("j")}${narrow}`,
      indexedThrough,
      text,
      text,
      ...params,
    ) + count(
      `SELECT count(*) AS n FROM job_text t CROSS JOIN jobs j NOT INDEXED ON j.seq = t.rowid
       WHERE job_text MATCH ? AND ${holdsTextSql("j")}${narrow}`,
      phrase(text),
      text,
      text,
      ...params,
    );
  });
}

/**
 * Indexes the jobs enqueued since the index was last brought up to date
 * when they are more than a search should read one by one. A queue this
 * connection cannot write (a read-only file) is searched all the same,
 * reading them.
 */
async function indexIfBehind(conn: SqliteConnection): Promise<void> {
  const behind = await conn.read(() =>
    (conn.sql(
      `SELECT (SELECT coalesce(max(seq), 0) FROM jobs) -
        (SELECT seq FROM job_text_indexed WHERE id = 1) AS n`,
    ).get() as Row).n as number
  );
  if (behind <= UNINDEXED_READ_LIMIT) return;
  try {
    await indexNewJobs(conn);
  } catch {
    // Read one by one instead: slower, never wrong.
  }
}
