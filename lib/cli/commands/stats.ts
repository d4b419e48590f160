/**
 * `queuectl stats`: execution metrics. Jobs by state now; for the runs that
 * ended within a window (`--since`, default 1h): outcomes, success rate,
 * retries and durations; throughput over the last 1, 15 and 60 minutes (runs
 * finished per minute); and how overdue the oldest waiting job is.
 *
 * @module
 */

import { formatDuration, parseDuration } from "../../duration.ts";
import { UsageError } from "../../errors.ts";
import { isoTime } from "../../job.ts";
import { JOB_STATES } from "../../states.ts";
import type { RunStats, StateCounts, Store } from "../../store/store.ts";
import type { CommandContext } from "../context.ts";
import { humanTime, printJson, writeOut } from "../output.ts";

/** The window `stats` looks at when no `--since` is given. */
const DEFAULT_WINDOW_MS = 3_600_000;

/** The throughput windows, in minutes. */
const THROUGHPUT_MINUTES = [1, 15, 60] as const;

/** Everything `stats` reports, gathered at one moment. */
export interface StatsReport {
  now: number;
  windowMs: number;
  counts: StateCounts;
  runs: RunStats;
  /** Runs finished within each throughput window, by minutes. */
  throughput: { minutes: number; runs: number }[];
  /** The earliest `run_at` of a waiting job, if any waits. */
  oldestWaitingRunAt: number | undefined;
}

/** Reads every figure `stats` prints. */
export async function gatherStats(
  store: Store,
  windowMs: number,
  now = store.now(),
): Promise<StatsReport> {
  const [counts, runs, oldestWaitingRunAt, ...windows] = await Promise.all([
    store.countByState(),
    store.runStats(now - windowMs),
    store.oldestWaitingRunAt(),
    ...THROUGHPUT_MINUTES.map((minutes) => store.runStats(now - minutes * 60_000)),
  ]);
  return {
    now,
    windowMs,
    counts,
    runs,
    throughput: THROUGHPUT_MINUTES.map((minutes, i) => ({ minutes, runs: windows[i].runs })),
    oldestWaitingRunAt,
  };
}

/**
 * A span of milliseconds for people, short and to two or three significant
 * figures: `850ms`, `1.25s`, `42.1s`, `3m05s`, `2h07m`, `3d04h`.
 */
export function formatElapsed(ms: number): string {
  const value = Math.max(0, Math.round(ms));
  if (value < 1_000) return `${value}ms`;
  if (value < 10_000) return `${(value / 1_000).toFixed(2)}s`;
  if (value < 60_000) return `${(value / 1_000).toFixed(1)}s`;
  const pair = (big: number, bigUnit: string, small: number, smallUnit: string) => {
    const whole = Math.floor(value / big);
    const rest = Math.floor((value % big) / small);
    return `${whole}${bigUnit}${String(rest).padStart(2, "0")}${smallUnit}`;
  };
  if (value < 3_600_000) return pair(60_000, "m", 1_000, "s");
  if (value < 86_400_000) return pair(3_600_000, "h", 60_000, "m");
  return pair(86_400_000, "d", 3_600_000, "h");
}

/** Succeeded runs as a fraction of all runs, or null when there were none. */
function successRate(runs: RunStats): number | null {
  return runs.runs === 0 ? null : runs.succeeded / runs.runs;
}

/** Rounds to `digits` decimals, for JSON figures that are ratios or rates. */
function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** How long the oldest waiting job has been due, or null when none is due yet. */
function overdueMs(report: StatsReport): number | null {
  const at = report.oldestWaitingRunAt;
  return at === undefined || at > report.now ? null : report.now - at;
}

