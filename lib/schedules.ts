/**
 * Recurring schedules: what one is, when it fires, and what a firing does
 * when the firer comes late. Apart from the cron parser (lib/cron.ts, an npm
 * package loaded only where cron firings are computed) and from the store
 * (which applies a firing in one transaction: lib/store/*_schedules.ts).
 *
 * The rules, stated once for every backend and command:
 * - `--every DUR` fires at the multiples of DUR since the Unix epoch, so a
 *   schedule fires at the same instants whoever computes them (`--every 15m`
 *   at :00, :15, :30 and :45 UTC).
 * - A firing's job has the id `<name>@<firing time, ISO 8601 UTC>`: the
 *   jobs' unique id makes a second job for the same firing impossible.
 * - A firer that comes late (no worker ran, or the leader changed) enqueues
 *   only the latest firing that has come (`--catch-up latest`). With
 *   `--catch-up none` it enqueues none of them when more than one firing
 *   came since the last one applied, or when the one that came is more than
 *   {@linkcode MISSED_AFTER_MS} late. Never a burst of every missed firing.
 *
 * @module
 */

import { formatDuration, parseDuration } from "./duration.ts";
import { UsageError } from "./errors.ts";
import { moduleUrl } from "./module_urls.ts";
import type { JobState } from "./states.ts";

/** Schedule names: like queue names (letters, digits, `.`, `_`, `:`, `-`), 64 characters at most. */
export const SCHEDULE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** What a firing does while the schedule's previous job is still waiting or running. */
export const OVERLAP_POLICIES = ["skip", "allow"] as const;
/** See {@linkcode OVERLAP_POLICIES}. */
export type OverlapPolicy = typeof OVERLAP_POLICIES[number];

/** What happens to firings that came while no worker fired them. */
export const CATCH_UP_POLICIES = ["latest", "none"] as const;
/** See {@linkcode CATCH_UP_POLICIES}. */
export type CatchUpPolicy = typeof CATCH_UP_POLICIES[number];

/** The shortest `--every`: a firer wakes about once a second at most. */
export const MIN_EVERY_MS = 1_000;

/**
 * How late a firing may be and still count as on time: past it, `--catch-up
 * none` skips it. A minute, cron's own grain and longer than the default
 * lease timeout (30 s), so that a leader taking over from one that died does
 * not lose the firing that was due meanwhile.
 */
export const MISSED_AFTER_MS = 60_000;

/** When a schedule fires: a cron expression in a time zone, or a fixed interval. */
export type Timing =
  | { kind: "cron"; expression: string; timeZone: string }
  | { kind: "every"; everyMs: number };

/** A schedule as it is added: its timing, policies and the job spec each firing enqueues. */
export interface NewSchedule {
  name: string;
  timing: Timing;
  overlap: OverlapPolicy;
  catchUp: CatchUpPolicy;
  /** The job spec, as `enqueue --file` reads it (lib/spec.ts), without `id` and `run_at`. */
  job: Record<string, unknown>;
  /** The next firing, epoch ms; null when the timing has no more. */
  nextFireAt: number | null;
  createdAt: number;
}

/** A stored schedule, with what it did last. */
export interface Schedule extends NewSchedule {
  /** When it was paused, epoch ms; null while it fires. */
  pausedAt: number | null;
  /** The firing that enqueued the latest job (or `schedule run`'s moment), epoch ms. */
  lastFireAt: number | null;
  lastJobId: string | null;
  /** The state of that job now; null when there is none (or it was deleted). */
  lastJobState: JobState | null;
  /** Firings skipped because the previous job was still waiting or running. */
  skipped: number;
  lastSkipAt: number | null;
}

/** Checks a schedule name. @throws {UsageError} */
export function checkScheduleName(name: unknown): string {
  if (typeof name !== "string" || !SCHEDULE_NAME_PATTERN.test(name)) {
    throw new UsageError(
      `schedule name: ${
        JSON.stringify(name)
      } is not valid (1-64 characters: letters, digits, '.', '_', ':', '-'; starting with a letter or digit)`,
    );
  }
  return name;
}

