/**
 * The {@linkcode Notifier} of the SQLite backend. One file has no channel to
 * carry news, so news goes by the host: an announcement pokes the worker
 * processes of this host through their wake sockets (lib/worker/wake.ts),
 * and a waiter asks SQLite whether another connection has committed since it
 * last asked (`PRAGMA data_version`, which costs next to nothing). Workers on
 * other hosts, which a shared SQLite file should not have, would only learn
 * of work by their poll.
 *
 * @module
 */

import { runsFolderOf } from "../worker/runs_folder.ts";
import { pokeLocalWorkers } from "../worker/wake.ts";
import type { Announcement, Notifier, Store } from "./store.ts";

/** What the notifier needs of its store: the registry, and the connection's data version. */
export interface NotifiedStore extends Pick<Store, "listWorkers"> {
  /** Whether another connection has committed since the previous call (true at the first). */
  dataVersionChanged(): Promise<boolean>;
  /** Whether any worker process is registered. */
  anyWorkers(): Promise<boolean>;
}

/** The notifier of the SQLite store `store`, whose file is at `path`. */
export function sqliteNotifier(store: NotifiedStore, path: string): Notifier {
  return {
    // Kills and new jobs alike: a worker process looks for both when poked.
    async announce(_what: Announcement): Promise<void> {
      // None registered: nobody to wake (a worker registers before its first claim). Asked first
      // because it costs less than looking for wake sockets in a runs folder that, with no worker,
      // is often missing: the failed read and its exception cost `enqueue` 0.35 ms of start-up.
      // Never throws (the change is committed): a failed question pokes as if the answer were yes.
      if (!await store.anyWorkers().catch(() => true)) return;
      await pokeLocalWorkers(store, runsFolderOf({ kind: "sqlite", path }));
    },
    changed: () => store.dataVersionChanged(),
  };
}
