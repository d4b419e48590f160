/**
 * PostgreSQL beside SQLite: the same measurements on both stores in the same
 * run, each PostgreSQL figure with its SQLite twin as the baseline.
 *
 * - throughput: N `true` jobs run by `worker start --count 2 --drain` (one
 *   process) and by two `worker start --count 4 --drain` processes (8 lanes);
 * - pick-up latency: an idle `worker start --count 2`, jobs enqueued one at a
 *   time, the command's own start minus `created_at` (as bench/latency.ts);
 *   on PostgreSQL the wake-up comes through LISTEN/NOTIFY;
 * - bulk `enqueue --file`;
 * - one `claim()` in-process at a large queue of waiting jobs (as
 *   bench/scale.ts), each claim released untimed.
 *
 * Every PostgreSQL measurement works in a schema of its own
 * (`?schema=bench_<random>`), dropped afterwards.
 *
 * @module
 */

import postgres from "postgres";
import { openPgStore } from "../lib/store/pg_store.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import type { Store } from "../lib/store/store.ts";
import { recordedStartMs } from "./latency.ts";
import { timeApiJobs } from "./scale.ts";
import {
  type BenchResult,
  cliOk,
  type Figure,
  figure,
  initDb,
  listAll,
  LongProcess,
  median,
  percentile,
  progress,
  removeDb,
  round,
  seededRandom,
  type Sizes,
  sleep,
  statusJson,
  waitRegistered,
  wallNow,
  withTempDir,
} from "./util.ts";

/** The server `.ci/postgres` sets up, used when neither `--pg` nor $QUEUECTL_TEST_PG says. */
export const DEFAULT_BENCH_PG_URL =
  "postgres://queuectl_test:queuectl_test@127.0.0.1:5432/queuectl_test";

/** How long a job may take to start in the latency part before it counts as a hang, in ms. */
const START_TIMEOUT_MS = 15_000;
/** The largest random gap between one job's start and the next enqueue, in ms. */
const MAX_GAP_MS = 50;

/** `url` without its password, for messages. */
function shown(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparsable URL)";
  }
}

/** Opens one short-lived connection to the server, runs `fn` and closes it. */
async function withServer<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 }).catch(() => {});
  }
}

/** Fails with one clear line when no server answers at `url`. */
export async function checkServer(url: string): Promise<string> {
  try {
    return await withServer(url, async (sql) => {
      const [row] = await sql`SELECT current_setting('server_version') AS version`;
      return String(row.version);
    });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const reason = typeof code === "string" ? code : (error as Error).message;
    throw new Error(
      `no usable PostgreSQL server at ${shown(url)} (${reason}); ` +
        `pass --pg URL or set QUEUECTL_TEST_PG (the other benchmarks are not affected)`,
    );
  }
}

const STORES = ["sqlite", "pg"] as const;
/** The two stores the benchmarks compare. */
export type Side = typeof STORES[number];
const LABEL: Record<Side, string> = { sqlite: "SQLite", pg: "PostgreSQL" };

/**
 * Runs `body` with a new queue on `side`: a SQLite file, or a PostgreSQL
 * schema of its own. queuectl creates it (so that creating it is not
 * measured); it is removed afterwards.
 */
