/**
 * `deno task soak`: the crash soak. Prints a Markdown summary on stdout,
 * progress on stderr, and exits 1 when an invariant fails, 2 when the soak
 * itself could not run (bad flags, a failed set-up, an interruption).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { renderSummary, runSoak } from "./soak.ts";

const HELP = `Usage: deno task soak [options]

Runs many jobs while worker processes are SIGKILLed at random moments and
restarted, then checks that every job ended as planned and none was lost.

  --jobs N            jobs to enqueue (default 2000; quick 300)
  --kills N           least number of worker kills (default 20; quick 6)
  --seed N            seed of the job mix and kill plan (default: random, printed)
  --fail-fraction F   share of jobs meant to end dead (default 0.1)
  --slow-fraction F   share of jobs that work 1-2 s (default 0.02)
  --timeout SECONDS   longest killing phase before giving up (default 240)
  --db URL            soak a PostgreSQL queue (a schema of its own) instead of SQLite
  --keep              keep the database, ledger and worker logs
  --quick             a smoke run of about 15 s
  --help              this text
`;

function integer(value: string | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: expected an integer >= ${min}`);
  return n;
}

function fraction(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !(n >= 0 && n <= 1)) {
    throw new Error(`--${name}: expected a number from 0 to 1`);
  }
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      jobs: { type: "string" },
      kills: { type: "string" },
      seed: { type: "string" },
      "fail-fraction": { type: "string" },
      "slow-fraction": { type: "string" },
      timeout: { type: "string" },
      keep: { type: "boolean" },
      db: { type: "string" },
      quick: { type: "boolean" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const quick = values.quick === true;
  const seed = integer(values.seed, "seed", 0) ?? Math.floor(Math.random() * 2 ** 31);
  const controller = new AbortController();
  // Ctrl+C or SIGTERM aborts the run, whose clean-up then kills every process it started.
  const onInterrupt = () => controller.abort(new Error("interrupted"));
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, onInterrupt);
  try {
    const report = await runSoak({
      jobs: integer(values.jobs, "jobs", 1) ?? (quick ? 300 : 2000),
      kills: integer(values.kills, "kills", 0) ?? (quick ? 6 : 20),
      seed,
      failFraction: fraction(values["fail-fraction"], "fail-fraction"),
      slowFraction: fraction(values["slow-fraction"], "slow-fraction"),
      timeoutMs: (integer(values.timeout, "timeout", 1) ?? 240) * 1000,
      keep: values.keep === true,
      db: values.db,
      log: (line) => console.error(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}`),
      signal: controller.signal,
    });
    console.log(renderSummary(report));
    return report.passed ? 0 : 1;
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, onInterrupt);
  }
}

try {
  Deno.exit(await main());
} catch (error) {
  console.error(`soak: ${(error as Error).message}`);
  Deno.exit(2);
}
