/**
 * `queuectl schedule list`: every schedule with its timing, its next and
 * last firing, its last job and how it ended, and the firings it skipped.
 *
 * @module
 */

import { describeTiming, type Schedule } from "../../schedules.ts";
import type { CommandContext } from "../context.ts";
import { PIPED_TEXT_MAX } from "./list.ts";
import { humanTime, paintStateCell, printJson, printTable, writeErr } from "../output.ts";

/** The JSON shape of a schedule: snake_case fields, times in ISO 8601 UTC. */
export interface ScheduleJson {
  name: string;
  cron: string | null;
  time_zone: string | null;
  every_ms: number | null;
  overlap: string;
  catch_up: string;
  job: Record<string, unknown>;
  paused: boolean;
  paused_at: string | null;
  next_fire_at: string | null;
  last_fire_at: string | null;
  last_job_id: string | null;
  last_job_state: string | null;
  skipped: number;
  last_skip_at: string | null;
  created_at: string;
}

const iso = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();

/** A schedule as {@linkcode ScheduleJson}. */
export function scheduleToJson(schedule: Schedule): ScheduleJson {
  const { timing } = schedule;
  return {
    name: schedule.name,
    cron: timing.kind === "cron" ? timing.expression : null,
    time_zone: timing.kind === "cron" ? timing.timeZone : null,
    every_ms: timing.kind === "every" ? timing.everyMs : null,
    overlap: schedule.overlap,
    catch_up: schedule.catchUp,
    job: schedule.job,
    paused: schedule.pausedAt !== null,
    paused_at: iso(schedule.pausedAt),
    next_fire_at: schedule.pausedAt === null ? iso(schedule.nextFireAt) : null,
    last_fire_at: iso(schedule.lastFireAt),
    last_job_id: schedule.lastJobId,
    last_job_state: schedule.lastJobState,
    skipped: schedule.skipped,
    last_skip_at: iso(schedule.lastSkipAt),
    created_at: new Date(schedule.createdAt).toISOString(),
  };
}

/** Runs `schedule list`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const store = await openStore();
  try {
    const schedules = await store.listSchedules();
    if (args.options.json === true) {
      printJson(schedules.map(scheduleToJson));
      return 0;
    }
    if (schedules.length === 0) {
      writeErr("no schedules (add one with: queuectl schedule add <name> --cron EXPR <command>)\n");
      return 0;
    }
    printTable(
      [
        "NAME",
        "TIMING",
        "ZONE",
        "NEXT",
        "LAST",
        "LAST JOB",
        { header: "STATE", paint: paintStateCell },
        { header: "SKIPPED", align: "right" },
        "LAST SKIP",
        { header: "COMMAND", cut: 1, minWidth: 20, pipedMax: PIPED_TEXT_MAX },
      ],
      schedules.map((s) => [
        s.name,
        describeTiming(s.timing),
        s.timing.kind === "cron" ? s.timing.timeZone : "-",
        s.pausedAt === null ? humanTime(s.nextFireAt) : "paused",
        humanTime(s.lastFireAt),
        s.lastJobId ?? "-",
        s.lastJobState ?? "-",
        String(s.skipped),
        humanTime(s.lastSkipAt),
        String(s.job.command ?? ""),
      ]),
    );
    return 0;
  } finally {
    await store.close();
  }
}
