/**
 * The one place tests get a PostgreSQL server: `QUEUECTL_TEST_PG`, else the
 * server `.ci/postgres` sets up ({@linkcode DEFAULT_TEST_PG_URL}). The server
 * is probed once, when this module loads, and {@linkcode PG} says what came of it:
 *
 * - reachable: `{ url }`, and the tests run;
 * - `QUEUECTL_TEST_PG` unset and the default server not usable: `{ skip }`,
 *   the tests are registered ignored and the reason is printed once (per test
 *   file) on stderr;
 * - `QUEUECTL_TEST_PG` set but not usable: `{ fail }`, the tests run and fail
 *   with the reason, since a server was promised (`.ci/run` sets the variable
 *   only when `.ci/postgres` brought one up).
 *
 * Every test works in a schema of its own ({@linkcode freshSchema}), named in
 * the URL it gives the store as `?schema=<name>`: parallel tests never share
 * state. Messages show URLs without their password.
 *
 * @module
 */

import postgres from "postgres";
import { describeLocation } from "../lib/db_location.ts";

/** The server, role and database `.ci/postgres` sets up. */
export const DEFAULT_TEST_PG_URL =
  "postgres://queuectl_test:queuectl_test@127.0.0.1:5432/queuectl_test";

/** What probing the test server found: see the module doc. */
export type PgServer = { url: string } | { skip: string } | { fail: string };

/** How long the probe waits for the server to answer, in s. */
const PROBE_TIMEOUT_S = 3;

/** `url` without its password, as messages show it. */
export function shownUrl(url: string): string {
  return describeLocation({ kind: "postgres", url });
}

/** Why a connection failed, in a few words: the socket error or the server's message. */
function failureReason(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "CONNECT_TIMEOUT") return `no answer within ${PROBE_TIMEOUT_S} s`;
  if (code === "ENETUNREACH") return "network unreachable";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "unknown host";
  return error instanceof Error ? error.message : String(error);
}

/** Connects to `url` once and reports whether the tests can use it. */
async function probe(url: string, fromEnv: boolean): Promise<PgServer> {
  const sql = postgres(url, {
    max: 1,
    connect_timeout: PROBE_TIMEOUT_S,
    onnotice: () => {},
  });
  try {
    await sql`SELECT 1`;
    return { url };
  } catch (error) {
    const reason = failureReason(error);
    if (fromEnv) {
      return { fail: `QUEUECTL_TEST_PG=${shownUrl(url)} cannot be used (${reason})` };
    }
    return {
      skip: `PostgreSQL tests skipped: no usable server at ${shownUrl(url)} (${reason}); ` +
        `run .ci/postgres, or set QUEUECTL_TEST_PG`,
    };
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

const fromEnv = Deno.env.get("QUEUECTL_TEST_PG") ?? "";

/** The test server, probed once when this module loads. */
export const PG: PgServer = await probe(fromEnv || DEFAULT_TEST_PG_URL, fromEnv !== "");
if ("skip" in PG) console.error(PG.skip);

/** Whether tests that need the server are registered ignored (`Deno.test({ ignore })`). */
export const PG_IGNORE = "skip" in PG;

/**
 * The test server's URL, for a test that runs (not ignored).
 *
 * @throws with the reason the server cannot be used
 */
export function pgUrl(): string {
  if ("url" in PG) return PG.url;
  throw new Error("skip" in PG ? PG.skip : PG.fail);
}

/**
 * Registers a test that needs the server: ignored when there is none
 * ({@linkcode PG_IGNORE}); `fn` gets the server's URL (no schema chosen: most
 * tests want {@linkcode freshSchema} or {@linkcode withFreshSchema}).
 */
export function pgTest(name: string, fn: (url: string) => Promise<void>): void {
  Deno.test({ name, ignore: PG_IGNORE, fn: () => fn(pgUrl()) });
}

/** `url` with `?schema=` (the schema the store works in) split off. */
function splitSchema(url: string): { server: string; schema: string | undefined } {
  const parsed = new URL(url);
  const schema = parsed.searchParams.get("schema") ?? undefined;
  if (schema === undefined) return { server: url, schema };
  parsed.searchParams.delete("schema");
  return { server: parsed.toString(), schema };
}

/**
 * Opens one connection to `url`, runs `fn` with it and closes it, for
 * setting up and inspecting in tests. A `?schema=` in the URL becomes the
 * connection's `search_path`, so that unqualified names are the store's.
 */
export async function withSql<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const { server, schema } = splitSchema(url);
  const sql = postgres(server, {
    max: 1,
    connect_timeout: 10,
    onnotice: () => {},
    connection: schema === undefined ? {} : { search_path: schema },
  });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** A schema of one test's own on the test server; `drop()` removes it with all it holds. */
export interface FreshSchema {
  /** The server's URL with `?schema=<schema>`: what the store is opened with. */
  url: string;
  schema: string;
  drop(): Promise<void>;
}

/** A name no other test run picks: `qt_` and 16 random hex digits. */
function uniqueSchemaName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `qt_${Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Creates an empty schema with a unique name on the test server (or on
 * `serverUrl`), owned by the test role.
 *
 * @throws when there is no usable server (see {@linkcode pgUrl})
 */
export async function freshSchema(serverUrl: string = pgUrl()): Promise<FreshSchema> {
  const schema = uniqueSchemaName();
  await withSql(serverUrl, (sql) => sql`CREATE SCHEMA ${sql(schema)}`);
  const separator = serverUrl.includes("?") ? "&" : "?";
  const url = `${serverUrl}${separator}schema=${schema}`;
  return {
    url,
    schema,
    // A store left open holds locks on its tables: fail clearly rather than hang.
    drop: async () => {
      await withSql(serverUrl, async (sql) => {
        await sql`SET lock_timeout = '10s'`;
        await sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`;
      });
      // The host-bound files the CLIs left for it (exit statuses of killed runs, wake sockets).
      const { runsFolder } = await import("./helpers.ts");
      await Deno.remove(runsFolder(url), { recursive: true }).catch(() => {});
    },
  };
}

/** Runs `fn` with a fresh schema and drops it afterwards, whatever `fn` did. */
export async function withFreshSchema<T>(fn: (fresh: FreshSchema) => Promise<T>): Promise<T> {
  const fresh = await freshSchema();
  try {
    return await fn(fresh);
  } finally {
    await fresh.drop();
  }
}
