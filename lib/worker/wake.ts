/**
 * Waking idle workers at once when work arrives, instead of waiting for
 * their next poll: `enqueue` and `dlq retry` signal the live worker
 * processes of this host after they commit.
 *
 * @module
 */

import type { Store } from "../store/store.ts";
import { hostname, processStartTime } from "./process_info.ts";

/** The signal that means "work may be waiting". SIGUSR1 would open Deno's inspector. */
export const POKE_SIGNAL: Deno.Signal = "SIGUSR2";

/**
 * Signals every live worker process on this host. Only processes whose pid
 * and start time match their registration are signalled: a worker registers
 * only after it listens for the signal, and a reused pid must never receive
 * one (its default action ends a process). Never throws: a missed poke only
 * costs the wait until the worker's next poll.
 */
export async function pokeLocalWorkers(store: Store): Promise<void> {
  if (Deno.build.os !== "linux") return;
  try {
    const host = hostname();
    for (const worker of await store.listWorkers()) {
      if (worker.host !== host || worker.procStart === null || worker.stopRequested) continue;
      if (processStartTime(worker.pid) !== worker.procStart) continue;
      try {
        Deno.kill(worker.pid, POKE_SIGNAL);
      } catch {
        // It exited after the check.
      }
    }
  } catch {
    // The jobs are stored; waking is a courtesy.
  }
}
