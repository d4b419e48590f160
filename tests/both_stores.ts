/**
 * Registers a test twice: on a SQLite queue file and on a fresh PostgreSQL
 * schema (ignored when there is no test server, see tests/pg_helpers.ts),
 * for tests that drive both stores from one file.
 *
 * @module
 */

import { pgTest, withFreshSchema } from "./pg_helpers.ts";

/** A queue of one test: its `--db` (a file path or a URL) and a temp directory for its files. */
export interface TestQueue {
  db: string;
  dir: string;
}

/** Registers `name (sqlite)` and `name (postgres)`, each on a fresh, empty queue. */
export function onBothStores(name: string, fn: (queue: TestQueue) => Promise<void>): void {
  const withDir = async (body: (dir: string) => Promise<void>) => {
    const dir = await Deno.makeTempDir({ prefix: "queuectl-test-" });
    try {
      await body(dir);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  };
  Deno.test(`${name} (sqlite)`, () => withDir((dir) => fn({ db: `${dir}/queue.db`, dir })));
  pgTest(
    `${name} (postgres)`,
    () => withDir((dir) => withFreshSchema((fresh) => fn({ db: fresh.url, dir }))),
  );
}
