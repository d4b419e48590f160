/**
 * The PostgreSQL backend: recurring schedules (lib/schedules.ts), as
 * lib/store/sqlite_schedules.ts does for SQLite. A firing is one
 * transaction: the conditional UPDATE of the schedule's next firing locks its
 * row, so that of firers racing on several hosts one applies it and the
 * others find it moved on; the job goes in with it.
 *
 * @module
 */

import { ScheduleError } from "../errors.ts";
import type { NewJob } from "../job.ts";
import type { NewSchedule, Schedule } from "../schedules.ts";
import type { JobState } from "../states.ts";
import type { PgConnection, Tx } from "./pg_connection.ts";
import { insertJobs } from "./pg_enqueue.ts";
import { overlapsPrevious } from "./rules.ts";
import { rowToSchedule, scheduleValues } from "./rows.ts";
import type { Firing, FiringResult } from "./store.ts";

/** Adds a schedule, or replaces one of the same name (its past firings forgotten). */
export function addSchedule(
  conn: PgConnection,
  schedule: NewSchedule,
  replace: boolean,
): Promise<void> {
  const [name, cron, zone, everyMs, overlap, catchUp, job, createdAt, next] = scheduleValues(
    schedule,
  );
  return conn.write(async (tx) => {
    const added = await tx`
      INSERT INTO schedules (name, cron, time_zone, every_ms, overlap, catch_up, job, created_at,
        next_fire_at)
      VALUES (${name}, ${cron}, ${zone}, ${everyMs}, ${overlap}, ${catchUp}, ${job},
        ${createdAt}, ${next})
      ON CONFLICT (name) DO NOTHING RETURNING 1`;
    if (added.length === 1) return;
    if (!replace) {
      throw new ScheduleError(
        `a schedule named '${schedule.name}' already exists (--replace replaces it)`,
      );
    }
    await tx`
      UPDATE schedules SET cron = ${cron}, time_zone = ${zone}, every_ms = ${everyMs},
        overlap = ${overlap}, catch_up = ${catchUp}, job = ${job}, created_at = ${createdAt},
        next_fire_at = ${next}, paused_at = NULL, last_fire_at = NULL, last_job_id = NULL,
        skipped = 0, last_skip_at = NULL
      WHERE name = ${name}`;
  });
}

/** Every schedule, by name, with its last job's state. */
export function listSchedules(conn: PgConnection): Promise<Schedule[]> {
  return conn.read(async (sql) =>
    (await sql`
      SELECT s.*, j.state AS last_job_state FROM schedules s
      LEFT JOIN jobs j ON j.id = s.last_job_id ORDER BY s.name`).map(rowToSchedule)
  );
}

/** One schedule, or undefined. */
export function getSchedule(conn: PgConnection, name: string): Promise<Schedule | undefined> {
  return conn.read(async (sql) => {
    const [row] = await sql`
      SELECT s.*, j.state AS last_job_state FROM schedules s
      LEFT JOIN jobs j ON j.id = s.last_job_id WHERE s.name = ${name}`;
    return row && rowToSchedule(row);
  });
}

/** The schedules not paused, in order of their next firing. */
export function activeSchedules(conn: PgConnection): Promise<Schedule[]> {
  return conn.read(async (sql) =>
    (await sql`
      SELECT s.*, j.state AS last_job_state FROM schedules s
      LEFT JOIN jobs j ON j.id = s.last_job_id
      WHERE s.paused_at IS NULL AND s.next_fire_at IS NOT NULL
      ORDER BY s.next_fire_at, s.name`).map(rowToSchedule)
  );
}

/** Removes a schedule; false when there was none. */
export function removeSchedule(conn: PgConnection, name: string): Promise<boolean> {
  return conn.statement(async (sql) =>
    (await sql`DELETE FROM schedules WHERE name = ${name}`).count === 1
  );
}

/** Pauses a schedule (a paused one keeps its time); false when there is none. */
export function pauseSchedule(conn: PgConnection, name: string, now: number): Promise<boolean> {
  return conn.statement(async (sql) =>
    (await sql`
      UPDATE schedules SET paused_at = coalesce(paused_at, ${now}) WHERE name = ${name}`)
      .count === 1
  );
}

/** Resumes a schedule at its next firing `nextFireAt`; false when there is none. */
export function resumeSchedule(
  conn: PgConnection,
  name: string,
  nextFireAt: number | null,
): Promise<boolean> {
  return conn.statement(async (sql) =>
    (await sql`
      UPDATE schedules SET paused_at = NULL, next_fire_at = ${nextFireAt} WHERE name = ${name}`)
      .count === 1
  );
}

/** Applies one firing in one transaction (see Store.fireSchedule). */
export function fireSchedule(
  conn: PgConnection,
  firing: Firing,
  now: number,
): Promise<FiringResult> {
  return conn.write(async (tx): Promise<FiringResult> => {
    // The row lock this takes makes a racing firer wait, then find next_fire_at moved on.
    const [moved] = await tx`
      UPDATE schedules SET next_fire_at = ${firing.next}
      WHERE name = ${firing.name} AND next_fire_at = ${firing.due}
        AND created_at = ${firing.createdAt} AND paused_at IS NULL
      RETURNING last_job_id`;
    if (moved === undefined) return "lost";
    if (firing.job === null) return "missed";
    const [previous] = moved.last_job_id === null
      ? []
      : await tx`SELECT state FROM jobs WHERE id = ${moved.last_job_id as string}`;
    if (
      firing.overlap === "skip" && overlapsPrevious((previous?.state ?? null) as JobState | null)
    ) {
      await tx`
        UPDATE schedules SET skipped = skipped + 1, last_skip_at = ${firing.job.runAt}
        WHERE name = ${firing.name}`;
      return "skipped";
    }
    const last = await addJob(conn, tx, firing.name, firing.job, now);
    return last === firing.job.id ? "fired" : "skipped";
  });
}

/** `schedule run`: enqueues the job now (see Store.runSchedule). */
export function runSchedule(
  conn: PgConnection,
  name: string,
  job: NewJob,
  now: number,
): Promise<string | null> {
  return conn.write(async (tx) => {
    const [found] = await tx`SELECT 1 FROM schedules WHERE name = ${name} FOR UPDATE`;
    if (found === undefined) return null;
    return await addJob(conn, tx, name, job, now);
  });
}

/**
 * Inside a transaction: enqueues a firing's job (unless its id is taken) as
 * the schedule's last. A job whose unique key is held is not added: the
 * holder stands for the firing, recorded as skipped. Answers the id of the
 * job that stands for it.
 */
async function addJob(
  conn: PgConnection,
  tx: Tx,
  name: string,
  job: NewJob,
  now: number,
): Promise<string> {
  let last = job.id;
  const [taken] = await tx`SELECT 1 FROM jobs WHERE id = ${job.id}`;
  if (taken === undefined) {
    const [held] = await insertJobs(conn, tx, [job], now);
    if (held !== undefined) {
      last = held.holder;
      await tx`
        UPDATE schedules SET skipped = skipped + 1, last_skip_at = ${job.runAt}
        WHERE name = ${name}`;
    }
  }
  await tx`
    UPDATE schedules SET last_fire_at = ${job.runAt}, last_job_id = ${last} WHERE name = ${name}`;
  return last;
}
