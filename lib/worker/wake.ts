/**
 * Waking idle workers at once when work arrives, instead of waiting for
 * their next poll: `enqueue`, `retry`, `kill` and the like poke the live
 * worker processes of this host after they commit.
 *
 * A poke is a connection to the worker process's Unix socket in the runs
 * folder, or, where it has none, the signal {@linkcode POKE_SIGNAL}. The
 * socket comes first because it is the cheaper of the two for the short
 * processes that poke: the first use of `Deno.kill` in a process loads
 * Deno's process module, about 3 ms, against about 0.6 ms for a connection,
 * and that time lies between a job's commit and its pick-up.
 *
 * @module
 */

import type { Store } from "../store/store.ts";
import { hostname, processStartTime } from "./process_info.ts";

/** The signal that also means "work may be waiting". SIGUSR1 would open Deno's inspector. */
export const POKE_SIGNAL: Deno.Signal = "SIGUSR2";

/** The folder beside the database that holds each run's exit status and each worker process's wake socket. */
export function runsDirOf(dbPath: string): string {
  return `${dbPath}.runs`;
}

/** Where the worker process `workerId` listens for pokes. */
export function wakeSocketPath(runsDir: string, workerId: string): string {
  return `${runsDir}/${workerId}.wake`;
}

/** A worker process's wake socket, open until `close`. */
export interface WakeListener {
  close(): void;
}

/**
 * Listens on `path` and calls `onPoke` for every connection. Returns null
 * when the socket cannot be made (a path longer than a socket address
 * allows, say): pokers then fall back to the signal.
 */
export function listenForPokes(path: string, onPoke: () => void): WakeListener | null {
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ transport: "unix", path });
  } catch {
    return null;
  }
  (async () => {
    for await (const connection of listener) {
      connection.close();
      onPoke();
    }
  })().catch(() => {
    // Closed: the process is stopping.
  });
  return {
    close() {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      removeWakeSocket(path);
    },
  };
}

/** Removes a wake socket left by a worker process that is gone. */
export function removeWakeSocket(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // It left none.
  }
}

/**
 * Pokes every live worker process on this host. Only processes whose pid
 * and start time match their registration are poked: a worker registers
 * only after it listens, and a reused pid must never receive the signal (its
 * default action ends a process). Never throws: a missed poke only costs
 * the wait until the worker's next poll.
 */
export async function pokeLocalWorkers(store: Store, dbPath: string): Promise<void> {
  if (Deno.build.os !== "linux") return;
  try {
    const host = hostname();
    const runsDir = runsDirOf(dbPath);
    const pokes: Promise<void>[] = [];
    for (const worker of await store.listWorkers()) {
      if (worker.host !== host || worker.procStart === null || worker.stopRequested) continue;
      if (processStartTime(worker.pid) !== worker.procStart) continue;
      pokes.push(poke(wakeSocketPath(runsDir, worker.id), worker.pid, worker.procStart));
    }
    await Promise.all(pokes);
  } catch {
    // The jobs are stored; waking is a courtesy.
  }
}

async function poke(socketPath: string, pid: number, procStart: string): Promise<void> {
  try {
    const connection = await Deno.connect({ transport: "unix", path: socketPath });
    connection.close();
    return;
  } catch {
    // No socket (an older worker, or a path too long for one): signal instead.
  }
  // Checked again: the connection attempt gave the process time to exit.
  if (processStartTime(pid) !== procStart) return;
  try {
    Deno.kill(pid, POKE_SIGNAL);
  } catch {
    // It exited after the check.
  }
}
