/**
 * Scale: how reads and claims behave with a long history. A database of N
 * jobs (98% completed, 1% dead, the newest 1% pending) is built directly
 * with node:sqlite, then `status`, `list --state pending --limit 20`,
 * `dlq list`, one `claim()` and one `metricsText()` (the dashboard's
 * `GET /metrics`) are timed on it and on a 1,000-job database built the same
 * way.
 *
 * @module
 */

import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { metricsText } from "../lib/dashboard/metrics.ts";
import { startDashboard } from "../lib/dashboard/server.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import type { Store } from "../lib/store/store.ts";
import {
  type BenchResult,
  cliOk,
  type Figure,
  figure,
  fileSize,
  initDb,
  median,
  percentile,
  progress,
  removeDb,
  round,
  type Sizes,
  statusJson,
  withTempDir,
} from "./util.ts";

/** Columns this builder fills in `jobs`; every other column must accept NULL or have a default. */
const JOB_COLUMNS = [
  "id",
  "command",
  "state",
  "attempts",
  "max_retries",
  "priority",
  "run_at",
  "created_at",
  "updated_at",
  "started_at",
  "finished_at",
  "exit_code",
  "last_error",
  "timeout_ms",
  "cwd",
] as const;

const ATTEMPT_COLUMNS = [
  "job_id",
  "attempt",
  "started_at",
  "finished_at",
  "exit_code",
  "error",
  "stdout",
  "stderr",
] as const;

/** How far apart the synthetic jobs were enqueued, in ms: 1M jobs span about 12 days. */
const JOB_SPACING_MS = 1_000;

interface ColumnInfo {
  name: string;
  notnull: number;
  dflt_value: SQLInputValue;
  pk: number;
}

/**
 * Refuses to build on a schema this builder does not fill completely (a
 * later migration may add a required column), rather than fail halfway or
 * write rows queuectl would not.
 */
function checkColumns(db: DatabaseSync, table: string, filled: readonly string[]): void {
  const columns = db.prepare(`PRAGMA table_info(${table})`).all() as unknown as ColumnInfo[];
  if (columns.length === 0) throw new Error(`schema changed: no table ${table}`);
  const names = new Set(columns.map((c) => c.name));
  const missing = filled.filter((c) => !names.has(c));
  if (missing.length > 0) {
    throw new Error(`schema changed: ${table} has no column ${missing.join(", ")}`);
  }
  const unfilled = columns.filter((c) =>
    c.notnull === 1 && c.dflt_value === null && c.pk === 0 && !filled.includes(c.name)
  );
  if (unfilled.length > 0) {
    throw new Error(
      `schema changed: ${table}.${unfilled.map((c) => c.name).join(", ")} is required ` +
        `and bench/scale.ts does not fill it`,
    );
  }
}

interface Built {
  total: number;
  expected: Record<string, number>;
  buildMs: number;
  /** The id of the job a tenth of the way into the history: 90% of the jobs are newer. */
  oldId: string;
}

/**
 * Fills a database queuectl has created with `total` jobs, through plain
 * INSERTs into its tables in one transaction, so that the triggers a
 * migration defines run as for real jobs; the state counts, which queuectl
 * keeps itself on insert, are added the same way.
 * Finished jobs get their attempt rows, as a worker would have written them.
 */
