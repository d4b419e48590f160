/**
 * `deno task bench`: runs queuectl's benchmarks, prints a Markdown table and
 * writes the same figures as JSON. Every figure stands beside a baseline
 * measured in the same run, because absolute timings on a shared VM say
 * little on their own.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runEnqueue } from "./enqueue.ts";
import { runLatency } from "./latency.ts";
import { runLimits } from "./limits.ts";
import { runMemory } from "./memory.ts";
import { DEFAULT_BENCH_PG_URL, runPostgres } from "./postgres.ts";
import { renderMarkdown, type Report } from "./report.ts";
import { runScale } from "./scale.ts";
import { runDashboard } from "./dashboard.ts";
import { runTables } from "./tables.ts";
import { runThroughput } from "./throughput.ts";
import {
  type BenchResult,
  cleanUpEverything,
  leftovers,
  machineInfo,
  progress,
  ROOT,
  round,
  type Sizes,
} from "./util.ts";

const BENCHMARKS: Record<string, (sizes: Sizes) => Promise<BenchResult>> = {
  throughput: runThroughput,
  latency: runLatency,
  enqueue: runEnqueue,
  tables: runTables,
  scale: runScale,
  memory: runMemory,
  postgres: runPostgres,
  dashboard: runDashboard,
  limits: runLimits,
};

const HELP = `Usage: deno task bench [options]

Runs queuectl's benchmarks; prints a Markdown table, writes JSON.

  --out PATH           JSON output (default bench/results.json)
  --quick              small sizes: a smoke run of about a minute
  --only LIST          comma-separated subset of: ${Object.keys(BENCHMARKS).join(", ")}
  --jobs N             throughput: jobs per run (default 2000; quick 200)
  --rounds N           throughput, bulk enqueue (and theirs in postgres): rounds, median
                       kept (default 3; quick 1)
  --latency-jobs N     latency: jobs enqueued one at a time (default 200; quick 30)
  --idle-seconds N     idle CPU window (default 10; quick 3)
  --enqueue-runs N     single enqueue: runs (default 50; quick 10)
  --table-runs N       table commands' start-up: rounds (default 30; quick 10)
  --bulk-jobs N        bulk enqueue: jobs (default 100000; quick 10000)
  --scale-jobs N       scale: jobs in the large database (default 1000000; quick 50000)
  --scale-runs N       scale: runs per CLI call (default 5; quick 3)
  --claims N           scale, postgres and limits: timed claims per database (default 200;
                       quick 50)
  --pg URL             postgres: the server (default $QUEUECTL_TEST_PG, else
                       ${DEFAULT_BENCH_PG_URL.replace(/:[^:@/]+@/, ":***@")})
  --pg-jobs N          postgres: throughput jobs (default 1000; quick 200)
  --pg-bulk-jobs N     postgres: bulk enqueue jobs (default 20000; quick 5000)
                       postgres claims at --scale-jobs waiting jobs when given
                       (else 200000; quick 20000)
  --help               this text
`;

function positive(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: expected a positive integer`);
  return n;
}

function parseOptions(argv: string[]): { sizes: Sizes; only: string[]; out: string } | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      out: { type: "string" },
      quick: { type: "boolean" },
      only: { type: "string" },
      jobs: { type: "string" },
      rounds: { type: "string" },
      "latency-jobs": { type: "string" },
      "idle-seconds": { type: "string" },
      "enqueue-runs": { type: "string" },
      "table-runs": { type: "string" },
      "bulk-jobs": { type: "string" },
      "scale-jobs": { type: "string" },
      "scale-runs": { type: "string" },
      claims: { type: "string" },
      pg: { type: "string" },
      "pg-jobs": { type: "string" },
      "pg-bulk-jobs": { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) return null;
  const quick = values.quick === true;
  const pick = (name: keyof typeof values, full: number, small: number) =>
    positive(values[name] as string | undefined, name) ?? (quick ? small : full);
  const rounds = pick("rounds", 3, 1);
  const sizes: Sizes = {
    quick,
    throughputJobs: pick("jobs", 2_000, 200),
    throughputCounts: [1, 2, 4],
    throughputRounds: rounds,
    latencyJobs: pick("latency-jobs", 200, 30),
    idleSeconds: pick("idle-seconds", 10, 3),
    enqueueRuns: pick("enqueue-runs", 50, 10),
    tableRuns: pick("table-runs", 30, 10),
    bulkJobs: pick("bulk-jobs", 100_000, 10_000),
    bulkRounds: rounds,
    scaleJobs: pick("scale-jobs", 1_000_000, 50_000),
    scaleSmallJobs: 1_000,
    scaleRuns: pick("scale-runs", 5, 3),
    scaleClaims: pick("claims", 200, 50),
    memoryCounts: [1, 4, 16],
    pgUrl: values.pg ?? (Deno.env.get("QUEUECTL_TEST_PG") || DEFAULT_BENCH_PG_URL),
    pgThroughputJobs: pick("pg-jobs", 1_000, 200),
    pgBulkJobs: pick("pg-bulk-jobs", 20_000, 5_000),
    // Why not --scale-jobs' own default: 1,000,000 jobs through `enqueue --file` on PostgreSQL
    // takes minutes; the full size is there for whoever asks for it.
    pgClaimJobs: pick("scale-jobs", 200_000, 20_000),
  };
  const only = values.only === undefined
    ? Object.keys(BENCHMARKS)
    : values.only.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const unknown = only.filter((name) => !(name in BENCHMARKS));
  if (unknown.length > 0 || only.length === 0) {
    throw new Error(
      `--only: unknown benchmark ${unknown.join(", ") || "(none given)"} ` +
        `(known: ${Object.keys(BENCHMARKS).join(", ")})`,
    );
  }
  return { sizes, only, out: values.out ?? `${ROOT}bench/results.json` };
}

async function main(): Promise<number> {
  let options: ReturnType<typeof parseOptions>;
  try {
    options = parseOptions(Deno.args);
  } catch (error) {
    console.error(`bench: ${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (options === null) {
    console.log(HELP);
    return 0;
  }
  const { sizes, only, out } = options;

  // Ctrl+C must not leave workers, jobs or temp databases behind.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, async () => {
      console.error(`bench: ${signal}: stopping every process and removing temp dirs`);
      await cleanUpEverything();
      Deno.exit(signal === "SIGINT" ? 130 : 143);
    });
  }

  const machine = await machineInfo();
  progress(`machine: ${machine.line}`);
  const startedAt = new Date();
  const started = performance.now();
  const report: Report = {
    machine,
    startedAt: startedAt.toISOString(),
    durationSeconds: 0,
    sizes,
    benchmarks: only,
    figures: [],
    details: {},
    problems: [],
    errors: [],
    leftovers,
  };
  for (const name of only) {
    const benchStarted = performance.now();
    progress(`${name}: starting`);
    try {
      const result = await BENCHMARKS[name](sizes);
      report.figures.push(...result.figures);
      report.details[name] = {
        ...result.details,
        seconds: round((performance.now() - benchStarted) / 1000, 1),
      };
      report.problems.push(...result.problems.map((p) => `${name}: ${p}`));
      for (const message of result.errors ?? []) {
        report.errors.push({ benchmark: name, message });
        progress(`${name}: part FAILED: ${message}`);
      }
    } catch (error) {
      const message = (error as Error).message;
      report.errors.push({ benchmark: name, message });
      progress(`${name}: FAILED: ${message}`);
    }
    progress(`${name}: done in ${((performance.now() - benchStarted) / 1000).toFixed(1)} s`);
  }
  report.durationSeconds = round((performance.now() - started) / 1000, 1);
  // Others may be editing lib/ meanwhile; figures from a tree that changed mid-run mix two versions.
  const codeAtEnd = (await machineInfo()).commit;
  if (codeAtEnd !== machine.commit) {
    report.problems.push(`the code changed during the run: ${machine.commit} → ${codeAtEnd}`);
  }

  await Deno.writeTextFile(out, JSON.stringify(report, null, 2) + "\n");
  console.log(renderMarkdown(report));
  progress(`wrote ${out}; total ${report.durationSeconds} s`);
  return report.errors.length > 0 ? 1 : 0;
}

Deno.exit(await main());
