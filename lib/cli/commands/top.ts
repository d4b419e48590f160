/**
 * `queuectl top`: a live full-screen view of the queue, redrawn every second
 * and whenever the terminal is resized. `q` or Ctrl+C quits; so do SIGINT,
 * SIGTERM and SIGHUP. The terminal is given back as it was on every way
 * out, errors included.
 *
 * @module
 */

import { limitsUsage } from "../../queue_limits.ts";
import { UsageError } from "../../errors.ts";
import type { AttemptRecord, Job } from "../../job.ts";
import { listLiveWorkers } from "../../live_workers.ts";
import { JOB_STATES } from "../../states.ts";
import type {
  QueueSummary,
  RunStats,
  StateCounts,
  Store,
  WorkerRecord,
} from "../../store/store.ts";
import type { CommandContext } from "../context.ts";
import {
  displayWidth,
  fitWidth,
  humanTime,
  paintState,
  relativeTime,
  sanitize,
  useColour,
} from "../output.ts";
import { FullScreen, layoutSections, type ScreenSize, type Section } from "../screen.ts";
import { formatElapsed } from "./stats.ts";

/** How often the view reads the queue again. */
const REFRESH_MS = 1_000;

/** The window the throughput line counts runs in. */
const RATE_WINDOW_MS = 60_000;

/** At most this many running jobs are read: more than any screen shows. */
const MAX_RUNNING = 1_000;

/** Everything one frame shows, read at one moment. */
export interface TopSnapshot {
  now: number;
  location: string;
  counts: StateCounts;
  queues: QueueSummary[];
  /** Runs that ended in the last minute. */
  lastMinute: RunStats;
  /** Live worker processes, oldest first. */
  workers: WorkerRecord[];
  /** Running jobs, by the worker process running them. */
  running: Job[];
  /** The next jobs waiting for a later `run_at`, at most `listLimit`. */
  scheduled: Job[];
  /** The newest failed runs, at most `listLimit`. */
  failures: AttemptRecord[];
  /** How many scheduled jobs and failures were asked for: more than a screen shows. */
  listLimit: number;
}

/** Reads one frame's worth of the queue; lists are long enough for `rows` lines. */
async function readSnapshot(store: Store, rows: number): Promise<TopSnapshot> {
  const now = store.now();
  const [counts, queues, lastMinute, workers, running, scheduled, failures] = await Promise
    .all([
      store.countByState(),
      store.listQueues(),
      store.runStats(now - RATE_WINDOW_MS),
      listLiveWorkers(store, now),
      store.listJobs({ states: ["processing"], limit: MAX_RUNNING }),
      store.listScheduled(now, rows),
      store.recentFailures(rows),
    ]);
  return {
    now,
    location: store.location,
    counts,
    queues,
    lastMinute,
    workers: workers.sort((a, b) => a.startedAt - b.startedAt),
    running,
    scheduled,
    failures,
    listLimit: rows,
  };
}

/** Text padded on the right to `width` columns (wide characters counted as two). */
function padEnd(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - displayWidth(text)));
}

/** Rows of cells as aligned lines, two spaces apart, each indented by two. */
function align(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => widths[i] = Math.max(widths[i] ?? 0, displayWidth(cell)));
  }
  return rows.map((row) =>
    "  " + row.map((cell, i) => i === row.length - 1 ? cell : padEnd(cell, widths[i])).join("  ")
  );
}

/** The job counts: one line when it fits, else waiting/running and finished apart. */
function countLines(counts: StateCounts, colour: boolean, columns: number): string[] {
  const cell = (state: typeof JOB_STATES[number]) =>
    `${paintState(state, colour)} ${counts[state]}`;
  const one = `Jobs  ${JOB_STATES.map(cell).join("  ")}`;
  if (displayWidth(one) <= columns) return [one];
  return [
    `Jobs  ${JOB_STATES.slice(0, 3).map(cell).join("  ")}`,
    `      ${JOB_STATES.slice(3).map(cell).join("  ")}`,
  ];
}

/**
 * The per-queue table, shown when there is more than one queue or one is
 * paused or limited; limits, with how full they are, in a last column.
 */