function build(path: string, total: number, cwd: string): Built {
  const started = performance.now();
  const db = new DatabaseSync(path, { timeout: 5_000 });
  try {
    checkColumns(db, "jobs", JOB_COLUMNS);
    checkColumns(db, "job_attempts", ATTEMPT_COLUMNS);
    // Only this connection's durability: a crash mid-build just means building again.
    db.exec("PRAGMA synchronous = OFF");
    db.exec("PRAGMA cache_size = -262144");
    const insertJob = db.prepare(
      `INSERT INTO jobs (${JOB_COLUMNS.join(", ")}) VALUES (${
        JOB_COLUMNS.map(() => "?").join(", ")
      })`,
    );
    const insertAttempt = db.prepare(
      `INSERT INTO job_attempts (${ATTEMPT_COLUMNS.join(", ")})
       VALUES (${ATTEMPT_COLUMNS.map(() => "?").join(", ")})`,
    );
    const encoder = new TextEncoder();
    const empty = new Uint8Array();
    const pendingFrom = total - Math.max(1, Math.round(total / 100));
    const expected: Record<string, number> = {
      pending: 0,
      processing: 0,
      completed: 0,
      failed: 0,
      dead: 0,
    };
    const now = Date.now();
    const oldIndex = Math.floor(total / 10);
    let oldId = "";
    db.exec("BEGIN IMMEDIATE");
    for (let i = 0; i < total; i++) {
      const created = now - (total - i) * JOB_SPACING_MS;
      // Time-ordered ids of about the length queuectl generates.
      const id = `${created.toString(36)}-${i.toString(36).padStart(8, "0")}`;
      if (i === oldIndex) oldId = id;
      // The newest 1% still wait (a backlog); every 100th older job is dead.
      const state = i >= pendingFrom ? "pending" : i % 100 === 50 ? "dead" : "completed";
      expected[state]++;
      if (state === "pending") {
        insertJob.run(
          id,
          `echo ${i}`,
          state,
          0,
          3,
          0,
          created,
          created,
          created,
          null,
          null,
          null,
          null,
          null,
          cwd,
        );
        continue;
      }
      const runs = state === "dead" ? 4 : 1;
      const lastStart = created + 10 + (runs - 1) * 1_000;
      const finished = lastStart + 5;
      const exitCode = state === "dead" ? 1 : 0;
      const error = state === "dead" ? "exited with code 1" : null;
      insertJob.run(
        id,
        state === "dead" ? `echo ${i}; exit 1` : `echo ${i}`,
        state,
        runs,
        3,
        0,
        created + (runs - 1) * 1_000,
        created,
        finished,
        lastStart,
        finished,
        exitCode,
        error,
        null,
        cwd,
      );
      const stdout = encoder.encode(`${i}\n`);
      for (let attempt = 1; attempt <= runs; attempt++) {
        const attemptStart = created + 10 + (attempt - 1) * 1_000;
        insertAttempt.run(
          id,
          attempt,
          attemptStart,
          attemptStart + 5,
          exitCode,
          error,
          stdout,
          empty,
        );
      }
    }
    // queuectl counts the jobs it inserts itself (no per-row trigger): do as it does.
    const count = db.prepare(
      `INSERT INTO queue_counts (queue, state, n) VALUES ('default', ?, ?)
       ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n`,
    );
    for (const [state, n] of Object.entries(expected)) count.run(state, n);
    db.exec("COMMIT");
    // A live queue's WAL is checkpointed as it goes; one giant transaction is not how it grew.
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    return { total, expected, buildMs: performance.now() - started, oldId };
  } finally {
    if (db.isTransaction) db.exec("ROLLBACK");
    db.close();
  }
}

/** Timed whole CLI calls on each database, interleaved run by run. */
async function timeCommands(
  dbs: string[],
  commands: string[][],
  runs: number,
  cwd: string,
): Promise<Map<string, number[][]>> {
  const times = new Map<string, number[][]>();
  for (const command of commands) {
    const key = command.join(" ");
    const perDb: number[][] = dbs.map(() => []);
    // Warm-up, unmeasured: both files in the page cache, Deno's caches filled.
    for (const db of dbs) await cliOk(db, command, { cwd, timeoutMs: 300_000 });
    for (let r = 0; r < runs; r++) {
      for (let d = 0; d < dbs.length; d++) {
        perDb[d].push((await cliOk(dbs[d], command, { cwd, timeoutMs: 300_000 })).ms);
      }
    }
    times.set(key, perDb);
  }
  return times;
}

/**
 * Times `claim()` in-process. Each timed claim is followed by an untimed
 * release, so every claim meets the same queue (and a 1,000-job database
 * with 10 pending jobs does not run dry).
 */
async function timeClaims(path: string, claims: number): Promise<number[]> {
  const store = await openSqliteStore(path, { create: false });
  try {
    const samples: number[] = [];
    for (let i = -5; i < claims; i++) {
      const started = performance.now();
      const job = await store.claim("bench-scale", Date.now());
      const ms = performance.now() - started;
      if (!job) throw new Error(`claim() found no job in ${path}`);
      await store.releaseJob(job, Date.now());
      if (i >= 0) samples.push(ms);
    }
    return samples;
  } finally {
    await store.close();
  }
}

/** Scrapes timed per database: each is about a millisecond. */
const METRICS_SCRAPES = 30;

