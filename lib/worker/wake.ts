/**
 * Waking idle workers at once when work arrives, instead of waiting for
 * their next poll: after `enqueue`, `retry`, `kill` and the like commit, the
 * SQLite store's notifier (lib/store/sqlite_notifier.ts) pokes the live
 * worker processes of this host with {@linkcode pokeLocalWorkers}.
 *
 * A poke is a connection to the worker process's Unix socket in the runs
 * folder (runs_folder.ts), or, where there are none, the signal
 * {@linkcode POKE_SIGNAL}. The socket comes first because it is the cheaper
 * of the two for the short processes that poke: the first use of `Deno.kill`
 * in a process loads Deno's process module, about 3 ms, against about 0.6 ms
 * for a connection, and that time lies between a job's commit and its
 * pick-up.
 *
 * @module
 */

import type { Store } from "../store/store.ts";
import { hostname, processStartTime } from "./process_info.ts";
import { listWakeSockets, type WakeIdentity, wakeSocketPath } from "./runs_folder.ts";

/** The signal that also means "work may be waiting". SIGUSR1 would open Deno's inspector. */
export const POKE_SIGNAL: Deno.Signal = "SIGUSR2";

/** A worker process's wake socket, open until `close`. */
export interface WakeListener {
  /**
   * Makes the socket again if it is gone (removed by hand) or failed (out
   * of file descriptors, say); meanwhile pokes come by signal.
   */
  renew(): Promise<void>;
  close(): void;
}

/**
 * Listens on `path` and calls `onPoke` for every connection. Returns null
 * when the socket cannot be made (a path longer than a socket address
 * allows, say): pokers then fall back to the signal. If accepting fails
 * later, the socket is given up, so that pokers signal instead of
 * connecting to a socket nobody serves, until `renew` makes it again;
 * `onFailure` says so, once per outage.
 */
export function listenForPokes(
  path: string,
  onPoke: () => void,
  onFailure: (message: string) => void,
): WakeListener | null {
  let closed = false;
  let renewing = false;
  let reported = false;
  let serving: Promise<void> = Promise.resolve();
  let listener = open();
  if (listener === null) return null;

  function open(): Deno.Listener | null {
    let opened: Deno.Listener;
    try {
      opened = Deno.listen({ transport: "unix", path });
    } catch {
      return null;
    }
    serving = serve(opened);
    return opened;
  }

  function fail(why: string): void {
    if (reported) return;
    reported = true;
    onFailure(`wake socket ${path} ${why}; pokes come by signal meanwhile`);
  }

  async function serve(served: Deno.Listener): Promise<void> {
    while (true) {
      let connection: Deno.Conn;
      try {
        connection = await served.accept();
      } catch (error) {
        if (closed || served !== listener) return; // Closed on purpose.
        listener = null;
        shut(served);
        fail(`failed (${(error as Error).message})`);
        return;
      }
      connection.close();
      onPoke();
    }
  }

  function shut(served: Deno.Listener | null): void {
    try {
      served?.close();
    } catch {
      // Already closed.
    }
    removeWakeSocket(path);
  }

  return {
    async renew() {
      if (closed || renewing) return;
      if (listener !== null) {
        try {
          Deno.lstatSync(path);
          return;
        } catch {
          // Gone: make it again.
        }
      }
      renewing = true;
      try {
        const old = listener;
        listener = null;
        shut(old);
        // Deno unlinks the path when it finally drops the old listener, once
        // its pending accept has failed: a socket made before that would go too.
        await serving;
        if (closed) return;
        listener = open();
        if (listener === null) fail("cannot be made again");
        else reported = false;
      } finally {
        renewing = false;
      }
    },
    close() {
      closed = true;
      shut(listener);
      listener = null;
    },
  };
}

/** Connects to the wake socket at `path` and hangs up: that is the whole poke. */
async function knock(path: string): Promise<void> {
  (await Deno.connect({ transport: "unix", path })).close();
}

