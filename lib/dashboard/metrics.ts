/**
 * `GET /metrics`: a stub with the agreed signature, so that the server
 * compiles and its tests run. The real Prometheus text is written on the
 * dash-metrics branch, whose version of this file replaces this one.
 *
 * @module
 */

import type { Store } from "../store/store.ts";

/** The Prometheus text of the queue's metrics (stub: empty). */
// deno-lint-ignore require-await
export async function metricsText(_store: Store): Promise<string> {
  return "";
}