function queueSection(queues: QueueSummary[], colour: boolean): Section | undefined {
  const usage = queues.map((q) => limitsUsage(q.limits, q.counts.processing, q.recentStarts));
  const limited = usage.some((u) => u !== "");
  if (queues.length <= 1 && queues.every((q) => q.pausedAt === null) && !limited) return undefined;
  const rows = queues.map((q) => [
    sanitize(q.name) +
    (q.pausedAt === null ? "" : colour ? " \x1b[33m(paused)\x1b[0m" : " (paused)"),
    ...JOB_STATES.map((s) => String(q.counts[s])),
  ]);
  const names = ["QUEUE", ...rows.map((r) => r[0])];
  const nameWidth = Math.max(...names.map(displayWidth));
  const widths = JOB_STATES.map((s, i) => Math.max(s.length, ...rows.map((r) => r[i + 1].length)));
  const line = (cells: string[], limits: string) =>
    `  ${padEnd(cells[0], nameWidth)}  ${
      cells.slice(1).map((c, i) => c.padStart(widths[i])).join("  ")
    }${limited ? `  ${limits}` : ""}`.trimEnd();
  return {
    heading: line(["QUEUE", ...JOB_STATES.map((s, i) => s.padStart(widths[i]))], "limits"),
    items: rows.map((row, i) => line(row, usage[i])),
    first: true,
  };
}

/** Live workers, each followed by the jobs it is running and for how long. */
function workerSection(snapshot: TopSnapshot): Section {
  const { workers, running, now } = snapshot;
  const byWorker = new Map<string, Job[]>();
  for (const job of running) {
    const list = byWorker.get(job.workerId ?? "") ?? [];
    list.push(job);
    byWorker.set(job.workerId ?? "", list);
  }
  const threads = workers.reduce((sum, w) => sum + w.threads, 0);
  const items: string[] = [];
  for (const worker of workers) {
    const jobs = (byWorker.get(worker.id) ?? []).sort((a, b) =>
      (a.startedAt ?? 0) - (b.startedAt ?? 0)
    );
    byWorker.delete(worker.id);
    items.push(
      `  ${sanitize(worker.id)}  pid ${worker.pid}@${sanitize(worker.host)}  ` +
        `${jobs.length}/${worker.threads} busy  up ${formatElapsed(now - worker.startedAt)}` +
        (worker.stopRequested ? "  stopping" : ""),
    );
    items.push(
      ...align(jobs.map((job) => [
        `  ${job.id}`,
        job.startedAt === null ? "-" : formatElapsed(now - job.startedAt),
        sanitize(job.command),
      ])),
    );
  }
  const orphaned = [...byWorker.values()].reduce((sum, jobs) => sum + jobs.length, 0);
  if (orphaned > 0) {
    items.push(
      `  ${orphaned} running job${orphaned === 1 ? "" : "s"} of no live worker (to be rescued)`,
    );
  }
  if (items.length === 0) items.push("  none live");
  return {
    heading: `Workers  ${workers.length} live, ${running.length}/${threads} slots busy`,
    items,
    first: true,
  };
}

/** The next jobs waiting for a later `run_at`. */
function scheduledSection(snapshot: TopSnapshot, showQueue: boolean): Section {
  const rows = snapshot.scheduled.map((job) => [
    relativeTime(job.runAt, snapshot.now),
    job.id,
    ...(showQueue ? [sanitize(job.queue)] : []),
    `${job.state === "failed" ? "retry: " : ""}${sanitize(job.command)}`,
  ]);
  return {
    heading: "Next scheduled",
    items: rows.length === 0 ? ["  none"] : align(rows),
    partial: rows.length === snapshot.listLimit,
  };
}

/** The newest failed runs. */
function failureSection(snapshot: TopSnapshot, colour: boolean): Section {
  const rows = snapshot.failures.map((f) => [
    relativeTime(f.finishedAt, snapshot.now),
    f.jobId,
    `#${f.attempt}`,
    colour ? `\x1b[31m${sanitize(f.error ?? "")}\x1b[0m` : sanitize(f.error ?? ""),
  ]);
  return {
    heading: "Latest failures",
    items: rows.length === 0 ? ["  none"] : align(rows),
    partial: rows.length === snapshot.listLimit,
  };
}

/**
 * The lines of one frame for a terminal of `size`: a header, the counts and
 * throughput, then queues (if several), workers, scheduled jobs and failures
 * sharing the rows left, and a footer. Lines may be wider than the terminal;
 * the screen cuts them.
 */
