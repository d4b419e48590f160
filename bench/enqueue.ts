/**
 * Enqueue cost: one `enqueue 'true'` end to end (process start included),
 * from the release bundle and from the source, against the runtime's own
 * start (`deno run` of an empty script), and a bulk
 * `enqueue --file` of JSON Lines against raw node:sqlite inserts into the
 * same table, the floor.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { bundle } from "../tools/bundle.ts";
import {
  type BenchResult,
  cliOk,
  emptyDenoRun,
  type Figure,
  figure,
  initDb,
  median,
  percentile,
  progress,
  removeDb,
  round,
  runTimed,
  type Sizes,
  statusJson,
  withTempDir,
} from "./util.ts";

/** Runs `enqueue true` through the release bundle's main.js; resolves with its time in ms. */
async function bundleEnqueue(main: string, db: string, cwd: string): Promise<number> {
  const result = await runTimed(
    Deno.execPath(),
    ["run", "-A", main, "--db", db, "enqueue", "true"],
    {
      cwd,
    },
  );
  if (result.code !== 0) throw new Error(`bundled enqueue exited ${result.code}: ${result.stderr}`);
  return result.ms;
}

/**
 * One `enqueue 'true'` from the source (`deno run main.ts`, as a checkout
 * runs it) and from the release bundle (tools/bundle.ts, what the release
 * binary is compiled from), interleaved with an empty `deno run`.
 */
async function single(dir: string, runs: number): Promise<{ figures: Figure[]; details: object }> {
  const db = `${dir}/single.db`;
  const bundledDb = `${dir}/single-bundled.db`;
  await initDb(db, dir);
  await initDb(bundledDb, dir);
  const runEmpty = await emptyDenoRun(dir);
  // Inside the project, where `deno run` finds deno.json, as `deno compile` does.
  await Deno.mkdir(`${ROOT}bundle`, { recursive: true });
  const bundleDir = await Deno.makeTempDir({ dir: `${ROOT}bundle`, prefix: "bench-" });
  try {
    await bundle(bundleDir);
    const main = `${bundleDir}/main.js`;
    // Warm-up, unmeasured: the first run of each fills Deno's module and transpile caches.
    for (let i = 0; i < 2; i++) {
      await cliOk(db, ["enqueue", "true"], { cwd: dir });
      await bundleEnqueue(main, bundledDb, dir);
      await runEmpty();
    }
    const source: number[] = [];
    const bundled: number[] = [];
    const bare: number[] = [];
    // Interleaved, so that a noisy moment on the shared VM hits every side alike.
    for (let i = 0; i < runs; i++) {
      source.push((await cliOk(db, ["enqueue", "true"], { cwd: dir })).ms);
      bundled.push(await bundleEnqueue(main, bundledDb, dir));
      bare.push(await runEmpty());
    }
    const base = median(bare);
    const baseline = { label: "deno run of an empty script, p50", value: base, unit: "ms" };
    const row = (what: string, times: number[]) =>
      figure(
        "enqueue",
        `one \`enqueue 'true'\`, whole CLI call, ${what}, p50 of ${runs}`,
        median(times),
        "ms",
        baseline,
        "lower",
        `queuectl's own share ≈ ${(median(times) - base).toFixed(1)} ms; p90 ${
          percentile(times, 90).toFixed(1)
        } vs ${percentile(bare, 90).toFixed(1)} ms`,
      );
    return {
      figures: [
        row("release bundle (what the binary is built from)", bundled),
        row("from source (deno run main.ts)", source),
      ],
      details: {
        runs,
        bundleMs: { p50: round(median(bundled)), p90: round(percentile(bundled, 90)) },
        sourceMs: { p50: round(median(source)), p90: round(percentile(source, 90)) },
        emptyDenoMs: { p50: round(base), p90: round(percentile(bare, 90)) },
      },
    };
  } finally {
    await Deno.remove(bundleDir, { recursive: true });
  }
}