/** The JSON form of a report: snake_case keys, ISO 8601 UTC times, durations in ms. */
export function statsToJson(report: StatsReport): Record<string, unknown> {
  const { runs } = report;
  const rate = successRate(runs);
  const at = report.oldestWaitingRunAt;
  return {
    now: isoTime(report.now),
    since: isoTime(report.now - report.windowMs),
    window_ms: report.windowMs,
    jobs: report.counts,
    runs: {
      total: runs.runs,
      succeeded: runs.succeeded,
      failed: runs.failed,
      retries: runs.retries,
      success_rate: rate === null ? null : round(rate, 4),
    },
    duration_ms: runs.durationMs === null ? null : {
      mean: Math.round(runs.durationMs.mean),
      p50: runs.durationMs.p50,
      p95: runs.durationMs.p95,
      max: runs.durationMs.max,
    },
    throughput: Object.fromEntries(report.throughput.map(({ minutes, runs }) => [
      `last_${minutes}m`,
      { runs, runs_per_minute: round(runs / minutes, 3) },
    ])),
    oldest_waiting: at === undefined ? null : {
      run_at: isoTime(at),
      overdue_ms: overdueMs(report),
    },
  };
}

/** A rate for people: at most two decimals, no trailing zeros. */
function formatRate(value: number): string {
  if (value === 0) return "0";
  if (value < 0.01) return "<0.01";
  return String(round(value, 2));
}

/** The human form of a report: an aligned block of labelled lines. */
export function statsToText(report: StatsReport): string {
  const { runs, counts } = report;
  const since = report.now - report.windowMs;
  const stateWidth = Math.max(...JOB_STATES.map((s) => s.length));
  const countWidth = Math.max(...JOB_STATES.map((s) => String(counts[s]).length));
  const half = JOB_STATES.length / 2;
  // Two columns of states: waiting and running on the left, finished on the right.
  const stateCell = (i: number) =>
    `${JOB_STATES[i].padEnd(stateWidth)} ${String(counts[JOB_STATES[i]]).padStart(countWidth)}`;
  const stateRows = Array.from(
    { length: half },
    (_, i) => `${stateCell(i)}    ${stateCell(i + half)}`,
  );
  const rate = successRate(runs);
  const d = runs.durationMs;
  const at = report.oldestWaitingRunAt;
  const overdue = overdueMs(report);
  const label = (text: string) => `  ${text.padEnd(12)}`;
  const lines = [
    "Jobs now",
    ...stateRows.map((row) => `  ${row}`),
    "",
    `Runs finished in the last ${formatDuration(report.windowMs)} (since ${humanTime(since)})`,
    `${label("total")}${runs.runs}  (${runs.succeeded} succeeded, ${runs.failed} failed)`,
    `${label("success")}${rate === null ? "-" : `${(rate * 100).toFixed(1)}%`}`,
    `${label("retries")}${runs.retries}  (runs that were a 2nd or later attempt)`,
    `${label("duration")}${
      d === null
        ? "-"
        : `mean ${formatElapsed(d.mean)}  p50 ${formatElapsed(d.p50)}  p95 ${
          formatElapsed(d.p95)
        }  max ${formatElapsed(d.max)}`
    }`,
    "",
    "Throughput (runs finished per minute)",
    `  ${
      report.throughput.map(({ minutes, runs }) =>
        `last ${minutes}m: ${formatRate(runs / minutes)}`
      )
        .join("    ")
    }`,
    "",
    `Oldest waiting job: ${
      at === undefined
        ? "none waiting"
        : overdue === null
        ? `none due yet (next at ${humanTime(at)})`
        : `due ${formatElapsed(overdue)} ago (run_at ${humanTime(at)})`
    }`,
  ];
  return lines.join("\n") + "\n";
}

/** Runs `stats`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const sinceText = args.options.since as string | undefined;
  const windowMs = sinceText === undefined
    ? DEFAULT_WINDOW_MS
    : parseDuration(sinceText, "--since");
  if (windowMs === 0) throw new UsageError("--since: must be longer than 0");
  const store = await openStore();
  try {
    const report = await gatherStats(store, windowMs);
    if (args.options.json) printJson(statsToJson(report));
    else writeOut(statsToText(report));
    return 0;
  } finally {
    await store.close();
  }
}
