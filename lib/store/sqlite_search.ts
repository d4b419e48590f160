/**
 * Finding jobs by text in their id or command, and from a place in the
 * newest-first list (a page's cursor), for `listJobs` and `countMatching`.
 *
 * Text of `INDEXED_TEXT_LENGTH` characters or more is looked up in the FTS5
 * index `job_text` (trigrams, case as written; schema migration 7), which
 * holds every job through the seq `job_text_indexed` names: the jobs above
 * it, enqueued since, are read one by one, and indexed here first when they
 * are many. Every match the index gives is checked against the job's own
 * text, so the index only ever narrows the search (and may be asked for
 * fewer trigrams than the text has: {@linkcode ftsQuery}). Shorter text is found by
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

/**
 * Jobs indexed in one go after which the index is compacted: each batch
 * adds a segment of its own to the index, and a common trigram's list in
 * many segments took twice as long to read (0.67 against 0.34 ms at a
 * million jobs).
 */
const COMPACT_AFTER_JOBS = 50_000;

/** Pages of merging per write transaction while compacting (each tens of ms). */
const COMPACT_PAGES = 500;

/**
 * Merges the index's segments into one (FTS5's incremental `merge` with a
 * negative page count: an `optimize` done a bit per transaction, so that
 * workers never wait long for the write lock).
 */
export async function compactIndex(conn: SqliteConnection): Promise<void> {
  const merge = conn.sql("INSERT INTO job_text (job_text, rank) VALUES ('merge', ?)");
  const changes = conn.sql("SELECT total_changes() AS n");
  for (let step = 0; step < 10_000; step++) {
    const worked = await conn.write(() => {
      const before = (changes.get() as Row).n as number;
      merge.run(-COMPACT_PAGES);
      // FTS5 says that a merge did nothing by changing (almost) no row.
      return ((changes.get() as Row).n as number) - before >= 2;
    });
    if (!worked) return;
  }
}

/** The FTS5 query that finds `text` anywhere in a column: one phrase of its trigrams. */
function phrase(text: string): string {
  return `"${text.replaceAll('"', '""')}"`;
}

/**
 * Below this many jobs, a trigram is rare enough to look up by itself: a
 * phrase of many trigrams, some held by most jobs (`000` in ids), walks
 * their long lists in step, which took 5–10 ms at a million jobs; the two
 * rarest alone took 0.05 ms, and every job they give is checked anyway.
 */
const RARE_TRIGRAM_JOBS = 256;

/**
 * The FTS5 query for `text`: its two rarest trigrams when some are rare
 * (each counted up to {@linkcode RARE_TRIGRAM_JOBS}, which is cheap), else
 * the phrase of all of them, which is fast when the text is common.
 */
function ftsQuery(conn: SqliteConnection, text: string): string {
  const characters = [...text];
  const trigrams = new Set<string>();
  for (let i = 0; i + INDEXED_TEXT_LENGTH <= characters.length; i++) {
    trigrams.add(characters.slice(i, i + INDEXED_TEXT_LENGTH).join(""));
  }
  const probe = conn.sql(
    `SELECT count(*) AS n FROM
       (SELECT rowid FROM job_text WHERE job_text MATCH ? LIMIT ${RARE_TRIGRAM_JOBS})`,
  );
  const rare = [...trigrams]
    .map((trigram) => ({ trigram, jobs: (probe.get(phrase(trigram)) as Row).n as number }))
    .filter(({ jobs }) => jobs < RARE_TRIGRAM_JOBS)
    .sort((a, b) => a.jobs - b.jobs);
  if (rare.length === 0) return phrase(text);
  return rare.slice(0, 2).map(({ trigram }) => phrase(trigram)).join(" AND ");
}

/**
 * The newest jobs a search with a limit reads one by one before it asks
 * the index: enough for common text to fill a page (the index's lists of
 * common trigrams took 1.3 ms at a million jobs against 0.7 at a thousand),
 * few enough to cost rare text little.
 */
const RECENT_JOBS = 1_000;

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
    if (limit !== -1) {
      // Common text fills a page from the newest jobs alone: reading those
      // first spares the index its longest lists.
      const recent = conn.sql(
        `SELECT j.* FROM (SELECT * FROM jobs NOT INDEXED WHERE 1${
          below.replace("j.seq", "seq")
        } ORDER BY seq DESC LIMIT ${RECENT_JOBS}) j
         WHERE ${holdsTextSql("j")}${narrow} ORDER BY j.seq DESC LIMIT ?`,
      ).all(...belowParams, text, text, ...params, limit) as Row[];
      if (recent.length >= limit) return recent.map(rowToJob);
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
          ftsQuery(conn, text),
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
      ftsQuery(conn, text),
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
    if (await indexNewJobs(conn) >= COMPACT_AFTER_JOBS) await compactIndex(conn);
  } catch {
    // Read one by one instead: slower, never wrong.
  }
}
