/**
 * Waiting: a pause that a signal can cut short, and polling a condition up
 * to a deadline. One of each, for every command that waits on the queue.
 *
 * @module
 */

/** Waits `ms`, or less if `signal` aborts first. Never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Options of {@linkcode pollUntil}. */
export interface PollOptions {
  /** The pause between two checks, in ms. */
  intervalMs: number;
  /** When to give up, epoch ms; never when left out. */
  deadline?: number;
  /** Stops the polling: no check follows its abort. */
  signal?: AbortSignal;
}

/**
 * Checks `done` at once, then after every pause of `intervalMs`, until it
 * says true: resolves true then. Resolves false at the deadline (the last
 * pause is cut short so that the last check falls on it) or when `signal`
 * aborts. An error from `done` rejects at once.
 */
export async function pollUntil(
  done: () => boolean | Promise<boolean>,
  options: PollOptions,
): Promise<boolean> {
  const deadline = options.deadline ?? Infinity;
  const signal = options.signal;
  while (!signal?.aborted) {
    if (await done()) return true;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await sleep(Math.min(options.intervalMs, left), signal);
  }
  return false;
}
