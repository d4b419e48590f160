/**
 * `queuectl wait`: blocks until jobs have finished (completed or dead).
 *
 * `wait --all` waits for the jobs that are waiting or running when it
 * begins, and for every job that joins them while it waits (enqueued, or
 * sent back by `retry` or `dlq retry`); jobs that had finished before it
 * began are not its business. Its summary counts exactly those.
 *
 * @module
 */

import { formatDuration, parseDuration } from "../../duration.ts";
import { JobNotFoundError, QueueError, UsageError } from "../../errors.ts";
import type { Job } from "../../job.ts";
import { listLiveWorkers } from "../../live_workers.ts";
import { checkJobId } from "../../spec.ts";
import type { HistoryMark, Store } from "../../store/store.ts";
import { pollUntil } from "../../timing.ts";
import type { CommandContext } from "../context.ts";
import { interruptOnSignals } from "../follow.ts";
import { humanDuration, relativeTime, writeErr, writeOut } from "../output.ts";
import type { ProgressBar } from "../progress.ts";
import { formatEta, progressWanted, startProgressBar } from "../progress.ts";

/** How often the database is checked for news, in ms; a check that finds none costs one PRAGMA. */
const POLL_MS = 150;

/** How often, at most, the bar asks the database where the jobs left stand, in ms. */
const REMAINING_EVERY_MS = 500;

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

/** Where the unfinished jobs are, to tell why none of them moves. */
interface Remaining {
  /** Running now. */
  running: number;
  /** Waiting in a served queue with its time come: a worker can take them now. */
  due: number;
  /** Waiting in paused queues, by queue. */
  paused: Map<string, number>;
  /** Waiting in served queues for a later time (a delay or a retry's backoff). */
  scheduled: number;
  /** When the first of those may run, epoch ms. */
  nextRunAt?: number;
  /** Waiting in served queues for jobs they run after. */
  blocked: number;
}

function noneRemaining(): Remaining {
  return { running: 0, due: 0, paused: new Map(), scheduled: 0, blocked: 0 };
}

/** What a wait follows: given ids, or the whole queue. */
interface Tracker {
  /** Reads the current tally; each call looks at the database afresh. */
  read(): Promise<Tally>;
  /** Where the unfinished jobs stand now (as of the last read, for given ids). */
  remaining(now: number): Promise<Remaining>;
  /** The tally to report at the end: exact where `read` is a cheap estimate. */
  settle(tally: Tally): Promise<Tally>;
  /** The line printed at the end. */
  summary(tally: Tally, elapsedMs: number): string;
}

/** Names of the queues that are paused now. */
async function pausedQueues(store: Store): Promise<Set<string>> {
  return new Set((await store.listQueues()).filter((q) => q.pausedAt !== null).map((q) => q.name));
}

/** Follows given jobs; each one's outcome is kept once seen, so later changes do not undo it. */
async function idTracker(store: Store, ids: string[]): Promise<Tracker> {
  for (const id of ids) if (!(await store.getJob(id))) throw new JobNotFoundError(id);
  const outcome = new Map<string, "completed" | "dead">();
  let unfinished: Job[] = [];
  return {
    async read() {
      unfinished = [];
      for (const id of ids) {
        if (outcome.has(id)) continue;
        const job = await store.getJob(id);
        if (!job) throw new QueueError(`job '${id}' was deleted while waiting for it`);
        if (job.state === "completed" || job.state === "dead") outcome.set(id, job.state);
        else unfinished.push(job);
      }
      const deadIds = ids.filter((id) => outcome.get(id) === "dead");
      return {
        completed: outcome.size - deadIds.length,
        dead: deadIds.length,
        unfinished: ids.length - outcome.size,
        deadIds,
      };
    },
    async remaining(now) {
      const paused = await pausedQueues(store);
      const left = noneRemaining();
      for (const job of unfinished) {
        if (job.state === "processing") left.running++;
        else if (paused.has(job.queue)) {
          left.paused.set(job.queue, (left.paused.get(job.queue) ?? 0) + 1);
        } else if (job.state === "blocked") left.blocked++;
        else if (job.runAt > now) {
          left.scheduled++;
          left.nextRunAt = Math.min(left.nextRunAt ?? Infinity, job.runAt);
        } else left.due++;
      }
      return left;
    },
    settle: (tally) => Promise.resolve(tally),
    summary: (tally) => {
      let line = `${tally.completed} completed, ${tally.dead} dead`;
      if (tally.unfinished > 0) line += `, ${tally.unfinished} unfinished`;
      if (tally.deadIds.length > 0) {
        const named = tally.deadIds.slice(0, MAX_DEAD_NAMED).join(", ");
        line += ` (dead: ${named}${tally.deadIds.length > MAX_DEAD_NAMED ? ", …" : ""})`;
      }
      return line;
    },
  };
}