/** Times `metricsText()` (the text of `GET /metrics`) in-process, after one untimed warm-up. */
async function timeMetrics(path: string, runs: number): Promise<number[]> {
  const store = await openSqliteStore(path, { create: false });
  try {
    const samples: number[] = [];
    for (let i = -1; i < runs; i++) {
      const started = performance.now();
      await metricsText(store);
      if (i >= 0) samples.push(performance.now() - started);
    }
    return samples;
  } finally {
    await store.close();
  }
}

/**
 * Times `GET /api/jobs?<query>` against a dashboard served in-process on
 * `store` at a loopback port (the whole HTTP request and the JSON read),
 * after one untimed warm-up; closes the store.
 */
export async function timeApiJobs(store: Store, query: string, runs: number): Promise<number[]> {
  const dashboard = await startDashboard({
    store,
    hostname: "127.0.0.1",
    port: 0,
    readOnly: true,
    cwd: Deno.cwd(),
  });
  try {
    const samples: number[] = [];
    for (let i = -1; i < runs; i++) {
      const started = performance.now();
      const response = await fetch(new URL(`api/jobs?${query}`, dashboard.url));
      const body = await response.json();
      if (!response.ok || !Array.isArray(body.jobs) || body.jobs.length === 0) {
        throw new Error(`GET /api/jobs?${query}: ${response.status} ${JSON.stringify(body)}`);
      }
      if (i >= 0) samples.push(performance.now() - started);
    }
    return samples;
  } finally {
    await dashboard.stop();
    await store.close();
  }
}

