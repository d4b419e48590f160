/**
 * Waiting: a pause that a signal can cut short, polling a condition up to a
 * deadline, and retrying a failing step with exponential backoff. One of
 * each, for every part of queuectl that waits; and the clock that code which
 * waits takes, so that tests can pass a fake one.
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

/**
 * A source of time and of pauses. Code that waits takes one, so that a test
 * can pass a fake clock and decide when each pause ends.
 */
export interface Clock {
  /** The time now, epoch ms. */
  now(): number;
  /** Waits `ms`, or less if `signal` aborts first; never rejects (as {@linkcode sleep}). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The real clock: `Date.now()` and timers. */
export const SYSTEM_CLOCK: Clock = { now: () => Date.now(), sleep };

/**
 * A time given as a number or as a clock to read when it is needed (a
 * claim reads it once it holds the database: lib/store/store.ts ClaimTime).
 */
export function timeOf(time: number | (() => number)): number {
  return typeof time === "function" ? time() : time;
}

/** Options of {@linkcode retryWithBackoff}. */
export interface BackoffOptions {
  /** The wait after the first failure, in ms; each next wait doubles. */
  firstMs: number;
  /** The longest wait, in ms. */
  maxMs: number;
  /** Spreads each wait over 0.5–1.5 times its length, so that rivals do not retry in step. */
  jitter?: boolean;
  /** Whether an error is worth another try; any other is thrown at once. Every error by default. */
  retryIf?: (error: unknown) => boolean;
  /** From when (epoch ms, by `clock`) a failure is thrown instead of retried; never by default. */
  giveUpAt?: number;
  /** Told of each failure that is about to be retried, and of the wait before the next try. */
  onRetry?: (error: unknown, waitMs: number) => void;
  /** Where time is read and waited on; the real clock by default. */
  clock?: Clock;
}

/**
 * Runs `attempt` until it succeeds, waiting between failures with
 * exponential backoff (`firstMs`, doubled each time, capped at `maxMs`), and
 * returns its result. A failure that `retryIf` declines, or one that comes
 * at or after `giveUpAt`, is thrown.
 */
export async function retryWithBackoff<T>(
  attempt: () => T | Promise<T>,
  options: BackoffOptions,
): Promise<T> {
  const clock = options.clock ?? SYSTEM_CLOCK;
  for (let failures = 0;; failures++) {
    try {
      return await attempt();
    } catch (error) {
      if (options.retryIf !== undefined && !options.retryIf(error)) throw error;
      if (options.giveUpAt !== undefined && clock.now() >= options.giveUpAt) throw error;
      // 2 ** failures overflows to Infinity after many failures; the cap still applies.
      const waitMs = Math.min(options.firstMs * 2 ** failures, options.maxMs) *
        (options.jitter ? 0.5 + Math.random() : 1);
      options.onRetry?.(error, waitMs);
      await clock.sleep(waitMs);
    }
  }
}