/** Where the unfinished jobs of every queue stand, from the counts per queue. */
async function remainingInQueues(store: Store, now: number): Promise<Remaining> {
  const left = noneRemaining();
  let waiting = 0;
  for (const queue of await store.listQueues()) {
    left.running += queue.counts.processing;
    const { blocked, pending, failed } = queue.counts;
    if (queue.pausedAt !== null) {
      if (blocked + pending + failed > 0) left.paused.set(queue.name, blocked + pending + failed);
      continue;
    }
    left.blocked += blocked;
    waiting += pending + failed;
  }
  if (waiting > 0) {
    // Only whether any is due matters: then the bar shows a rate and an ETA.
    const next = await store.nextRunAt();
    if (next !== undefined && next <= now) left.due = waiting;
    else [left.scheduled, left.nextRunAt] = [waiting, next];
  }
  return left;
}

/**
 * Follows the whole queue from `mark`. While it waits, the jobs finished are
 * the growth of the completed and dead counts (one cheap read); at the end
 * they are counted exactly, so that deletions and retries meanwhile (the
 * `retention` setting deletes old jobs on its own) do not skew the summary.
 */
async function allTracker(store: Store, mark: HistoryMark): Promise<Tracker> {
  const before = await store.countByState();
  return {
    async read() {
      const counts = await store.countByState();
      return {
        completed: Math.max(0, counts.completed - before.completed),
        dead: Math.max(0, counts.dead - before.dead),
        unfinished: await store.countUnfinished(),
        deadIds: [],
      };
    },
    remaining: (now) => remainingInQueues(store, now),
    async settle(tally) {
      const finished = await store.countFinishedSince(mark);
      return { ...tally, ...finished, unfinished: await store.countUnfinished() };
    },
    summary(tally, elapsedMs) {
      const total = tally.completed + tally.dead + tally.unfinished;
      let line = `waited ${humanDuration(elapsedMs)} for ${plural(total, "job")}: ` +
        `${tally.completed} completed, ${tally.dead} dead`;
      if (tally.unfinished > 0) line += `, ${tally.unfinished} unfinished`;
      // Jobs added meanwhile (or deleted unfinished) make the two differ.
      if (total !== mark.unfinished) {
        line += ` (${mark.unfinished} ${
          mark.unfinished === 1 ? "was" : "were"
        } waiting or running when it began)`;
      }
      return line;
    },
  };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** The line `wait --all` prints when no job was waiting or running. */
async function nothingToWaitFor(store: Store): Promise<string> {
  const last = await store.lastRun();
  const when = last === undefined
    ? "no job has run yet"
    : `the last run ended ${relativeTime(last.finishedAt, store.now())}: job '${last.jobId}'`;
  return `nothing to wait for: no job is waiting or running (${when})`;
}

/**
 * Where the jobs left wait when none of them can move now, for instance
 * `2 in paused queue mail, 1 scheduled in 4m10s`; undefined while one runs,
 * or one is due and some worker is alive to take it.
 */
async function whyStalled(store: Store, left: Remaining, now: number): Promise<string | undefined> {
  if (left.running > 0) return undefined;
  if (left.due > 0) {
    if ((await listLiveWorkers(store, now)).length > 0) return undefined;
    return "no worker is running (start one: queuectl worker start)";
  }
  const parts: string[] = [];
  if (left.paused.size > 0) {
    const count = [...left.paused.values()].reduce((a, b) => a + b, 0);
    const names = [...left.paused.keys()].join(", ");
    parts.push(`${count} in paused queue${left.paused.size === 1 ? "" : "s"} ${names}`);
  }
  if (left.scheduled > 0) {
    let when = "";
    if (left.nextRunAt !== undefined) {
      const eta = formatEta(Math.max(1, (left.nextRunAt - now) / 1000));
      when = left.scheduled === 1 ? ` in ${eta}` : `, the first in ${eta}`;
    }
    parts.push(`${left.scheduled} scheduled${when}`);
  }
  if (left.blocked > 0) parts.push(`${left.blocked} waiting for other jobs`);
  return parts.length === 0 ? undefined : parts.join(", ");
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
  const startedAt = Date.now();
  const deadline = timeoutMs === undefined ? Infinity : startedAt + timeoutMs;

  // Listening before the database is opened: a signal that comes at any
  // moment after that ends the wait in order, never by the default action.
  const interrupt = interruptOnSignals();
  let store: Store | undefined;
  let bar: ProgressBar | undefined;
  try {
    const queue = await openStore();
    store = queue;
    let track: Tracker;
    if (all) {
      const mark = await store.markHistory(store.now());
      if (mark.unfinished === 0) {
        writeOut(`${await nothingToWaitFor(store)}\n`);
        return 0;
      }
      track = await allTracker(store, mark);
    } else {
      track = await idTracker(store, ids);
    }
    // The baseline for news: what commits after it is read again below.
    await store.notifier.changed();
    let tally = await track.read();
    let stalled: string | undefined;
    let remainingReadAt = -Infinity;
    const progress = () => ({
      done: tally.completed + tally.dead,
      total: tally.completed + tally.dead + tally.unfinished,
      completed: tally.completed,
      dead: tally.dead,
      stalled,
    });
    const finish = async (): Promise<string> => {
      tally = await track.settle(tally);
      bar?.update(progress());
      bar?.stop();
      bar = undefined;
      return track.summary(tally, Date.now() - startedAt);
    };
    if (tally.unfinished > 0 && progressWanted()) bar = await startProgressBar(progress());
    const allFinished = async () => {
      const changed = await queue.notifier.changed();
      if (changed) tally = await track.read();
      if (
        bar && tally.unfinished > 0 &&
        (changed || Date.now() - remainingReadAt >= REMAINING_EVERY_MS)
      ) {
        remainingReadAt = Date.now();
        const why = await whyStalled(
          queue,
          await track.remaining(remainingReadAt),
          remainingReadAt,
        );
        stalled = why === undefined ? undefined : `${tally.unfinished} left: ${why}`;
      }
      bar?.update(progress());
      return tally.unfinished === 0;
    };
    const finished = await pollUntil(allFinished, {
      intervalMs: POLL_MS,
      deadline,
      signal: interrupt.signal,
    });
    if (!finished && interrupt.signal.aborted) {
      bar?.stop();
      bar = undefined;
      writeErr("queuectl: stopped waiting; the jobs go on\n");
      return interrupt.exitCode();
    }
    if (!finished) {
      writeOut(`${await finish()}\n`);
      const now = store.now();
      const why = await whyStalled(store, await track.remaining(now), now);
      writeErr(
        `queuectl: timed out after ${formatDuration(timeoutMs!)} with ${
          plural(tally.unfinished, "job")
        } unfinished${why === undefined ? "" : `: ${why}`}\n`,
      );
      return 124;
    }
    const line = await finish();
    writeOut(line + "\n");
    return tally.dead > 0 ? 1 : 0;
  } finally {
    bar?.stop();
    interrupt.dispose();
    await store?.close();
  }
}
