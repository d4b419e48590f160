/**
 * A clock for tests of code that takes a {@linkcode Clock}: its time moves
 * only when the test advances it, and a pause ends only then (or when its
 * signal aborts), so a test decides exactly when each wait is over.
 *
 * @module
 */

import type { Clock } from "../lib/timing.ts";

interface Sleeper {
  ms: number;
  until: number;
  resolve: () => void;
}

/** A {@linkcode Clock} whose time the test moves; see the module's documentation. */
export class FakeClock implements Clock {
  #now: number;
  #sleepers: Sleeper[] = [];
  /** The length of every pause asked for, in ms, in order (including ones cut short). */
  readonly requested: number[] = [];

  constructor(start: number) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.requested.push(ms);
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const sleeper: Sleeper = { ms, until: this.#now + ms, resolve: () => {} };
      const end = () => {
        this.#sleepers = this.#sleepers.filter((other) => other !== sleeper);
        signal?.removeEventListener("abort", end);
        resolve();
      };
      sleeper.resolve = end;
      signal?.addEventListener("abort", end, { once: true });
      this.#sleepers.push(sleeper);
    });
  }

  /** How long each pause under way was asked to be, in ms, oldest first. */
  pending(): number[] {
    return this.#sleepers.map((sleeper) => sleeper.ms);
  }

  /** Moves the time on by `ms` and ends every pause that is then over. */
  advance(ms: number): void {
    this.#now += ms;
    for (const sleeper of [...this.#sleepers]) {
      if (sleeper.until <= this.#now) sleeper.resolve();
    }
  }
}
