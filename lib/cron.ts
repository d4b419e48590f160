/**
 * Cron timings, on the npm package `croner`: parsing, checking and the
 * firings of a five-field expression in an IANA time zone. Loaded only where
 * cron firings are computed (the firing leader, `schedule add`, `schedule
 * list`), by a URL built at run time (lib/module_urls.ts): the first npm
 * import costs a process 20-45 ms, which `enqueue` and `worker start` must
 * not pay.
 *
 * Daylight saving time, as croner (11.0.0) computes it, which is Vixie
 * cron's (and cronie's) rule; tests/schedules_test.ts checks it in
 * America/New_York and Europe/Berlin:
 * - a fixed-time expression (one value in each of minute and hour, e.g.
 *   `30 2 * * *`): a wall-clock time skipped by the spring-forward change
 *   fires at the first valid time after the gap, the same day (03:00); a time
 *   that occurs twice in the fall-back change fires once, at its first
 *   occurrence;
 * - an interval expression (a `*`, step, range or list in minute or hour,
 *   e.g. `0 * * * *`, `*∕15 * * * *`, `0 1,2 * * *`): it follows the wall
 *   clock: skipped times do not fire, and a repeated hour fires twice.
 *
 * @module
 */

import { Cron } from "croner";
import { UsageError } from "./errors.ts";
import type { Timetable } from "./schedules.ts";

/**
 * The timetable of a cron expression in `timeZone`.
 *
 * @throws {UsageError} for an invalid expression or zone, or one that never fires
 */
export function cronTimetable(expression: string, timeZone: string): Timetable {
  checkTimeZone(timeZone);
  let cron: Cron;
  try {
    cron = new Cron(expression, { timezone: timeZone, mode: "5-part", paused: true });
  } catch (error) {
    throw new UsageError(`--cron: '${expression}' is not valid: ${(error as Error).message}`);
  }
  return {
    nextAfter(after) {
      // croner's next run is after the given moment, to the second.
      return cron.nextRun(new Date(Math.floor(after / 1000) * 1000 + 999))?.getTime() ?? null;
    },
  };
}

/** Checks an IANA zone name. @throws {UsageError} */
export function checkTimeZone(timeZone: string): string {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone });
  } catch {
    throw new UsageError(`--tz: '${timeZone}' is not a known IANA time zone (e.g. Europe/Berlin)`);
  }
  return timeZone;
}