/** Parses `--every`. @throws {UsageError} */
export function parseEvery(text: string): number {
  const ms = parseDuration(text, "--every");
  if (ms < MIN_EVERY_MS) throw new UsageError("--every: must be at least 1s");
  return ms;
}

/** The id of the job a firing at `at` (epoch ms) enqueues. */
export function firingJobId(name: string, at: number): string {
  return `${name}@${new Date(at).toISOString()}`;
}

/** Computes firings of one timing; a cron timing's comes from lib/cron.ts. */
export interface Timetable {
  /** The first firing strictly after `after`, epoch ms; null when there is none. */
  nextAfter(after: number): number | null;
}

let cronModule: Promise<typeof import("./cron.ts")> | undefined;

/**
 * The timetable of a timing. A cron timing loads lib/cron.ts (and its npm
 * parser) on its first use, by a URL built at run time (lib/module_urls.ts).
 *
 * @throws {UsageError} for an invalid cron expression or zone
 */
export async function timetableOf(timing: Timing): Promise<Timetable> {
  if (timing.kind === "every") return everyTimetable(timing.everyMs);
  cronModule ??= import(moduleUrl("lib/cron"));
  return (await cronModule).cronTimetable(timing.expression, timing.timeZone);
}

/** The IANA name of this machine's time zone (`TZ` counts), which `--cron` reads times in. */
export function localTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** How a timing is shown: the cron expression, or `every 15m`. */
export function describeTiming(timing: Timing): string {
  return timing.kind === "cron" ? timing.expression : `every ${formatDuration(timing.everyMs)}`;
}

/** The timetable of an `--every` timing: the multiples of the interval since the epoch. */
export function everyTimetable(everyMs: number): Timetable {
  return { nextAfter: (after) => (Math.floor(after / everyMs) + 1) * everyMs };
}

/**
 * The latest firing at or before `now`, given `due`, a firing at or before
 * it: a binary search over whole seconds (firings fall on whole seconds),
 * since cron parsers step forwards only and the gap may be years of minutes.
 */
export function latestFiring(timetable: Timetable, due: number, now: number): number {
  const firstAfterDue = timetable.nextAfter(due);
  if (firstAfterDue === null || firstAfterDue > now) return due;
  // Invariant: some firing lies in (lo, now]; none lies in (hi, now].
  let lo = due;
  let hi = now;
  while (hi - lo > 1_000) {
    // A whole number of seconds past lo, at least one (so that the range always shrinks).
    const mid = lo + Math.max(1, Math.floor((hi - lo) / 2_000)) * 1_000;
    const next = timetable.nextAfter(mid);
    if (next !== null && next <= now) lo = mid;
    else hi = mid;
  }
  return timetable.nextAfter(lo)!;
}

/** What a firer is to do for a schedule whose firing at `due` has come. */
export interface FiringPlan {
  /** The firing to enqueue a job for; null when it is skipped as missed. */
  fireAt: number | null;
  /** The firing after it, epoch ms; null when the timing has no more. */
  next: number | null;
}

/**
 * Plans the firing of a schedule due at `due` as of `now`: the latest
 * firing that has come (earlier ones are never enqueued), unless firings
 * were missed under `--catch-up none` (see the top of this module).
 */
export function planFiring(
  timetable: Timetable,
  catchUp: CatchUpPolicy,
  due: number,
  now: number,
): FiringPlan {
  const latest = latestFiring(timetable, due, now);
  // Under `none`, a firing counts as missed when a later one has come too, or when it is late.
  const missed = catchUp === "none" && (latest !== due || now - latest > MISSED_AFTER_MS);
  return { fireAt: missed ? null : latest, next: timetable.nextAfter(Math.max(latest, now)) };
}
