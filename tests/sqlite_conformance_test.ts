/**
 * The store conformance suite (tests/store_conformance.ts) run against the
 * SQLite backend: every test opens a fresh database file in a temp
 * directory.
 *
 * @module
 */

import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import type { Store } from "../lib/store/store.ts";
import { tempQueue } from "./helpers.ts";
import { conformanceTest, exerciseStore, type OpenStore } from "./store_conformance.ts";
import { exerciseEnvAndUnique } from "./store_conformance_env_unique.ts";
import { exerciseScheduleStore } from "./store_conformance_schedules.ts";

/** A fresh database file in a temp directory, with as many connections as a test opens. */
const openSqlite: OpenStore = async () => {
  const queue = await tempQueue();
  const connections: Store[] = [];
  const connect = async () => {
    const store = await openSqliteStore(queue.db);
    connections.push(store);
    return store;
  };
  return {
    store: await connect(),
    connect,
    cleanup: async () => {
      for (const store of connections) await store.close();
      await queue.cleanup();
    },
  };
};

exerciseStore("sqlite", openSqlite);
exerciseEnvAndUnique(conformanceTest("sqlite", openSqlite));
exerciseScheduleStore("sqlite", openSqlite);
