/**
 * The progress bar `wait` draws on a terminal. It is drawn with the npm
 * package `cli-progress`, loaded only when a bar is actually drawn: the
 * first npm import costs about 50 ms, which commands that draw none (and
 * `wait` into a pipe) do not pay.
 *
 * @module
 */

/** What the bar shows. */
export interface ProgressCounts {
  /** Jobs finished (completed or dead) since the wait began. */
  done: number;
  /** Jobs waited for: the finished ones plus those still waiting or running. */
  total: number;
  completed: number;
  dead: number;
  /**
   * Why the jobs left cannot move now (they wait in paused queues, say),
   * shown instead of the rate and ETA, which would only freeze.
   */
  stalled?: string;
}

/** A bar being drawn; `stop` must be called on every way out. */
export interface ProgressBar {
  update(counts: ProgressCounts): void;
  /** Draws the last state, restores the cursor and line wrapping, and ends the line. */
  stop(): void;
}

/** The part of cli-progress's SingleBar used here (the package ships no types). */
interface SingleBar {
  start(total: number, value: number, payload: Record<string, never>): void;
  setTotal(total: number): void;
  update(value: number, payload: Record<string, never>): void;
  stop(): void;
}

interface CliProgressModule {
  SingleBar: new (options: Record<string, unknown>) => SingleBar;
}

/** Whether `wait` should draw a bar: only when stderr, where it is drawn, is a terminal. */
export function progressWanted(): boolean {
  return Deno.stderr.isTerminal();
}

/** A duration in whole seconds for people: `45s`, `3m05s`, `2h07m`. */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds)) return "-";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/** Jobs per second with two significant digits, enough to read at a glance. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return "-";
  return perSecond >= 10 ? String(Math.round(perSecond)) : perSecond.toPrecision(2);
}

/** The figures printed after the bar. */
interface Figures {
  completed: number;
  dead: number;
  rate: string;
  eta: string;
  /** Shown instead of the rate and ETA: see {@linkcode ProgressCounts.stalled}. */
  stalled?: string;
}

/**
 * One line of the bar, fitted to `width` columns: the bar shrinks (down to
 * nothing) before the figures do, since line wrapping is off while it draws.
 */
export function formatLine(done: number, total: number, width: number, f: Figures): string {
  const pace = f.stalled ?? `${f.rate}/s | ETA ${f.eta}`;
  const text = `${done}/${total} | ${f.completed} completed, ${f.dead} dead | ${pace}`;
  const barWidth = Math.min(MAX_BAR_WIDTH, width - text.length - 2);
  if (barWidth < MIN_BAR_WIDTH) return text;
  const filled = total === 0 ? barWidth : Math.round((Math.min(done, total) / total) * barWidth);
  return `${"\u2588".repeat(filled)}${"\u2591".repeat(barWidth - filled)} ${text}`;
}

const MAX_BAR_WIDTH = 30;
const MIN_BAR_WIDTH = 5;

/** Starts drawing a bar on stderr. */
export async function startProgressBar(counts: ProgressCounts): Promise<ProgressBar> {
  const { SingleBar } = (await import("cli-progress")) as unknown as CliProgressModule;
  const startedAt = Date.now();
  // Rate and ETA count only jobs that finish while the bar is up.
  const doneAtStart = counts.done;
  const figuresOf = (c: ProgressCounts): Figures => {
    const finished = c.done - doneAtStart;
    const perSecond = finished / Math.max(0.001, (Date.now() - startedAt) / 1000);
    const remaining = c.total - c.done;
    return {
      completed: c.completed,
      dead: c.dead,
      rate: finished <= 0 ? "-" : formatRate(perSecond),
      eta: remaining === 0 ? "0s" : finished <= 0 ? "-" : formatEta(remaining / perSecond),
      stalled: remaining === 0 ? undefined : c.stalled,
    };
  };
  let figures = figuresOf(counts);
  const bar = new SingleBar({
    // cli-progress calls this on every redraw with the terminal's width.
    format: (_options: unknown, params: { value: number; total: number; maxWidth: number }) =>
      formatLine(params.value, params.total, params.maxWidth, figures),
    hideCursor: true,
    // Redraws come from our own updates and the bar's timer; never more than 10 a second.
    fps: 10,
  });
  bar.start(counts.total, counts.done, {});
  return {
    update(c) {
      figures = figuresOf(c);
      bar.setTotal(c.total);
      bar.update(c.done, {});
    },
    stop() {
      bar.stop();
    },
  };
}
