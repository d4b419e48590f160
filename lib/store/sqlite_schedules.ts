/**
 * The SQLite backend: recurring schedules (lib/schedules.ts). A firing is
 * one write transaction: the conditional move of the schedule's next firing
 * decides which firer applies it, and the job goes in with it.
 *
 * @module
 */

import { ScheduleError } from "../errors.ts";
import type { NewJob } from "../job.ts";
import type { NewSchedule, Schedule } from "../schedules.ts";
import type { JobState } from "../states.ts";
import { overlapsPrevious } from "./rules.ts";
import type { Row, SqliteConnection } from "./sqlite_connection.ts";
import { insertJobs } from "./sqlite_enqueue.ts";
import { rowToSchedule, SCHEDULE_COLUMNS, scheduleValues } from "./rows.ts";
import type { Firing, FiringResult } from "./store.ts";

const SELECT_SCHEDULES = `SELECT s.*, j.state AS last_job_state FROM schedules s
  LEFT JOIN jobs j ON j.id = s.last_job_id`;

/** Adds a schedule, or replaces one of the same name. */
export function addSchedule(
  conn: SqliteConnection,
  schedule: NewSchedule,
  replace: boolean,
): Promise<void> {
  const insert = conn.sql(
    `INSERT OR REPLACE INTO schedules (${SCHEDULE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const exists = conn.sql("SELECT 1 FROM schedules WHERE name = ?");
  return conn.write(() => {
    if (!replace && exists.get(schedule.name) !== undefined) {
      throw new ScheduleError(
        `a schedule named '${schedule.name}' already exists (--replace replaces it)`,
      );
    }
    insert.run(...scheduleValues(schedule));
  });
}

/** Every schedule, by name. */
export function listSchedules(conn: SqliteConnection): Promise<Schedule[]> {
  return conn.read(() =>
    (conn.sql(`${SELECT_SCHEDULES} ORDER BY s.name`).all() as Row[]).map(rowToSchedule)
  );
}

/** One schedule, or undefined. */
export function getSchedule(conn: SqliteConnection, name: string): Promise<Schedule | undefined> {
  return conn.read(() => {
    const row = conn.sql(`${SELECT_SCHEDULES} WHERE s.name = ?`).get(name) as Row | undefined;
    return row && rowToSchedule(row);
  });
}

/** The schedules not paused, in order of their next firing. */
export function activeSchedules(conn: SqliteConnection): Promise<Schedule[]> {
  return conn.read(() =>
    (conn.sql(
      `${SELECT_SCHEDULES} WHERE s.paused_at IS NULL AND s.next_fire_at IS NOT NULL
       ORDER BY s.next_fire_at, s.name`,
    ).all() as Row[]).map(rowToSchedule)
  );
}

/** Removes a schedule; false when there was none. */
export function removeSchedule(conn: SqliteConnection, name: string): Promise<boolean> {
  const remove = conn.sql("DELETE FROM schedules WHERE name = ?");
  return conn.write(() => remove.run(name).changes === 1);
}

/** Pauses a schedule (a paused one keeps its time); false when there is none. */
export function pauseSchedule(conn: SqliteConnection, name: string, now: number): Promise<boolean> {
  const pause = conn.sql(
    "UPDATE schedules SET paused_at = coalesce(paused_at, ?) WHERE name = ?",
  );
  return conn.write(() => pause.run(now, name).changes === 1);
}

/** Resumes a schedule at its next firing `nextFireAt`; false when there is none. */
export function resumeSchedule(
  conn: SqliteConnection,
  name: string,
  nextFireAt: number | null,
): Promise<boolean> {
  const resume = conn.sql(
    "UPDATE schedules SET paused_at = NULL, next_fire_at = ? WHERE name = ?",
  );
  return conn.write(() => resume.run(nextFireAt, name).changes === 1);
}

/** Applies one firing in one transaction (see Store.fireSchedule). */
export function fireSchedule(
  conn: SqliteConnection,
  firing: Firing,
  now: number,
): Promise<FiringResult> {
  const advance = conn.sql(
    `UPDATE schedules SET next_fire_at = ?
     WHERE name = ? AND next_fire_at = ? AND created_at = ? AND paused_at IS NULL`,
  );
  const skip = conn.sql(
    "UPDATE schedules SET skipped = skipped + 1, last_skip_at = ? WHERE name = ?",
  );
  const previousState = conn.sql(
    "SELECT j.state FROM schedules s JOIN jobs j ON j.id = s.last_job_id WHERE s.name = ?",
  );
  return conn.write(() => {
    if (advance.run(firing.next, firing.name, firing.due, firing.createdAt).changes !== 1) {
      return "lost";
    }
    if (firing.job === null) return "missed";
    const previous = previousState.get(firing.name) as Row | undefined;
    if (
      firing.overlap === "skip" && overlapsPrevious((previous?.state ?? null) as JobState | null)
    ) {
      skip.run(firing.job.runAt, firing.name);
      return "skipped";
    }
    return addJob(conn, firing.name, firing.job, now) === firing.job.id ? "fired" : "skipped";
  });
}

/** `schedule run`: enqueues the job now (see Store.runSchedule). */
export function runSchedule(
  conn: SqliteConnection,
  name: string,
  job: NewJob,
  now: number,
): Promise<string | null> {
  const exists = conn.sql("SELECT 1 FROM schedules WHERE name = ?");
  return conn.write(() => {
    if (exists.get(name) === undefined) return null;
    return addJob(conn, name, job, now);
  });
}

/**
 * Inside a write: enqueues a firing's job (unless its id is there already) as
 * the schedule's last. A job whose unique key is held is not added: the
 * holder stands for the firing, recorded as skipped. Answers the id of the
 * job that stands for it.
 */
function addJob(conn: SqliteConnection, name: string, job: NewJob, now: number): string {
  let last = job.id;
  if (conn.sql("SELECT 1 FROM jobs WHERE id = ?").get(job.id) === undefined) {
    const [held] = insertJobs(conn, [job], now);
    if (held !== undefined) {
      last = held.holder;
      conn.sql("UPDATE schedules SET skipped = skipped + 1, last_skip_at = ? WHERE name = ?")
        .run(job.runAt, name);
    }
  }
  conn.sql("UPDATE schedules SET last_fire_at = ?, last_job_id = ? WHERE name = ?")
    .run(job.runAt, last, name);
  return last;
}
