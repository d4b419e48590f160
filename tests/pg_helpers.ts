/**
 * TEMPORARY stand-in (the lead's), replaced by the pginfra branch's version:
 * the PostgreSQL server tests use, and a fresh schema per test.
 *
 * @module
 */

import postgres from "postgres";

const URL_ = Deno.env.get("QUEUECTL_TEST_PG") ??
  "postgres://queuectl_test:queuectl_test@127.0.0.1:5432/queuectl_test";

async function probe(): Promise<{ url: string } | { skip: string }> {
  const sql = postgres(URL_, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`SELECT 1`;
    return { url: URL_ };
  } catch (error) {
    return { skip: `PostgreSQL tests skipped: ${(error as Error).message}` };
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** The test server, or why there is none. */
export const PG = await probe();

/** A fresh schema on the test server, and how to drop it. */
export async function freshSchema(): Promise<
  { url: string; schema: string; drop(): Promise<void> }
> {
  const schema = `qt_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  return {
    url: `${URL_}?schema=${schema}`,
    schema,
    drop: async () => {
      const sql = postgres(URL_, { max: 1, onnotice: () => {} });
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await sql.end({ timeout: 1 });
    },
  };
}