export async function withStore<T>(
  serverUrl: string,
  dir: string,
  side: Side,
  tag: string,
  body: (db: string) => Promise<T>,
): Promise<T> {
  if (side === "sqlite") {
    const db = `${dir}/${tag}.db`;
    try {
      await initDb(db, dir);
      return await body(db);
    } finally {
      await removeDb(db);
    }
  }
  const schema = `bench_${
    Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, "0"))
      .join("")
  }`;
  const separator = serverUrl.includes("?") ? "&" : "?";
  const db = `${serverUrl}${separator}schema=${schema}`;
  try {
    await initDb(db, dir);
    return await body(db);
  } finally {
    await withServer(serverUrl, async (sql) => {
      await sql`SET lock_timeout = '10s'`;
      await sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`;
    });
  }
}

// ---------------------------------------------------------------- throughput

/**
 * Enqueues `n` jobs and drains them with `processes` worker processes of
 * `count` lanes each; returns enqueue start → last finished_at in ms.
 */
async function drainRun(
  db: string,
  dir: string,
  jobsFile: string,
  n: number,
  processes: number,
  count: number,
  tag: string,
): Promise<{ toLastMs: number; enqueueMs: number }> {
  const startWall = wallNow();
  const enqueue = await cliOk(db, ["enqueue", "--file", jobsFile], {
    cwd: dir,
    timeoutMs: 300_000,
  });
  const workers = Array.from(
    { length: processes },
    (_, i) => LongProcess.worker(db, ["--count", String(count), "--drain"], dir, `${tag}-${i}.log`),
  );
  try {
    for (const worker of workers) {
      const code = await worker.waitExit(600_000);
      if (code === undefined) throw new Error(`hang: ${worker.what} did not exit within 600 s`);
      if (code !== 0) {
        throw new Error(`${worker.what} exited with ${code} (log: ${await worker.logTail()})`);
      }
    }
  } finally {
    for (const worker of workers) if (worker.running) await worker.stop(5_000);
  }
  const jobs = await listAll(db, dir);
  const notDone = jobs.filter((j) => j.state !== "completed");
  if (jobs.length !== n || notDone.length > 0) {
    throw new Error(
      `${tag}: ${jobs.length} jobs listed, ${notDone.length} not completed after --drain ` +
        `(e.g. ${notDone[0]?.id} ${notDone[0]?.state})`,
    );
  }
  const lastFinished = Math.max(...jobs.map((j) => j.finished_at ? Date.parse(j.finished_at) : 0));
  return { toLastMs: lastFinished - startWall, enqueueMs: enqueue.ms };
}

async function measureThroughput(
  serverUrl: string,
  dir: string,
  sizes: Sizes,
  _problems: string[],
): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const n = sizes.pgThroughputJobs;
  const rounds = sizes.throughputRounds;
  const jobsFile = `${dir}/jobs.jsonl`;
  await Deno.writeTextFile(jobsFile, '"true"\n'.repeat(n));
  const setups = [
    { processes: 1, count: 2, what: "worker --count 2 (one process)" },
    { processes: 2, count: 4, what: "--count 8 as two processes of --count 4" },
  ];
  const figures: Figure[] = [];
  const details: Record<string, unknown> = { jobs: n, rounds };
  for (const { processes, count, what } of setups) {
    const lanes = processes * count;
    const runs: Record<Side, { toLastMs: number; enqueueMs: number }[]> = { sqlite: [], pg: [] };
    // Rounds interleave the stores, so that a busy spell on the shared machine hits both.
    for (let r = 0; r < rounds; r++) {
      for (const side of STORES) {
        const tag = `tp-${side}-${lanes}-${r}`;
        const run = await withStore(
          serverUrl,
          dir,
          side,
          tag,
          (db) => drainRun(db, dir, jobsFile, n, processes, count, tag),
        );
        runs[side].push(run);
        progress(
          `postgres: throughput ${lanes} lanes, ${LABEL[side]}, round ${r + 1}/${rounds}: ` +
            `${(run.toLastMs / 1000).toFixed(2)} s to last finish`,
        );
      }
    }
    const result = {} as Record<Side, { toLastMs: number; enqueueMs: number }>;
    for (const side of STORES) {
      result[side] = {
        toLastMs: median(runs[side].map((x) => x.toLastMs)),
        enqueueMs: median(runs[side].map((x) => x.enqueueMs)),
      };
    }
    const rate = (ms: number) => n / (ms / 1000);
    figures.push(figure(
      "postgres",
      `${n.toLocaleString("en-US")} × \`true\`, ${what}: PostgreSQL`,
      rate(result.pg.toLastMs),
      "jobs/s",
      { label: "same on SQLite", value: rate(result.sqlite.toLastMs), unit: "jobs/s" },
      "higher",
      `enqueue start → last finished_at: ${(result.pg.toLastMs / 1000).toFixed(2)} s vs ` +
        `${(result.sqlite.toLastMs / 1000).toFixed(2)} s (enqueue ${
          Math.round(result.pg.enqueueMs)
        } vs ${Math.round(result.sqlite.enqueueMs)} ms of it); median of ${rounds}`,
    ));
    const rounded = (side: Side) =>
      runs[side].map((x) => ({ toLastMs: round(x.toLastMs, 1), enqueueMs: round(x.enqueueMs, 1) }));
    details[`lanes${lanes}`] = { processes, count, pg: rounded("pg"), sqlite: rounded("sqlite") };
  }
  return { figures, details };
}

// ------------------------------------------------------------------- latency

