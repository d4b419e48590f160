/**
 * The PostgreSQL backend's connections when the server ends them
 * (lib/store/pg_clients.ts): a transaction whose connection is terminated
 * fails at once with a catchable error, sends nothing more, and the next
 * transaction and query work; nothing escapes as an uncaught error (the
 * client library's own `begin` wrote its ROLLBACK to the closed socket from
 * a timer, which ended the Web Worker). Real server, real
 * `pg_terminate_backend`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PgClients } from "../lib/store/pg_clients.ts";
import { connectPg, pgSettings } from "../lib/store/pg_connection.ts";
import { within } from "./helpers.ts";
import { pgTest, withSql } from "./pg_helpers.ts";

/** Clients of `url` as the store opens them. */
function clientsOf(url: string, max = 2): PgClients {
  const settings = pgSettings(url, "the test server");
  return new PgClients((options, events) => connectPg(settings, options, events), { max });
}

/** Ends the server session `pid` from a connection of its own. */
async function terminate(url: string, pid: number): Promise<void> {
  await withSql(url, (sql) => sql`SELECT pg_terminate_backend(${pid})`);
}

/** The error's client or server code. */
function codeOf(error: unknown): string | undefined {
  return (error as { code?: string }).code;
}

pgTest(
  "pg clients: a transaction whose session is ended fails at once, and the next one works",
  async (url) => {
    const clients = clientsOf(url);
    try {
      const failing = clients.transaction(async (tx) => {
        const [{ pid }] = await tx`SELECT pg_backend_pid() AS pid`;
        await terminate(url, pid as number);
        // The session is gone: this statement, or the one after, must fail.
        await tx`SELECT 1`;
        await tx`SELECT 2`;
        return "committed";
      });
      const error = await within(failing.then(() => undefined, (e) => e), 15_000, "the failure");
      assert.ok(error instanceof Error, "the transaction failed");
      assert.ok(
        ["CONNECTION_CLOSED", "57P01", "EPIPE", "ECONNRESET"].includes(codeOf(error) ?? ""),
        `a connection error, not ${codeOf(error)}: ${error}`,
      );
      const again = await within(
        clients.transaction(async (tx) => (await tx`SELECT 41 + 1 AS n`)[0].n),
        15_000,
        "the next transaction",
      );
      assert.equal(again, 42);
      const read = await within(
        clients.onPool(async (sql) => (await sql`SELECT 'pool' AS p`)[0].p),
        15_000,
        "a read",
      );
      assert.equal(read, "pool");
    } finally {
      await clients.end(2);
    }
  },
);

pgTest(
  "pg clients: a session ended while the body fails (ROLLBACK due) settles, never hangs",
  async (url) => {
    const clients = clientsOf(url);
    try {
      for (let round = 0; round < 5; round++) {
        const failing = clients.transaction(async (tx) => {
          const [{ pid }] = await tx`SELECT pg_backend_pid() AS pid`;
          // The termination races the error and the ROLLBACK that follows it.
          const ending = terminate(url, pid as number);
          await tx`SELECT 1/0`.catch(async (e) => {
            await ending;
            throw e;
          });
        });
        const error = await within(failing.then(() => undefined, (e) => e), 15_000, "the failure");
        assert.ok(error instanceof Error, `round ${round}: the transaction failed`);
      }
      const after = await within(
        clients.transaction(async (tx) => (await tx`SELECT 'ok' AS s`)[0].s),
        15_000,
        "the next transaction",
      );
      assert.equal(after, "ok");
    } finally {
      await clients.end(2);
    }
  },
);

pgTest(
  "pg clients: a server error rolls back and the lane is kept; writes of a failed body are undone",
  async (url) => {
    const clients = clientsOf(url, 2);
    try {
      const table = `pg_temp.t_${crypto.randomUUID().replaceAll("-", "")}`;
      const pids = new Set<number>();
      await clients.transaction(async (tx) => {
        pids.add((await tx`SELECT pg_backend_pid() AS pid`)[0].pid as number);
        await tx.unsafe(`CREATE TABLE ${table} (n integer)`);
      });
      await assert.rejects(
        clients.transaction(async (tx) => {
          pids.add((await tx`SELECT pg_backend_pid() AS pid`)[0].pid as number);
          await tx.unsafe(`INSERT INTO ${table} VALUES (1)`);
          await tx`SELECT 1/0`;
        }),
        (e) => codeOf(e) === "22012",
      );
      const count = await clients.transaction(async (tx) => {
        pids.add((await tx`SELECT pg_backend_pid() AS pid`)[0].pid as number);
        return (await tx.unsafe(`SELECT count(*)::integer AS n FROM ${table}`))[0].n;
      });
      assert.equal(count, 0, "the insert was rolled back");
      assert.equal(
        pids.size,
        1,
        "one session served every transaction (the temp table shows it too)",
      );
    } finally {
      await clients.end(2);
    }
  },
);
