/**
 * Retry backoff: how long a failed job waits before its next run.
 *
 * @module
 */

/**
 * The delay before the retry that follows failed run number `attempts`:
 * `base ^ attempts` seconds, capped at `maxMs`.
 *
 * @param base the backoff base, at least 1
 * @param attempts runs started so far, including the one that just failed (1 or more)
 * @param maxMs the cap on any single delay, in milliseconds
 * @returns the delay in whole milliseconds
 */
export function retryDelayMs(base: number, attempts: number, maxMs: number): number {
  const seconds = Math.pow(base, attempts);
  // pow overflows to Infinity for large attempt counts; the cap still applies.
  return Math.min(Math.round(seconds * 1000), maxMs);
}