/** Pick-up latencies (command's own start − created_at) of `n` jobs enqueued one at a time. */
async function pickUp(
  db: string,
  dir: string,
  n: number,
  side: Side,
  problems: string[],
): Promise<{ latency: number[]; claimDelay: number[] }> {
  const starts = `${dir}/t-${side}`;
  await Deno.mkdir(starts, { recursive: true });
  const worker = LongProcess.worker(db, ["--count", "2"], dir, `latency-${side}.log`);
  try {
    await waitRegistered(db, dir, worker);
    await sleep(1_000); // Let both Web Workers connect (and LISTEN) and go idle.
    const random = seededRandom(42);
    const recorded = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const id = `lat-${side}-${String(i).padStart(4, "0")}`;
      await cliOk(db, ["enqueue", "--id", id, `date +%s%N > t-${side}/$QUEUECTL_JOB_ID`], {
        cwd: dir,
      });
      const started = await recordedStartMs(`${starts}/${id}`, START_TIMEOUT_MS);
      if (started === undefined) {
        throw new Error(
          `hang: ${LABEL[side]} job ${id} did not start within ${START_TIMEOUT_MS} ms ` +
            `(worker log: ${await worker.logTail()})`,
        );
      }
      recorded.set(id, started);
      // A random gap, so that enqueues do not fall into step with any polling.
      await sleep(random() * MAX_GAP_MS);
    }
    const latency: number[] = [];
    const claimDelay: number[] = [];
    for (const job of await listAll(db, dir)) {
      const start = recorded.get(job.id);
      if (start === undefined) continue;
      const created = Date.parse(job.created_at);
      latency.push(start - created);
      if (job.started_at) claimDelay.push(Date.parse(job.started_at) - created);
    }
    if (latency.length !== n) problems.push(`${LABEL[side]}: ${latency.length} of ${n} listed`);
    return { latency, claimDelay };
  } finally {
    const stopProblem = await worker.stop();
    if (stopProblem) problems.push(stopProblem);
  }
}

async function measureLatency(
  serverUrl: string,
  dir: string,
  sizes: Sizes,
  problems: string[],
): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const n = sizes.latencyJobs;
  const result = {} as Record<Side, { latency: number[]; claimDelay: number[] }>;
  for (const side of STORES) {
    result[side] = await withStore(
      serverUrl,
      dir,
      side,
      "latency",
      (db) => pickUp(db, dir, n, side, problems),
    );
    progress(`postgres: latency ${LABEL[side]} p50 ${median(result[side].latency).toFixed(1)} ms`);
  }
  const figures = ([50, 95] as const).map((p) =>
    figure(
      "postgres",
      `pick-up p${p}, ${n} jobs one at a time, idle worker --count 2: PostgreSQL (LISTEN/NOTIFY)`,
      percentile(result.pg.latency, p),
      "ms",
      { label: `same on SQLite`, value: percentile(result.sqlite.latency, p), unit: "ms" },
      "lower",
      `command's own start (date +%s%N) − created_at (whole ms); claim part ` +
        `(started_at − created_at) p${p} ${percentile(result.pg.claimDelay, p).toFixed(1)} vs ` +
        `${percentile(result.sqlite.claimDelay, p).toFixed(1)} ms`,
    )
  );
  const summary = (side: Side) => ({
    p50: round(percentile(result[side].latency, 50)),
    p95: round(percentile(result[side].latency, 95)),
    max: round(Math.max(...result[side].latency)),
    claimP50: round(median(result[side].claimDelay)),
  });
  return { figures, details: { jobs: n, pg: summary("pg"), sqlite: summary("sqlite") } };
}

// ---------------------------------------------------------------------- bulk

async function measureBulk(
  serverUrl: string,
  dir: string,
  sizes: Sizes,
  problems: string[],
): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const n = sizes.pgBulkJobs;
  const file = `${dir}/bulk.jsonl`;
  await Deno.writeTextFile(file, '"true"\n'.repeat(n));
  const rounds = sizes.bulkRounds;
  const runs: Record<Side, number[]> = { sqlite: [], pg: [] };
  for (let r = 0; r < rounds; r++) {
    for (const side of STORES) {
      const ms = await withStore(serverUrl, dir, side, `bulk-${r}`, async (db) => {
        const run = await cliOk(db, ["enqueue", "--file", file], { cwd: dir, timeoutMs: 600_000 });
        const pending = (await statusJson(db, dir)).jobs.pending;
        if (pending !== n) problems.push(`${LABEL[side]} bulk enqueue left ${pending} of ${n}`);
        return run.ms;
      });
      runs[side].push(ms);
      progress(
        `postgres: bulk ${LABEL[side]}, round ${r + 1}/${rounds}: ${(ms / 1000).toFixed(2)} s`,
      );
    }
  }
  const ms = { sqlite: median(runs.sqlite), pg: median(runs.pg) };
  const rate = (x: number) => n / (x / 1000);
  return {
    figures: [figure(
      "postgres",
      `bulk \`enqueue --file\`, ${n.toLocaleString("en-US")} jobs: PostgreSQL`,
      rate(ms.pg),
      "jobs/s",
      { label: "same on SQLite", value: rate(ms.sqlite), unit: "jobs/s" },
      "higher",
      `whole CLI call ${(ms.pg / 1000).toFixed(2)} s vs ${(ms.sqlite / 1000).toFixed(2)} s ` +
        `(process start included); median of ${rounds}`,
    )],
    details: {
      jobs: n,
      rounds,
      pgMs: runs.pg.map((x) => round(x, 1)),
      sqliteMs: runs.sqlite.map((x) => round(x, 1)),
    },
  };
}

