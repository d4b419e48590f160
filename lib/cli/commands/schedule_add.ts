/**
 * `queuectl schedule add`: a recurring schedule, whose firings (made by the
 * elected `worker start` process, lib/worker/scheduler.ts) each enqueue one
 * job from the job spec given here, read by the same code as `enqueue`'s.
 *
 * @module
 */

import { DEFAULT_CONFIG } from "../../config.ts";
import { UsageError } from "../../errors.ts";
import {
  CATCH_UP_POLICIES,
  type CatchUpPolicy,
  checkScheduleName,
  localTimeZone,
  OVERLAP_POLICIES,
  type OverlapPolicy,
  parseEvery,
  timetableOf,
  type Timing,
} from "../../schedules.ts";
import { jobTemplate, parseSpecArgument } from "../../spec.ts";
import type { CommandContext } from "../context.ts";
import { humanTime, writeOut } from "../output.ts";
import { overridesFrom } from "./enqueue.ts";

/** One of a few words, or the default when left out. */
function choice<T extends string>(
  value: string | boolean | undefined,
  allowed: readonly T[],
  option: string,
): T {
  if (value === undefined) return allowed[0];
  if (!allowed.includes(value as T)) {
    throw new UsageError(`${option}: '${value}' is not one of ${allowed.join(", ")}`);
  }
  return value as T;
}

/** The timing the options give. */
function timingFrom(options: Record<string, string | boolean | undefined>): Timing {
  const cron = options.cron as string | undefined;
  const every = options.every as string | undefined;
  const tz = options.tz as string | undefined;
  if ((cron === undefined) === (every === undefined)) {
    throw new UsageError("give either --cron EXPR or --every DUR");
  }
  if (every !== undefined) {
    if (tz !== undefined) throw new UsageError("--tz applies to --cron only");
    return { kind: "every", everyMs: parseEvery(every) };
  }
  const expression = cron!.trim().replace(/\s+/g, " ");
  if (expression.includes("\n") || expression === "") {
    throw new UsageError("--cron: give five fields, e.g. '0 3 * * *'");
  }
  return { kind: "cron", expression, timeZone: tz ?? localTimeZone() };
}

/** Runs `schedule add`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const [name, spec, ...extra] = args.positionals;
  if (name === undefined) {
    throw new UsageError(
      "missing schedule name: queuectl schedule add <name> --cron EXPR <command>",
    );
  }
  checkScheduleName(name);
  if (spec === undefined) {
    throw new UsageError("missing job spec: give a shell command or a JSON spec");
  }
  if (extra.length > 0) {
    throw new UsageError(
      `schedule add takes one spec: quote the whole command, e.g. '${[spec, ...extra].join(" ")}'`,
    );
  }
  const timing = timingFrom(args.options);
  const overlap: OverlapPolicy = choice(args.options.overlap, OVERLAP_POLICIES, "--overlap");
  const catchUp: CatchUpPolicy = choice(args.options["catch-up"], CATCH_UP_POLICIES, "--catch-up");
  const replace = args.options.replace === true;
  const specs = parseSpecArgument(spec);
  if (specs.specs.length !== 1) {
    throw new UsageError("a schedule enqueues one job per firing: give one spec, not an array");
  }
  const overrides = overridesFrom(args.options, args.lists ?? {});
  const job = jobTemplate(specs.specs[0], overrides, {
    now: Date.now(),
    cwd: Deno.cwd(),
    config: DEFAULT_CONFIG,
  });
  const timetable = await timetableOf(timing);
  // Checked before the database is opened (and perhaps created): invalid input leaves no trace.
  if (timetable.nextAfter(Date.now()) === null) {
    throw new UsageError(`--cron: '${args.options.cron}' never fires`);
  }

  const store = await openStore();
  try {
    const now = store.now();
    const nextFireAt = timetable.nextAfter(now);
    await store.addSchedule(
      { name, timing, overlap, catchUp, job, nextFireAt, createdAt: now },
      replace,
    );
    // Wakes the firer, which then reads the schedules again.
    await store.notifier.announce("jobs");
    writeOut(`schedule ${name}: next firing ${humanTime(nextFireAt)}\n`);
    return 0;
  } finally {
    await store.close();
  }
}
