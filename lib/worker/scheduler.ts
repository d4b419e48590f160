/**
 * The firer of recurring schedules, run by every `worker start` process and
 * acting only in the elected leader (the holder of the leader lease, who
 * also does the upkeep): it sleeps until the next firing comes (at most
 * {@linkcode RECHECK_MS}, and less when a poke says the schedules may have
 * changed), then applies each due firing through the store, which lets one
 * firer apply a firing however many race (lib/store/store.ts
 * `fireSchedule`). The rules of a firing are lib/schedules.ts's.
 *
 * @module
 */

import { firingJobId, planFiring, type Schedule, timetableOf } from "../schedules.ts";
import { QueueError, UsageError } from "../errors.ts";
import type { NewJob } from "../job.ts";
import { resolveSpec } from "../spec.ts";
import type { FiringResult, Store } from "../store/store.ts";

/**
 * How long the firer sleeps at most before it reads the schedules again:
 * how late, at worst, a process that just took the leader lease starts
 * firing, and a new schedule whose poke was lost fires.
 */
export const RECHECK_MS = 5_000;
/** The least time between two reads of the schedules, however often pokes come. */
const MIN_READ_GAP_MS = 100;

/** What one firing round did to one schedule. */
export interface FiringReport {
  name: string;
  /** The store's {@linkcode FiringResult}, or `failed` when the job spec no longer resolves. */
  result: FiringResult | "failed";
  /** Why the firing failed. */
  error?: string;
  /** The firing's job id, when it was to enqueue one. */
  jobId: string | null;
  /** The schedule's next firing now, epoch ms; null when it has no more. */
  next: number | null;
}

/** What {@linkcode fireDueSchedules} did, and when the next firing comes. */
export interface FiringRound {
  /** Null when `workerId` is not the leader (nothing was read or fired). */
  reports: FiringReport[] | null;
  /** The earliest next firing of a schedule that is not paused, epoch ms; null when none. */
  nextDue: number | null;
}

/**
 * Applies every firing that has come by `now`, if `workerId` holds the
 * leader lease: for each due schedule, plans the firing (lib/schedules.ts
 * `planFiring`: the latest one only, none if missed under `--catch-up
 * none`), resolves its job from the schedule's job spec as of the firing, and
 * has the store apply it.
 */
export async function fireDueSchedules(
  store: Store,
  workerId: string,
  now = store.now(),
): Promise<FiringRound> {
  const schedules = await store.schedulesToFire(workerId);
  if (schedules === null) return { reports: null, nextDue: null };
  const reports: FiringReport[] = [];
  let nextDue: number | null = null;
  const config = schedules.some((s) => s.nextFireAt! <= now) ? await store.getConfig() : null;
  for (const schedule of schedules) {
    let next = schedule.nextFireAt;
    if (next !== null && next <= now) {
      try {
        const report = await fireOne(store, schedule, now, config!);
        reports.push(report);
        next = report.next;
      } catch (error) {
        // One schedule's failure (a job it runs after, deleted since) must not stop the others;
        // it is tried again at the next read rather than at once.
        if (!(error instanceof QueueError)) throw error;
        reports.push({
          name: schedule.name,
          result: "failed",
          error: error.message,
          jobId: null,
          next,
        });
        continue;
      }
    }
    if (next !== null && (nextDue === null || next < nextDue)) nextDue = next;
  }
  return { reports, nextDue };
}

async function fireOne(
  store: Store,
  schedule: Schedule,
  now: number,
  config: Awaited<ReturnType<Store["getConfig"]>>,
): Promise<FiringReport> {
  const timetable = await timetableOf(schedule.timing);
  const due = schedule.nextFireAt!;
  const plan = planFiring(timetable, schedule.catchUp, due, now);
  let job: NewJob | null = null;
  let error: string | undefined;
  if (plan.fireAt !== null) {
    try {
      job = resolveSpec(schedule.job, { id: firingJobId(schedule.name, plan.fireAt) }, {
        now: plan.fireAt,
        cwd: "/",
        config,
      });
    } catch (cause) {
      // Its directory removed since, say: the firing moves on (no job), and the log says why.
      if (!(cause instanceof UsageError)) throw cause;
      error = cause.message;
    }
  }
  const result = await store.fireSchedule({
    name: schedule.name,
    due,
    createdAt: schedule.createdAt,
    next: plan.next,
    job,
    overlap: schedule.overlap,
  }, now);
  return {
    name: schedule.name,
    result: error !== undefined && result === "missed" ? "failed" : result,
    jobId: job?.id ?? null,
    next: plan.next,
    ...(error === undefined ? {} : { error }),
  };
}

/** The firer of a `worker start` process: {@linkcode createScheduler}'s. */
export interface Scheduler {
  /** Starts its timer. */
  start(): void;
  /** The schedules may have changed: read them again soon (once started). */
  poke(): void;
  /** Stops the timer; resolves once no round is under way. */
  stop(): Promise<void>;
}

/**
 * Makes the firer of a `worker start` process: once started, a timer that
 * sleeps until the next firing, capped at {@linkcode RECHECK_MS}. `say` reports each
 * firing, `complain` a round that failed (the next round tries again).
 */
export function createScheduler(
  store: Store,
  workerId: string,
  say: (line: string) => void,
  complain: (line: string) => void,
): Scheduler {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let round: Promise<void> | undefined;
  let started = false;
  let stopped = false;
  let lastRead = 0;
  let timerAt = Infinity;
  // Whether this process held the leader lease at its last round: only the leader's pokes count.
  let leading = false;
  // A poke during a round may come after its read: the round then reads again.
  let pokedDuringRound = false;
  const schedule = (delay: number) => {
    clearTimeout(timer);
    timerAt = Date.now() + Math.max(0, delay);
    if (started && !stopped) timer = setTimeout(run, Math.max(0, delay));
  };
  const run = () => {
    round ??= (async () => {
      lastRead = Date.now();
      let delay = RECHECK_MS;
      try {
        const { reports, nextDue } = await fireDueSchedules(store, workerId);
        leading = reports !== null;
        for (const { name, result, jobId, error } of reports ?? []) {
          if (result === "fired") say(`schedule ${name}: enqueued ${jobId}`);
          if (result === "skipped") {
            say(`schedule ${name}: skipped ${jobId}: its last job is unfinished`);
          }
          if (result === "missed") say(`schedule ${name}: missed firing skipped (--catch-up none)`);
          if (result === "failed") {
            say(`schedule ${name}: firing failed, no job enqueued: ${error}`);
          }
        }
        if (reports?.some((r) => r.result === "fired")) await store.notifier.announce("jobs");
        if (nextDue !== null) delay = Math.min(delay, nextDue - store.now());
      } catch (error) {
        complain(`schedules: ${(error as Error).message}`);
      }
      round = undefined;
      if (pokedDuringRound) delay = Math.min(delay, MIN_READ_GAP_MS);
      pokedDuringRound = false;
      schedule(delay);
    })();
  };
  return {
    start() {
      started = true;
      schedule(0);
    },
    poke() {
      if (!leading) return;
      if (round !== undefined) pokedDuringRound = true;
      else if (lastRead + MIN_READ_GAP_MS < timerAt) {
        schedule(lastRead + MIN_READ_GAP_MS - Date.now());
      }
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await round;
    },
  };
}