// --------------------------------------------------------------------- claim

/**
 * Times `claim()` in-process, each followed by an untimed release so that
 * every claim meets the same queue (as bench/scale.ts does on SQLite).
 */
async function timeClaims(store: Store, claims: number): Promise<number[]> {
  try {
    const samples: number[] = [];
    for (let i = -5; i < claims; i++) {
      const started = performance.now();
      const job = await store.claim("bench-pg", Date.now());
      const ms = performance.now() - started;
      if (!job) throw new Error(`claim() found no job at ${store.location}`);
      await store.releaseJob(job, Date.now());
      if (i >= 0) samples.push(ms);
    }
    return samples;
  } finally {
    await store.close();
  }
}

async function measureClaim(
  serverUrl: string,
  dir: string,
  sizes: Sizes,
  problems: string[],
): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const n = sizes.pgClaimJobs;
  const file = `${dir}/waiting.jsonl`;
  await Deno.writeTextFile(file, '"true"\n'.repeat(n));
  const samples = {} as Record<Side, number[]>;
  const buildMs = {} as Record<Side, number>;
  for (const side of STORES) {
    samples[side] = await withStore(serverUrl, dir, side, "claim", async (db) => {
      // The queue is filled the way users fill it; building it is not the measurement.
      progress(`postgres: claim: enqueueing ${n.toLocaleString("en-US")} jobs on ${LABEL[side]}`);
      buildMs[side] = (await cliOk(db, ["enqueue", "--file", file], {
        cwd: dir,
        timeoutMs: 1_800_000,
      })).ms;
      const pending = (await statusJson(db, dir)).jobs.pending;
      if (pending !== n) problems.push(`${LABEL[side]} claim queue holds ${pending} of ${n}`);
      const store = side === "pg"
        ? await openPgStore(db, shown(db))
        : await openSqliteStore(db, { create: false });
      return await timeClaims(store, sizes.scaleClaims);
    });
    progress(`postgres: claim ${LABEL[side]} p50 ${median(samples[side]).toFixed(3)} ms`);
  }
  return {
    figures: [figure(
      "postgres",
      `one \`claim()\` at ${n.toLocaleString("en-US")} waiting jobs, in-process p50: PostgreSQL`,
      median(samples.pg),
      "ms",
      { label: "same on SQLite", value: median(samples.sqlite), unit: "ms" },
      "lower",
      `store opened in-process, ${sizes.scaleClaims} claims, each released untimed; p99 ${
        percentile(samples.pg, 99).toFixed(3)
      } vs ${percentile(samples.sqlite, 99).toFixed(3)} ms; queue filled by enqueue --file ` +
        `in ${(buildMs.pg / 1000).toFixed(1)} vs ${(buildMs.sqlite / 1000).toFixed(1)} s`,
    )],
    details: {
      waitingJobs: n,
      claims: sizes.scaleClaims,
      pg: { p50: round(median(samples.pg), 4), p99: round(percentile(samples.pg, 99), 4) },
      sqlite: {
        p50: round(median(samples.sqlite), 4),
        p99: round(percentile(samples.sqlite, 99), 4),
      },
      buildMs: { pg: round(buildMs.pg, 1), sqlite: round(buildMs.sqlite, 1) },
    },
  };
}

// -------------------------------------------------------------------- search

/** Requests timed per query and size, after one untimed warm-up. */
const SEARCH_RUNS = 5;

/**
 * The text search of the jobs page on PostgreSQL (pg_trgm's GIN index):
 * `GET /api/jobs?q=` at `pgClaimJobs` jobs against 1,000, for text in many
 * jobs and for the id of one job older than 90% of them.
 */
