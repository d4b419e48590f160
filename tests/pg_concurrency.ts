/**
 * Helpers for tests of the PostgreSQL store under real concurrency: several
 * stores on one fresh schema with a raw client beside them, a transaction
 * of the raw client holding locks at the moment that matters, and who waits
 * on them.
 *
 * @module
 */

import postgres from "postgres";
import { openPgStore } from "../lib/store/pg_store.ts";
import type { Store } from "../lib/store/store.ts";
import { freshSchema } from "./pg_helpers.ts";

/** A raw client on the test schema (bigint columns come back as strings). */
export type Raw = postgres.Sql<Record<string, unknown>>;

/** Runs `body` with `stores` stores and one raw client on a fresh schema, then drops it. */
export async function withSchema(
  stores: number,
  body: (stores: Store[], raw: Raw) => Promise<void>,
): Promise<void> {
  const schema = await freshSchema();
  const opened: Store[] = [];
  const raw: Raw = postgres(schema.url.replace(/\?schema=.*$/, ""), {
    max: 2,
    onnotice: () => {},
    connection: { search_path: schema.schema },
  });
  try {
    for (let i = 0; i < stores; i++) {
      opened.push(await openPgStore(schema.url, `test schema ${schema.schema}`, { max: 2 }));
    }
    await body(opened, raw);
  } finally {
    for (const store of opened) await store.close();
    await raw.end({ timeout: 1 });
    await schema.drop();
  }
}

/** Polls `condition` every 20 ms until it holds, failing after `timeoutMs`. */
export async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Holds `lock` (a statement taking row locks) in a transaction of `raw`
 * until `release` is called; resolves once the locks are held, with the
 * backend's pid (to see who waits on it).
 */
export async function holdLock(
  raw: Raw,
  lock: (sql: postgres.TransactionSql<Record<string, unknown>>) => Promise<unknown>,
): Promise<{ pid: number; release(): Promise<number>; done: Promise<unknown> }> {
  let pid = 0;
  let held!: () => void;
  let release!: (value: void) => void;
  const heldNow = new Promise<void>((resolve) => held = resolve);
  const released = new Promise<void>((resolve) => release = resolve);
  let releasedAt = 0;
  const done = raw.begin(async (tx) => {
    pid = (await tx`SELECT pg_backend_pid() AS pid`)[0].pid as number;
    await lock(tx);
    held();
    await released;
    releasedAt = Number((await tx`SELECT now_ms() AS now`)[0].now);
  });
  await heldNow;
  return {
    pid,
    done,
    async release() {
      release();
      await done;
      return releasedAt;
    },
  };
}

/** How many backends wait, directly or behind another waiter, on locks that `pid` holds. */
export async function waitersOn(raw: Raw, pid: number): Promise<number> {
  const [row] = await raw`
    WITH RECURSIVE waiting (pid) AS (
      SELECT pid FROM pg_stat_activity WHERE ${pid} = ANY(pg_blocking_pids(pid))
      UNION
      SELECT a.pid FROM pg_stat_activity a JOIN waiting w ON w.pid = ANY(pg_blocking_pids(a.pid))
    )
    SELECT count(*) AS n FROM waiting`;
  return Number(row.n);
}
