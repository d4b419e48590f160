/**
 * Queue limits (`queue set`), stated once for the CLI and both backends:
 *
 * - **concurrency N**: at most N of the queue's jobs are `processing` at once,
 *   across every worker process and host. A claim counts the queue's running
 *   jobs inside its own transaction (SQLite: the write lock; PostgreSQL: a lock
 *   on the queue's row) and takes a job only while fewer than N run.
 * - **rate N/DUR**: at most N claims (starts) in any window of DUR: the window
 *   slides: a claim at `now` is allowed while fewer than N of the queue's
 *   starts lie in (now − DUR, now], that is while its N-th latest start is
 *   DUR old or older ({@linkcode rateOpensAt}). The backends keep the latest
 *   N starts as a ring of N slots, so that this check costs one lookup
 *   whatever N: the slot the next start overwrites holds the start N
 *   starts ago. A new N starts the ring afresh (the recent starts are
 *   forgotten); a new DUR alone keeps it.
 *
 * A full queue is skipped by the claim, never waited on: a worker serving
 * several queues takes another queue's job. Every retry of a job is a start.
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { parseCount } from "./numbers.ts";

/** At most `starts` claims in any window of `periodMs`. */
export interface RateLimit {
  starts: number;
  periodMs: number;
}

/** A queue's limits; null where the queue has none. */
export interface QueueLimits {
  concurrency: number | null;
  rate: RateLimit | null;
}

/** A change of limits (`queue set`): only the fields given change; null removes a limit. */
export interface QueueLimitsChange {
  concurrency?: number | null;
  rate?: RateLimit | null;
}

/** The largest limit accepted (a number SQLite and PostgreSQL's `integer` both hold). */
export const MAX_LIMIT = 1_000_000;

/** The word that removes a limit. */
export const NO_LIMIT = "none";

function checkLimit(n: number, what: string, text: string): number {
  if (n < 1 || n > MAX_LIMIT) {
    throw new UsageError(`${what}: '${text}' must be from 1 to ${MAX_LIMIT}, or '${NO_LIMIT}'`);
  }
  return n;
}

/** `--concurrency N|none`: a positive count, or null for no limit. */
export function parseConcurrency(text: string, what = "--concurrency"): number | null {
  if (text.trim() === NO_LIMIT) return null;
  return checkLimit(parseCount(text, what), what, text);
}

/** `--rate N/DUR|none` (e.g. `10/1m`, `5/s`): a rate, or null for no limit. */
export function parseRate(text: string, what = "--rate"): RateLimit | null {
  const trimmed = text.trim();
  if (trimmed === NO_LIMIT) return null;
  const slash = trimmed.indexOf("/");
  if (slash < 0) {
    throw new UsageError(`${what}: '${text}' is not a rate (use N/DUR, e.g. 10/1m, or 'none')`);
  }
  const starts = checkLimit(parseCount(trimmed.slice(0, slash), what), what, text);
  // "5/s" reads as five per second: a bare unit is one of it.
  const period = trimmed.slice(slash + 1);
  const periodMs = parseDuration(/^[a-z]+$/.test(period) ? `1${period}` : period, what);
  if (periodMs < 1) throw new UsageError(`${what}: '${text}' has an empty window`);
  return { starts, periodMs };
}

/** A rate as `queue set` takes it, e.g. `10/1m`. */
export function formatRate(rate: RateLimit): string {
  return `${rate.starts}/${formatDuration(rate.periodMs)}`;
}

/**
 * When a rate-limited queue whose window is full takes its next start: once
 * its `starts`-th latest start (`nthLatestStart`) has left the window. The
 * rule both backends' claims test in SQL: a claim at `now` is allowed while
 * fewer than `starts` starts lie in (now − periodMs, now].
 */
export function rateOpensAt(nthLatestStart: number, periodMs: number): number {
  return nthLatestStart + periodMs;
}

/**
 * How full a queue's limits are, e.g. `2/3 running, 5/10 per 1m`; empty
 * without limits. `running` are its jobs running now, `recentStarts` its
 * starts in the rate window that ends now.
 */
export function limitsUsage(limits: QueueLimits, running: number, recentStarts: number): string {
  const parts: string[] = [];
  if (limits.concurrency !== null) parts.push(`${running}/${limits.concurrency} running`);
  if (limits.rate !== null) {
    parts.push(
      `${recentStarts}/${limits.rate.starts} per ${formatDuration(limits.rate.periodMs)}`,
    );
  }
  return parts.join(", ");
}
