/**
 * `queuectl wait`: blocks until jobs have finished (completed or dead).
 *
 * @module
 */

import { formatDuration, parseDuration } from "../../duration.ts";
import { JobNotFoundError, QueueError, UsageError } from "../../errors.ts";
import { checkJobId } from "../../spec.ts";
import type { Store } from "../../store/store.ts";
import type { CommandContext } from "../commands.ts";
import { interruptOnSignals, sleep } from "../follow.ts";
import { writeErr, writeOut } from "../output.ts";
import type { ProgressBar } from "../progress.ts";
import { progressWanted, startProgressBar } from "../progress.ts";

/** How often the database is checked for news, in ms; a check that finds none costs one PRAGMA. */
const POLL_MS = 150;

/** Dead job ids the summary line names at most. */
const MAX_DEAD_NAMED = 10;

/** Where the waited-for jobs stand. */
interface Tally {
  completed: number;
  dead: number;
  /** Jobs still waiting or running. */
  unfinished: number;
  /** Ids of the dead ones, when waiting for given ids. */
  deadIds: string[];
}

/** Reads the current tally; each call looks at the database afresh. */
type Tracker = () => Promise<Tally>;

/** Follows given jobs; each one's outcome is kept once seen, so later changes do not undo it. */
async function idTracker(store: Store, ids: string[]): Promise<Tracker> {
  for (const id of ids) if (!(await store.getJob(id))) throw new JobNotFoundError(id);
  const outcome = new Map<string, "completed" | "dead">();
  return async () => {
    for (const id of ids) {
      if (outcome.has(id)) continue;
      const job = await store.getJob(id);
      if (!job) throw new QueueError(`job '${id}' was deleted while waiting for it`);
      if (job.state === "completed" || job.state === "dead") outcome.set(id, job.state);
    }
    const deadIds = ids.filter((id) => outcome.get(id) === "dead");
    return {
      completed: outcome.size - deadIds.length,
      dead: deadIds.length,
      unfinished: ids.length - outcome.size,
      deadIds,
    };
  };
}

/**
 * Follows the whole queue: jobs that finish from now on, counted as growth
 * of the completed and dead counts since the start.
 */
async function allTracker(store: Store): Promise<Tracker> {
  const before = await store.countByState();
  return async () => {
    const counts = await store.countByState();
    return {
      // Purges or retries meanwhile can shrink a count below its start.
      completed: Math.max(0, counts.completed - before.completed),
      dead: Math.max(0, counts.dead - before.dead),
      unfinished: await store.countUnfinished(),
      deadIds: [],
    };
  };
}

function summary(tally: Tally): string {
  let line = `${tally.completed} completed, ${tally.dead} dead`;
  if (tally.unfinished > 0) line += `, ${tally.unfinished} unfinished`;
  if (tally.deadIds.length > 0) {
    const named = tally.deadIds.slice(0, MAX_DEAD_NAMED).join(", ");
    line += ` (dead: ${named}${tally.deadIds.length > MAX_DEAD_NAMED ? ", …" : ""})`;
  }
  return line;
}

/** Runs `wait`: exit 0 when every job completed, 1 when any is dead, 124 on timeout, 130 on Ctrl+C. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const all = args.options.all === true;
  if (all && args.positionals.length > 0) throw new UsageError("give job ids or --all, not both");
  if (!all && args.positionals.length === 0) {
    throw new UsageError("missing job id: give the ids of the jobs to wait for, or --all");
  }
  const ids = [...new Set(args.positionals.map((id) => checkJobId(id, "job id")))];
  const timeoutMs = args.options.timeout === undefined
    ? undefined
    : parseDuration(args.options.timeout as string, "--timeout");
  const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;

  // Listening before the database is opened: a signal that comes at any
  // moment after that ends the wait in order, never by the default action.
  const interrupt = interruptOnSignals();
  let store: Store | undefined;
  let bar: ProgressBar | undefined;
  try {
    store = await openStore();
    const track = all ? await allTracker(store) : await idTracker(store, ids);
    let tally = await track();
    const progress = () => ({
      done: tally.completed + tally.dead,
      total: tally.completed + tally.dead + tally.unfinished,
      completed: tally.completed,
      dead: tally.dead,
    });
    if (tally.unfinished > 0 && progressWanted()) bar = await startProgressBar(progress());
    while (tally.unfinished > 0) {
      const now = Date.now();
      if (now >= deadline) {
        bar?.stop();
        bar = undefined;
        writeOut(summary(tally) + "\n");
        writeErr(
          `queuectl: timed out after ${formatDuration(timeoutMs!)} with ${tally.unfinished} job${
            tally.unfinished === 1 ? "" : "s"
          } unfinished\n`,
        );
        return 124;
      }
      await sleep(Math.min(POLL_MS, deadline - now), interrupt.signal);
      if (interrupt.signal.aborted) {
        bar?.stop();
        bar = undefined;
        writeErr("queuectl: stopped waiting; the jobs go on\n");
        return interrupt.exitCode();
      }
      if (await store.hasChanged()) tally = await track();
      bar?.update(progress());
    }
    bar?.stop();
    bar = undefined;
    writeOut(summary(tally) + "\n");
    return tally.dead > 0 ? 1 : 0;
  } finally {
    bar?.stop();
    interrupt.dispose();
    await store?.close();
  }
}
