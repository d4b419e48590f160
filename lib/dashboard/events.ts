/**
 * `GET /api/events`: live news of the queue as Server-Sent Events, from the
 * store's change notification ({@linkcode Notifier.changed}: SQLite's
 * `data_version`, PostgreSQL's LISTEN/NOTIFY on the queue's change channel).
 *
 * One watch per store, shared by every open stream: `changed()` answers
 * "since the previous call", so two streams asking it in turn would each see
 * only part of the changes, and fifty streams would cost fifty round trips
 * a tick on PostgreSQL. The watch asks once a tick (200 ms by default) while
 * any stream is open, and stops when the last one ends. Changes are so
 * coalesced: a burst of 10,000 jobs, which commits many times within a tick,
 * gives one event per tick at most, each carrying the counts by state as
 * they are when it is sent. A comment line goes out every 15 s when nothing
 * else does, so that proxies keep the connection open.
 *
 * Nothing else in the process should call the same store's
 * `notifier.changed()`, for the reason above.
 *
 * @module
 */

import { isoTime } from "../job.ts";
import type { StateCounts, Store } from "../store/store.ts";

/** How often the shared watch asks the store whether anything changed, ms. */
export const EVENT_TICK_MS = 200;
/** How long a stream may stay silent before it sends a heartbeat comment, ms. */
export const HEARTBEAT_MS = 15_000;

/** Tuning of {@linkcode eventStream}, for tests. */
export interface EventStreamOptions {
  /** The watch's tick, ms (the first stream of a store sets it). */
  tickMs?: number;
  /** The heartbeat's period, ms. */
  heartbeatMs?: number;
}

/** The data of one `change` event. */
export interface ChangeEvent {
  /** When the counts were read, ISO 8601 UTC. */
  at: string;
  /** Jobs in each state, every state present. */
  jobs: StateCounts;
}

type Subscriber = (event: ChangeEvent) => void;

/** The one watch of a store's changes, shared by its streams. */
class ChangeWatch {
  readonly #store: Store;
  readonly #tickMs: number;
  readonly #subscribers = new Set<Subscriber>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  /** Whether the notifier's first answer (the baseline, always "changed") was taken. */
  #baselined = false;

  constructor(store: Store, tickMs: number) {
    this.#store = store;
    this.#tickMs = tickMs;
  }

  subscribe(subscriber: Subscriber): void {
    this.#subscribers.add(subscriber);
    if (this.#subscribers.size === 1) {
      this.#stopped = false;
      this.#schedule(0);
    }
  }

  /** Removes a stream; returns true when it was the last (the watch has stopped). */
  unsubscribe(subscriber: Subscriber): boolean {
    this.#subscribers.delete(subscriber);
    if (this.#subscribers.size > 0) return false;
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return true;
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#tick().finally(() => {
        if (!this.#stopped) this.#schedule(this.#tickMs);
      });
    }, delayMs);
  }

  async #tick(): Promise<void> {
    let event: ChangeEvent;
    try {
      const changed = await this.#store.notifier.changed();
      // The first answer is the baseline: each stream sent its own counts when it opened.
      const baseline = !this.#baselined;
      this.#baselined = true;
      if (!changed || baseline || this.#stopped) return;
      event = { at: isoTime(this.#store.now()), jobs: await this.#store.countByState() };
    } catch {
      // The database is unreachable for now: the next tick asks again.
      return;
    }
    if (this.#stopped) return;
    for (const subscriber of this.#subscribers) subscriber(event);
  }
}

const watches = new WeakMap<Store, ChangeWatch>();

const encoder = new TextEncoder();

/** One event in the wire format. */
function formatEvent(event: ChangeEvent): Uint8Array {
  return encoder.encode(`event: change\ndata: ${JSON.stringify(event)}\n\n`);
}

/**
 * A `text/event-stream` response of the queue's changes: a `change` event
 * with the counts by state when the stream opens and after each tick in
 * which something changed, heartbeat comments between, until `signal`
 * aborts or the client goes away.
 */
export function eventStream(
  store: Store,
  signal: AbortSignal,
  options: EventStreamOptions = {},
): Response {
  const heartbeatMs = options.heartbeatMs ?? HEARTBEAT_MS;
  let cleanup = () => {};
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      if (signal.aborted) {
        controller.close();
        return;
      }
      let lastSent = Date.now();
      let open = true;
      const send = (chunk: Uint8Array) => {
        if (!open) return;
        lastSent = Date.now();
        controller.enqueue(chunk);
      };
      const subscriber: Subscriber = (event) => send(formatEvent(event));
      let watch = watches.get(store);
      if (watch === undefined) {
        watch = new ChangeWatch(store, options.tickMs ?? EVENT_TICK_MS);
        watches.set(store, watch);
      }
      const joined = watch;
      const heartbeat = setInterval(() => {
        if (Date.now() - lastSent >= heartbeatMs) send(encoder.encode(": heartbeat\n\n"));
      }, Math.max(10, Math.floor(heartbeatMs / 2)));
      cleanup = () => {
        if (!open) return;
        open = false;
        clearInterval(heartbeat);
        signal.removeEventListener("abort", onAbort);
        if (joined.unsubscribe(subscriber) && watches.get(store) === joined) watches.delete(store);
      };
      const onAbort = () => {
        cleanup();
        try {
          controller.close();
        } catch {
          // Already closed or cancelled by the client.
        }
      };
      signal.addEventListener("abort", onAbort);
      // Reconnect after a second if the connection drops.
      send(encoder.encode("retry: 1000\n\n"));
      joined.subscribe(subscriber);
      // A stream joining a running watch gets the counts now, not at the next change.
      store.countByState().then(
        (jobs) => send(formatEvent({ at: isoTime(store.now()), jobs })),
        () => {},
      );
    },
    cancel() {
      cleanup();
    },
  });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
}
