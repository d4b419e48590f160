/**
 * The store conformance suite (tests/store_conformance.ts) run against the
 * PostgreSQL backend on a real server: every test gets a schema of its
 * own, dropped afterwards, so that parallel tests never share state.
 *
 * @module
 */

import { openPgStore } from "../lib/store/pg_store.ts";
import type { Store } from "../lib/store/store.ts";
import { freshSchema, PG } from "./pg_helpers.ts";
import { conformanceTest, exerciseStore, type OpenStore } from "./store_conformance.ts";
import { exerciseEnvAndUnique } from "./store_conformance_env_unique.ts";
import { exerciseScheduleStore } from "./store_conformance_schedules.ts";

if ("skip" in PG) {
  Deno.test({ name: "store conformance (postgres): skipped", ignore: true, fn() {} });
  console.error(PG.skip);
} else {
  /** A fresh schema of its own, with as many connections as a test opens. */
  const openPg: OpenStore = async () => {
    const schema = await freshSchema();
    const connections: Store[] = [];
    const connect = async () => {
      const store = await openPgStore(schema.url, `test schema ${schema.schema}`, { max: 2 });
      connections.push(store);
      return store;
    };
    return {
      store: await connect(),
      connect,
      cleanup: async () => {
        for (const store of connections) await store.close();
        await schema.drop();
      },
    };
  };
  exerciseStore("postgres", openPg);
  exerciseEnvAndUnique(conformanceTest("postgres", openPg));
  exerciseScheduleStore("postgres", openPg);
}