const ROOT = new URL("../", import.meta.url).pathname;

/**
 * The floor: the same rows through one prepared INSERT in one transaction,
 * into a table queuectl itself created (so the same indexes and any
 * triggers apply), with queuectl's pragmas. No process start, no parsing.
 */
function rawInsert(db: string, n: number, cwd: string): number {
  const started = performance.now();
  const conn = new DatabaseSync(db, { timeout: 5_000 });
  conn.exec("PRAGMA synchronous = NORMAL");
  const insert = conn.prepare(
    `INSERT INTO jobs (id, command, state, max_retries, priority, run_at, created_at, updated_at,
       timeout_ms, cwd) VALUES (?, 'true', 'pending', 3, 0, ?, ?, ?, NULL, ?)`,
  );
  const now = Date.now();
  conn.exec("BEGIN IMMEDIATE");
  for (let i = 0; i < n; i++) {
    insert.run(`raw-${now.toString(36)}-${i.toString(36).padStart(6, "0")}`, now, now, now, cwd);
  }
  conn.exec("COMMIT");
  conn.close();
  return performance.now() - started;
}

async function bulk(
  dir: string,
  n: number,
  rounds: number,
  problems: string[],
): Promise<{ figure: Figure; details: object }> {
  const file = `${dir}/bulk.jsonl`;
  await Deno.writeTextFile(file, '"true"\n'.repeat(n));
  const cliMs: number[] = [];
  const rawMs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const db = `${dir}/bulk-${r}.db`;
    await initDb(db, dir);
    cliMs.push(
      (await cliOk(db, ["enqueue", "--file", file], { cwd: dir, timeoutMs: 600_000 })).ms,
    );
    const pending = (await statusJson(db, dir)).jobs.pending;
    if (pending !== n) problems.push(`bulk enqueue of ${n} left ${pending} pending jobs`);
    await removeDb(db);

    const rawDb = `${dir}/raw-${r}.db`;
    await initDb(rawDb, dir);
    rawMs.push(rawInsert(rawDb, n, dir));
    await removeDb(rawDb);
    progress(
      `enqueue bulk round ${r + 1}/${rounds}: CLI ${(cliMs[r] / 1000).toFixed(2)} s, ` +
        `raw ${(rawMs[r] / 1000).toFixed(2)} s`,
    );
  }
  const rate = (ms: number) => n / (ms / 1000);
  const cli = median(cliMs);
  const raw = median(rawMs);
  return {
    figure: figure(
      "enqueue",
      `bulk \`enqueue --file\`, ${n.toLocaleString("en-US")} jobs (JSON Lines)`,
      rate(cli),
      "jobs/s",
      { label: "raw node:sqlite INSERTs, one transaction", value: rate(raw), unit: "rows/s" },
      "higher",
      `whole CLI call ${(cli / 1000).toFixed(2)} s (process start and parsing included) vs ` +
        `${(raw / 1000).toFixed(2)} s in-process; median of ${rounds}`,
    ),
    details: {
      jobs: n,
      rounds,
      cliMs: cliMs.map((x) => round(x, 1)),
      rawMs: rawMs.map((x) => round(x, 1)),
    },
  };
}

/** Runs the single and bulk enqueue measurements. */
export function runEnqueue(sizes: Sizes): Promise<BenchResult> {
  return withTempDir("enqueue", async (dir) => {
    const problems: string[] = [];
    progress(`enqueue: ${sizes.enqueueRuns} single enqueues`);
    const one = await single(dir, sizes.enqueueRuns);
    progress(`enqueue: bulk ${sizes.bulkJobs} jobs × ${sizes.bulkRounds}`);
    const many = await bulk(dir, sizes.bulkJobs, sizes.bulkRounds, problems);
    return {
      figures: [...one.figures, many.figure],
      details: { single: one.details, bulk: many.details },
      problems,
    };
  });
}
