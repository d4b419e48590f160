/**
 * Limits: what queue limits cost a claim. Two queues of the same shape
 * (2,000 waiting jobs, 20 running), one with a concurrency and a rate limit
 * set that never bind (so that every claim checks them and records its
 * start, and none is refused), one without; `claim()` is timed in-process
 * on each, in interleaved rounds, each claim released untimed. On SQLite
 * and, when its server answers, on PostgreSQL.
 *
 * @module
 */

import { openPgStore } from "../lib/store/pg_store.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import type { Store } from "../lib/store/store.ts";
import { checkServer, type Side, withStore } from "./postgres.ts";
import {
  type BenchResult,
  type Figure,
  figure,
  median,
  percentile,
  progress,
  round,
  type Sizes,
  withTempDir,
} from "./util.ts";

const WAITING = 2_000;
const RUNNING = 20;
const ROUNDS = 10;
const LABEL: Record<Side, string> = { sqlite: "SQLite", pg: "PostgreSQL" };

/** Fills `store` with the shape every timed claim meets; sets limits on it when `limited`. */
async function prepare(store: Store, limited: boolean): Promise<void> {
  if (limited) {
    await store.setQueueLimits("default", {
      concurrency: 1_000,
      rate: { starts: 1_000_000, periodMs: 60_000 },
    });
  }
  const now = Date.now();
  await store.enqueue(
    Array.from({ length: WAITING }, (_, i) => ({
      id: `job-${i}`,
      queue: "default",
      after: [],
      command: "true",
      maxRetries: 0,
      priority: 0,
      runAt: now,
      timeoutMs: null,
      cwd: "/tmp",
    })),
    now,
  );
  for (let i = 0; i < RUNNING; i++) await store.claim("bench-running", Date.now());
}

/** Times `claims` claims on `store`, each released untimed. */
async function timeClaims(store: Store, claims: number, samples: number[]): Promise<void> {
  for (let i = 0; i < claims; i++) {
    const started = performance.now();
    const job = await store.claim("bench-limits", Date.now());
    const ms = performance.now() - started;
    if (!job) throw new Error(`claim() found no job at ${store.location}`);
    await store.releaseJob(job, Date.now());
    samples.push(ms);
  }
}

async function measure(
  side: Side,
  sizes: Sizes,
  dir: string,
): Promise<{ figure: Figure; details: Record<string, unknown> }> {
  const open = (db: string) =>
    side === "pg" ? openPgStore(db, "bench") : openSqliteStore(db, { create: false });
  return await withStore(
    sizes.pgUrl,
    dir,
    side,
    "plain",
    (plainDb) =>
      withStore(sizes.pgUrl, dir, side, "limited", async (limitedDb) => {
        const [plain, limited] = [await open(plainDb), await open(limitedDb)];
        try {
          await prepare(plain, false);
          await prepare(limited, true);
          const perRound = Math.max(10, Math.ceil(sizes.scaleClaims / ROUNDS));
          // A few untimed claims each first: statement caches and connections warm.
          await timeClaims(plain, 5, []);
          await timeClaims(limited, 5, []);
          const samples = { plain: [] as number[], limited: [] as number[] };
          for (let round = 0; round < ROUNDS; round++) {
            // Interleaved, in alternating order, so that drift in the machine's load hits both.
            const order = round % 2 === 0
              ? ["plain", "limited"] as const
              : ["limited", "plain"] as const;
            for (const which of order) {
              await timeClaims(which === "plain" ? plain : limited, perRound, samples[which]);
            }
          }
          const [p50, base] = [median(samples.limited), median(samples.plain)];
          progress(`limits: ${LABEL[side]} claim p50 ${p50.toFixed(3)} vs ${base.toFixed(3)} ms`);
          return {
            figure: figure(
              "limits",
              `one \`claim()\` with limits set (concurrency and rate), in-process p50: ${
                LABEL[side]
              }`,
              p50,
              "ms",
              { label: "same without limits", value: base, unit: "ms" },
              "lower",
              `${WAITING} waiting, ${RUNNING} running; ${samples.plain.length} claims each, ` +
                `${ROUNDS} interleaved rounds; p99 ${
                  percentile(samples.limited, 99).toFixed(3)
                } vs ` +
                `${percentile(samples.plain, 99).toFixed(3)} ms; target ratio ≤ 1.5`,
            ),
            details: {
              claims: samples.plain.length,
              limited: {
                p50: round(p50, 4),
                p99: round(percentile(samples.limited, 99), 4),
              },
              plain: { p50: round(base, 4), p99: round(percentile(samples.plain, 99), 4) },
            },
          };
        } finally {
          await plain.close();
          await limited.close();
        }
      }),
  );
}

/** Runs the limits benchmark (PostgreSQL's part only when its server answers). */
export async function runLimits(sizes: Sizes): Promise<BenchResult> {
  return await withTempDir("limits", async (dir) => {
    const figures: Figure[] = [];
    const details: Record<string, unknown> = {};
    const errors: string[] = [];
    for (const side of ["sqlite", "pg"] as const) {
      try {
        if (side === "pg") await checkServer(sizes.pgUrl);
        const result = await measure(side, sizes, dir);
        figures.push(result.figure);
        details[side] = result.details;
      } catch (error) {
        errors.push(`${LABEL[side]}: ${(error as Error).message}`);
      }
    }
    return { figures, details, problems: [], errors };
  });
}
