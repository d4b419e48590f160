/**
 * `queuectl schedule remove|pause|resume|run <name>`. Resuming starts again
 * from the first firing after the present: firings that came while the
 * schedule was paused are not made up. `run` fires the schedule now, with
 * the job id `<name>@<now, ISO 8601 UTC with milliseconds>`, paused or not
 * and whatever its `--overlap` (a person asked for it), and leaves its next
 * firing as it was.
 *
 * @module
 */

import { ScheduleError, UsageError } from "../../errors.ts";
import { checkScheduleName, firingJobId, timetableOf } from "../../schedules.ts";
import { resolveSpec } from "../../spec.ts";
import type { CommandContext } from "../context.ts";
import { humanTime, writeErr, writeOut } from "../output.ts";

/** Runs `schedule remove`, `pause`, `resume` or `run`, whichever `path` names. */
export async function run({ path, args, openStore }: CommandContext): Promise<number> {
  const verb = path[1];
  if (args.positionals.length !== 1) {
    throw new UsageError(
      `schedule ${verb} takes one schedule name (got ${args.positionals.length})`,
    );
  }
  const name = checkScheduleName(args.positionals[0]);
  const store = await openStore();
  const missing = () => new ScheduleError(`no schedule named '${name}'`);
  try {
    if (verb === "remove") {
      if (!await store.removeSchedule(name)) throw missing();
      writeOut(`removed schedule ${name} (the jobs it enqueued stay)\n`);
      return 0;
    }
    const schedule = await store.getSchedule(name);
    if (schedule === undefined) throw missing();
    if (verb === "pause") {
      if (schedule.pausedAt !== null) {
        writeErr(`schedule ${name} is already paused (since ${humanTime(schedule.pausedAt)})\n`);
      } else if (!await store.pauseSchedule(name, store.now())) throw missing();
      else writeOut(`paused schedule ${name}: it does not fire until resumed\n`);
      return 0;
    }
    if (verb === "resume") {
      if (schedule.pausedAt === null) {
        writeErr(`schedule ${name} is not paused\n`);
        return 0;
      }
      const next = (await timetableOf(schedule.timing)).nextAfter(store.now());
      if (!await store.resumeSchedule(name, next)) throw missing();
      await store.notifier.announce("jobs");
      writeOut(`resumed schedule ${name}: next firing ${humanTime(next)}\n`);
      return 0;
    }
    const now = store.now();
    const job = resolveSpec(schedule.job, { id: firingJobId(name, now) }, {
      now,
      cwd: "/",
      config: await store.getConfig(),
    });
    const standing = await store.runSchedule(name, job, now);
    if (standing === null) throw missing();
    if (standing === job.id) await store.notifier.announce("jobs");
    else {
      writeErr(
        `queuectl: not added: job '${standing}' holds unique key '${job.uniqueKey}' in queue '${job.queue}'\n`,
      );
    }
    writeOut(`${standing}\n`);
    return 0;
  } finally {
    await store.close();
  }
}
