/**
 * `GET /api/events`: a stub with the agreed signature, so that the server
 * compiles and its tests (a client connected at shutdown) run. The real
 * Server-Sent Events stream is written on the dash-metrics branch, whose
 * version of this file replaces this one.
 *
 * @module
 */

import type { Store } from "../store/store.ts";

/**
 * A `text/event-stream` response (stub: one comment line, then open until
 * `signal` aborts, when the stream ends).
 */
export function eventStream(_store: Store, signal: AbortSignal): Response {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(": queuectl events (not built yet)\n\n"));
      const end = () => {
        try {
          controller.close();
        } catch {
          // The client went away first: the stream is closed already.
        }
      };
      if (signal.aborted) end();
      else signal.addEventListener("abort", end, { once: true });
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream", "cache-control": "no-store" },
  });
}