/** Removes a wake socket. */
export function removeWakeSocket(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // There was none.
  }
}

/** How old a wake socket must be before a sweep may take it for abandoned, in ms. */
const NEW_SOCKET_MS = 10_000;

/**
 * Removes the wake sockets in `runsDir` that belong to none of `workers`
 * and that nobody serves: left by a worker process that died before it
 * registered or after it unregistered. A socket somebody serves (a worker
 * about to register) only receives a harmless poke.
 */
export async function removeStrayWakeSockets(
  runsDir: string,
  workers: WakeIdentity[],
): Promise<void> {
  const known = new Set(workers.map((worker) => wakeSocketPath(runsDir, worker)));
  const youngest = Date.now() - NEW_SOCKET_MS;
  for (const path of listWakeSockets(runsDir)) {
    if (known.has(path)) continue;
    try {
      // Between its bind and its listen, a new socket refuses connections too.
      if ((Deno.lstatSync(path).mtime?.getTime() ?? 0) > youngest) continue;
    } catch {
      continue; // Gone already.
    }
    try {
      await knock(path);
    } catch (error) {
      if (
        error instanceof Deno.errors.ConnectionRefused || error instanceof Deno.errors.NotFound
      ) removeWakeSocket(path);
    }
  }
}

/**
 * Pokes every live worker process of `store` on this host. Where the runs
 * folder `runsDir` holds wake sockets, each is knocked on at once, without
 * asking the database which workers live: a socket is this user's, in a
 * folder only this user can reach, named by one process's pid and start
 * time, and a knock at one nobody serves any more is refused at no harm.
 * That spares the time between the commit and the pick-up the reading of
 * the registry's records (about 0.4 ms, measured in `enqueue`; the SQLite
 * notifier asks only whether any worker is registered before it calls this,
 * one cheap `EXISTS`). Where there is none
 * (no runs folder, workers of a version without sockets, a folder path too
 * long for one), the registry says who to signal, and only processes whose
 * pid and start time match their registration are signalled: a reused pid
 * must never receive the signal (its default action ends a process). A
 * worker registers only after it listens. Never throws: a missed poke only
 * costs the wait until the worker's next poll.
 */
export async function pokeLocalWorkers(
  store: Pick<Store, "listWorkers">,
  runsDir: string | null,
): Promise<void> {
  if (Deno.build.os !== "linux") return;
  try {
    const sockets = runsDir === null ? [] : listWakeSockets(runsDir);
    if (sockets.length > 0) {
      await Promise.all(sockets.map(knockIfOwn));
      return;
    }
    const host = hostname();
    const pokes: Promise<void>[] = [];
    for (const worker of await store.listWorkers()) {
      if (worker.host !== host || worker.procStart === null || worker.stopRequested) continue;
      if (processStartTime(worker.pid) !== worker.procStart) continue;
      const socket = runsDir === null ? null : wakeSocketPath(runsDir, worker);
      pokes.push(poke(socket, worker.pid, worker.procStart));
    }
    await Promise.all(pokes);
  } catch {
    // The jobs are stored; waking is a courtesy.
  }
}

/** Knocks at the socket at `path` if it is this user's; returns whether it did. Never throws. */
async function knockIfOwn(path: string): Promise<boolean> {
  try {
    // Another user's socket in its place would swallow the poke, or learn of it.
    if (Deno.lstatSync(path).uid !== Deno.uid()) return false;
    await knock(path);
    return true;
  } catch {
    // Nobody serves it (a worker that died; its successor sweeps it away), or it is gone.
    return false;
  }
}

async function poke(socketPath: string | null, pid: number, procStart: string): Promise<void> {
  // No socket (an older worker, no runs folder, or a path too long for one): signal instead.
  if (socketPath !== null && await knockIfOwn(socketPath)) return;
  // Checked again: the connection attempt gave the process time to exit.
  if (processStartTime(pid) !== procStart) return;
  try {
    Deno.kill(pid, POKE_SIGNAL);
  } catch {
    // It exited after the check.
  }
}