/** Runs the scale benchmark. */
export function runScale(sizes: Sizes): Promise<BenchResult> {
  return withTempDir("scale", async (dir) => {
    const problems: string[] = [];
    const small = `${dir}/small.db`;
    const big = `${dir}/big.db`;
    const builds: Built[] = [];
    for (const [path, total] of [[small, sizes.scaleSmallJobs], [big, sizes.scaleJobs]] as const) {
      await initDb(path, dir); // queuectl makes the schema; the rows come from build().
      progress(`scale: building ${total.toLocaleString("en-US")} jobs`);
      const built = build(path, total, dir);
      builds.push(built);
      progress(`scale: built in ${(built.buildMs / 1000).toFixed(1)} s`);
      const counts = (await statusJson(path, dir)).jobs;
      for (const [state, n] of Object.entries(built.expected)) {
        if (counts[state] !== n) {
          problems.push(
            `scale: status says ${counts[state]} ${state} jobs in a database of ` +
              `${total} built with ${n} (counts not kept for plain INSERTs?)`,
          );
        }
      }
    }
    const bigLabel = sizes.scaleJobs.toLocaleString("en-US");
    const smallLabel = sizes.scaleSmallJobs.toLocaleString("en-US");

    progress(`scale: timing CLI calls, ${sizes.scaleRuns} runs each`);
    const commands = [["status"], ["list", "--state", "pending", "--limit", "20"], ["dlq", "list"]];
    const times = await timeCommands([small, big], commands, sizes.scaleRuns, dir);
    progress(`scale: timing ${sizes.scaleClaims} claims on each`);
    const claimSmall = await timeClaims(small, sizes.scaleClaims);
    const claimBig = await timeClaims(big, sizes.scaleClaims);
    progress(`scale: timing metricsText(), ${METRICS_SCRAPES} scrapes on each`);
    const metricsSmall = await timeMetrics(small, METRICS_SCRAPES);
    const metricsBig = await timeMetrics(big, METRICS_SCRAPES);
    // Text in many jobs (the newest page holds matches), and the id of one job older than 90%.
    const apiQueries = [
      { what: "text in many jobs", query: () => "q=echo%209&limit=20", runs: sizes.scaleRuns },
      {
        what: "the id of one job older than 90% of them",
        query: (built: Built) => `q=${encodeURIComponent(built.oldId)}&limit=20`,
        runs: 3,
      },
    ];
    const apiTimes: { what: string; small: number[]; big: number[] }[] = [];
    for (const { what, query, runs } of apiQueries) {
      progress(`scale: timing GET /api/jobs?q= (${what}), ${runs} requests on each`);
      apiTimes.push({
        what,
        small: await timeApiJobs(
          await openSqliteStore(small, { create: false }),
          query(builds[0]),
          runs,
        ),
        big: await timeApiJobs(
          await openSqliteStore(big, { create: false }),
          query(builds[1]),
          runs,
        ),
      });
    }

    const figures: Figure[] = [];
    const details: Record<string, unknown> = {
      jobs: { small: builds[0].expected, big: builds[1].expected },
      buildMs: { small: round(builds[0].buildMs, 1), big: round(builds[1].buildMs, 1) },
    };
    for (const [key, [smallMs, bigMs]] of times) {
      figures.push(
        figure(
          "scale",
          `\`${key}\` at ${bigLabel} jobs, whole CLI call p50`,
          median(bigMs),
          "ms",
          { label: `same at ${smallLabel} jobs`, value: median(smallMs), unit: "ms" },
          "lower",
          `p50 of ${bigMs.length} runs each, interleaved`,
        ),
      );
      details[key] = {
        smallMs: smallMs.map((x) => round(x, 2)),
        bigMs: bigMs.map((x) => round(x, 2)),
      };
    }
    figures.push(
      figure(
        "scale",
        `one \`claim()\` at ${bigLabel} jobs, in-process p50`,
        median(claimBig),
        "ms",
        { label: `same at ${smallLabel} jobs`, value: median(claimSmall), unit: "ms" },
        "lower",
        `openSqliteStore + claim(), ${sizes.scaleClaims} claims, each released untimed; p99 ${
          percentile(claimBig, 99).toFixed(3)
        } vs ${percentile(claimSmall, 99).toFixed(3)} ms`,
      ),
    );
    figures.push(
      figure(
        "scale",
        `\`metricsText()\` (GET /metrics) at ${bigLabel} jobs, in-process p50`,
        median(metricsBig),
        "ms",
        { label: `same at ${smallLabel} jobs`, value: median(metricsSmall), unit: "ms" },
        "lower",
        `openSqliteStore + metricsText(), ${METRICS_SCRAPES} scrapes; p99 ${
          percentile(metricsBig, 99).toFixed(3)
        } vs ${percentile(metricsSmall, 99).toFixed(3)} ms; target 2×`,
      ),
    );
    for (const { what, small: smallMs, big: bigMs } of apiTimes) {
      figures.push(
        figure(
          "scale",
          `\`GET /api/jobs?q=\` (${what}) at ${bigLabel} jobs, in-process p50`,
          median(bigMs),
          "ms",
          { label: `same at ${smallLabel} jobs`, value: median(smallMs), unit: "ms" },
          "lower",
          `dashboard served in-process, whole HTTP request, ${bigMs.length} requests each; ` +
            `target 2×`,
        ),
      );
      details[`apiJobs ${what}`] = {
        smallMs: smallMs.map((x) => round(x, 2)),
        bigMs: bigMs.map((x) => round(x, 2)),
      };
    }
    details.metricsMs = {
      small: { p50: round(median(metricsSmall), 4), p99: round(percentile(metricsSmall, 99), 4) },
      big: { p50: round(median(metricsBig), 4), p99: round(percentile(metricsBig, 99), 4) },
    };
    details.claimMs = {
      small: { p50: round(median(claimSmall), 4), p99: round(percentile(claimSmall, 99), 4) },
      big: { p50: round(median(claimBig), 4), p99: round(percentile(claimBig, 99), 4) },
    };

    const bytes = (path: string) => fileSize(path) + fileSize(`${path}-wal`);
    const perJobBig = bytes(big) / sizes.scaleJobs;
    const perJobSmall = bytes(small) / sizes.scaleSmallJobs;
    figures.push(
      figure(
        "scale",
        `database size per job at ${bigLabel} jobs`,
        perJobBig,
        "bytes",
        { label: `same at ${smallLabel} jobs`, value: perJobSmall, unit: "bytes" },
        "lower",
        `(file + WAL) ÷ jobs: ${(bytes(big) / 2 ** 20).toFixed(1)} MiB total; ` +
          `finished jobs carry their attempt rows`,
      ),
    );
    details.bytes = {
      big: { db: fileSize(big), wal: fileSize(`${big}-wal`) },
      small: { db: fileSize(small), wal: fileSize(`${small}-wal`) },
    };
    await removeDb(big);
    await removeDb(small);
    return { figures, details, problems };
  });
}