async function measureSearch(
  serverUrl: string,
  dir: string,
  sizes: Sizes,
  problems: string[],
): Promise<{ figures: Figure[]; details: Record<string, unknown> }> {
  const sizesToTime = [1_000, sizes.pgClaimJobs];
  const id = (i: number) => `job-${String(i).padStart(8, "0")}`;
  const queries = [
    { what: "text in many jobs", query: () => "q=echo%209&limit=20" },
    {
      what: "the id of one job older than 90% of them",
      query: (n: number) => `q=${id(n / 10)}&limit=20`,
    },
  ];
  const times: Record<string, number[][]> = {};
  const buildMs: number[] = [];
  for (const n of sizesToTime) {
    const file = `${dir}/search-${n}.jsonl`;
    await Deno.writeTextFile(
      file,
      Array.from({ length: n }, (_, i) => JSON.stringify({ id: id(i), command: `echo ${i}` }))
        .join("\n") + "\n",
    );
    await withStore(serverUrl, dir, "pg", `search-${n}`, async (db) => {
      progress(`postgres: search: enqueueing ${n.toLocaleString("en-US")} jobs`);
      buildMs.push(
        (await cliOk(db, ["enqueue", "--file", file], {
          cwd: dir,
          timeoutMs: 1_800_000,
        })).ms,
      );
      const pending = (await statusJson(db, dir)).jobs.pending;
      if (pending !== n) problems.push(`PostgreSQL search queue holds ${pending} of ${n}`);
      // As autovacuum would have by then: the planner's statistics of the table.
      await withServer(serverUrl, async (sql) => {
        await sql.unsafe(`ANALYZE "${new URL(db).searchParams.get("schema")}".jobs`);
      });
      for (const { what, query } of queries) {
        (times[what] ??= []).push(
          await timeApiJobs(await openPgStore(db, shown(db)), query(n), SEARCH_RUNS),
        );
      }
    });
  }
  const big = sizes.pgClaimJobs.toLocaleString("en-US");
  return {
    figures: queries.map(({ what }) =>
      figure(
        "postgres",
        `\`GET /api/jobs?q=\` (${what}) at ${big} jobs, PostgreSQL, p50`,
        median(times[what][1]),
        "ms",
        { label: "same at 1,000 jobs", value: median(times[what][0]), unit: "ms" },
        "lower",
        `dashboard in-process, whole HTTP request, ${SEARCH_RUNS} requests after a warm-up; ` +
          `jobs enqueued by enqueue --file in ${(buildMs[1] / 1000).toFixed(1)} s`,
      )
    ),
    details: {
      jobs: sizesToTime,
      buildMs: buildMs.map((x) => round(x, 1)),
      ms: Object.fromEntries(
        Object.entries(times).map(([what, [small, large]]) => [what, {
          small: small.map((x) => round(x, 2)),
          big: large.map((x) => round(x, 2)),
        }]),
      ),
    },
  };
}

/** Runs every PostgreSQL-vs-SQLite measurement; one failing part does not stop the others. */
export async function runPostgres(sizes: Sizes): Promise<BenchResult> {
  // Every measurement picks a schema of its own; one named in --pg is not ours to fill or drop.
  let parsed: URL;
  try {
    parsed = new URL(sizes.pgUrl);
  } catch {
    throw new Error(`--pg: not a URL: ${shown(sizes.pgUrl)}`);
  }
  parsed.searchParams.delete("schema");
  const serverUrl = parsed.toString();
  const version = await checkServer(serverUrl);
  progress(`postgres: server ${version} at ${shown(serverUrl)}`);
  return await withTempDir("postgres", async (dir) => {
    const problems: string[] = [];
    const errors: string[] = [];
    const figures: Figure[] = [];
    const details: Record<string, unknown> = { server: version };
    const parts = [
      ["throughput", measureThroughput],
      ["latency", measureLatency],
      ["bulk", measureBulk],
      ["claim", measureClaim],
      ["search", measureSearch],
    ] as const;
    for (const [key, measure] of parts) {
      progress(`postgres: ${key}`);
      try {
        const part = await measure(serverUrl, dir, sizes, problems);
        figures.push(...part.figures);
        details[key] = part.details;
      } catch (error) {
        errors.push(`${key}: ${(error as Error).message}`);
      }
    }
    if (figures.length === 0) throw new Error(errors.join("; "));
    return { figures, details, problems, errors };
  });
}