export function renderTop(
  snapshot: TopSnapshot,
  size: ScreenSize,
  colour: boolean,
  problem?: string,
): string[] {
  const { lastMinute, now } = snapshot;
  const bold = (text: string) => colour ? `\x1b[1m${text}\x1b[0m` : text;
  const clock = humanTime(now);
  // A long database path is cut rather than the clock.
  const title = fitWidth(
    `queuectl top  ${sanitize(snapshot.location)}`,
    Math.max(12, size.columns - clock.length - 2),
  );
  const header = padEnd(title, size.columns - clock.length) + clock;
  const perSecond = (lastMinute.runs / (RATE_WINDOW_MS / 1_000)).toFixed(2);
  const runs = `${lastMinute.runs} run${lastMinute.runs === 1 ? "" : "s"}`;
  const top = [
    bold(header),
    ...countLines(snapshot.counts, colour, size.columns),
    `Rate  ${perSecond} jobs/s over the last minute ` +
    `(${runs}: ${lastMinute.succeeded} ok, ${lastMinute.failed} failed)`,
  ];
  const footer = problem === undefined
    ? "q quit · refreshed every second"
    : `${colour ? "\x1b[31m" : ""}${sanitize(problem)}${colour ? "\x1b[0m" : ""}`;
  const queues = queueSection(snapshot.queues, colour);
  const sections = [
    ...(queues ? [queues] : []),
    workerSection(snapshot),
    scheduledSection(snapshot, snapshot.queues.length > 1),
    failureSection(snapshot, colour),
  ].map((s) => ({ ...s, heading: bold(s.heading) }));
  // Blank lines set the sections off, as many as fit without cutting the
  // workers (or queues) or leaving another section fewer than a few items.
  const spare = size.rows - top.length - 1;
  const needed = sections.reduce(
    (sum, s) => sum + 1 + (s.first ? s.items.length : Math.min(s.items.length, 3)),
    0,
  );
  const blanks = Math.max(0, Math.min(sections.length, spare - needed));
  const blocks = layoutSections(sections, Math.max(0, spare - blanks));
  const body = blocks.flatMap((block, i) => i < blanks ? ["", ...block] : block);
  const lines = [...top, ...body];
  const filler = Math.max(0, size.rows - 1 - lines.length);
  return [...lines.slice(0, size.rows - 1), ...Array(filler).fill(""), footer].slice(
    0,
    size.rows,
  );
}

/** Why the view ended: a key (exit 0) or a signal (exit 128 + its number). */
type Ending = { code: number } | { error: unknown };

/** Signals that end the view, with the exit code each gives. */
const SIGNAL_CODES: [Deno.Signal, number][] = [
  ["SIGINT", 130],
  ["SIGTERM", 143],
  ["SIGHUP", 129],
];

/** Adds a signal listener where the platform has the signal; returns how to remove it. */
function onSignal(signal: Deno.Signal, listener: () => void): () => void {
  try {
    Deno.addSignalListener(signal, listener);
  } catch {
    return () => {}; // Not on this platform (Windows has no SIGTERM, SIGHUP or SIGWINCH).
  }
  return () => Deno.removeSignalListener(signal, listener);
}

/** Runs `top`. */
export async function run({ openStore }: CommandContext): Promise<number> {
  if (!Deno.stdin.isTerminal() || !Deno.stdout.isTerminal()) {
    throw new UsageError(
      "top needs a terminal on stdin and stdout; use 'queuectl status' or 'queuectl stats' instead",
    );
  }
  const store = await openStore();
  const screen = new FullScreen();
  const colour = useColour();
  let finish!: (ending: Ending) => void;
  const ended = new Promise<Ending>((resolve) => finish = resolve);
  const removers = SIGNAL_CODES.map(([signal, code]) => onSignal(signal, () => finish({ code })));
  let snapshot: TopSnapshot | undefined;
  let problem: string | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let reading: Promise<void> | undefined;

  const draw = () => {
    if (stopped || snapshot === undefined) return;
    try {
      const size = screen.size();
      screen.draw(renderTop(snapshot, size, colour, problem), size);
    } catch (error) {
      finish({ error });
    }
  };
  const refresh = async () => {
    try {
      snapshot = await readSnapshot(store, screen.size().rows);
      problem = undefined;
    } catch (error) {
      // A busy or briefly unreadable database: keep the last frame, say why, try again.
      problem = `cannot read the queue: ${
        error instanceof Error ? error.message.split("\n")[0] : String(error)
      } (retrying)`;
      if (snapshot === undefined) {
        finish({ error });
        return;
      }
    }
    draw();
    if (!stopped) {
      timer = setTimeout(() => {
        reading = refresh();
      }, REFRESH_MS);
    }
  };
  const readKeys = async () => {
    const buffer = new Uint8Array(64);
    while (!stopped) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) return finish({ code: 0 }); // The terminal went away.
      // q, Q, or Ctrl+C (a byte, not a signal, in raw mode).
      if (buffer.subarray(0, n).some((b) => b === 0x71 || b === 0x51 || b === 0x03)) {
        return finish({ code: 0 });
      }
    }
  };

  try {
    screen.enter();
    removers.push(onSignal("SIGWINCH", draw));
    readKeys().catch((error) => finish({ error }));
    reading = refresh();
    await reading;
    const ending = await ended;
    if ("error" in ending) throw ending.error;
    return ending.code;
  } finally {
    stopped = true;
    clearTimeout(timer);
    screen.restore();
    for (const remove of removers) remove();
    // A refresh under way would read from a closed store.
    await reading?.catch(() => {});
    await store.close();
  }
}
