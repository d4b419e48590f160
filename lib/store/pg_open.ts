/**
 * Opening a PostgreSQL queue: the server checked (reachable, new enough),
 * the schema checked (queuectl's, not newer than this queuectl) and brought
 * up to date under an advisory lock, so that many processes opening a new
 * queue at once create it once.
 *
 * @module
 */

import { DatabaseError } from "../errors.ts";
import { PgClients } from "./pg_clients.ts";
import {
  type ConnectOptions,
  connectPg,
  type PgConnection,
  pgError,
  type PgSettings,
  type Sql,
} from "./pg_connection.ts";
import { FIRST_PG_VERSION, PG_MIGRATIONS, PG_SCHEMA_VERSION } from "./pg_migrations.ts";
import type { SchemaMigration } from "./store.ts";

/** The oldest PostgreSQL queuectl supports, as `server_version_num`. */
const OLDEST_SERVER = 130000;

/** Options of {@linkcode openPgDatabase}. */
export interface PgOpenOptions extends ConnectOptions {
  /** Whether an older or missing schema may be brought up to date (else refused). */
  migrate?: boolean;
}

/**
 * Connects to the server, checks it and the queue's schema, and migrates
 * the schema when it is older or missing. Returns the connections and what
 * the migration did.
 *
 * @throws {DatabaseError} when the server cannot be reached or used, or the schema is not usable
 */
export async function openPgDatabase(
  settings: PgSettings,
  where: string,
  options: PgOpenOptions = {},
): Promise<{ clients: PgClients; migration: SchemaMigration }> {
  const clients = new PgClients((more, events) => connectPg(settings, more, events), options);
  try {
    const [server] = await withinDeadline(
      clients.onPool((sql) =>
        sql`SELECT current_setting('server_version_num')::integer AS num,
          current_setting('server_version') AS name`
      ),
      ((options.connectTimeoutS ?? 10) + 5) * 1000,
      where,
    );
    if ((server.num as number) < OLDEST_SERVER) {
      throw new DatabaseError(
        `PostgreSQL at ${where} is version ${server.name}: queuectl needs 13 or newer`,
      );
    }
    const found = await clients.onPool((sql) => schemaVersion(sql, settings.schema, where));
    if (found > PG_SCHEMA_VERSION) throw newerSchemaError(where, settings.schema, found);
    let migration = { from: found, to: found };
    if (found < PG_SCHEMA_VERSION) {
      if (options.migrate === false) {
        throw new DatabaseError(
          `the queue at ${where} (schema ${settings.schema}) needs 'queuectl migrate'`,
        );
      }
      migration = await migrate(clients, settings.schema, where);
    }
    return { clients, migration };
  } catch (error) {
    await clients.end(1).catch(() => {});
    throw pgError(error, where);
  }
}

/**
 * `query`'s answer, or a {@linkcode DatabaseError} once `ms` have passed: a
 * peer that accepts the connection but does not speak PostgreSQL (another
 * service on that port) can leave the client waiting for ever.
 */
async function withinDeadline<T>(query: Promise<T>, ms: number, where: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DatabaseError(`no answer from PostgreSQL at ${where} in time`)),
      ms,
    );
  });
  try {
    return await Promise.race([query, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The schema version of the queue in `schema`: 0 when the schema or its
 * tables do not exist yet.
 *
 * @throws {DatabaseError} when the schema holds tables but not queuectl's, or records a
 * version below the first PostgreSQL one
 */
async function schemaVersion(sql: Sql, schema: string, where: string): Promise<number> {
  const [row] = await sql`SELECT
      (SELECT count(*) FROM pg_tables WHERE schemaname = ${schema}) AS tables,
      to_regclass(${schema + ".schema_version"}) IS NOT NULL AS ours`;
  if (!row.ours) {
    if ((row.tables as number) > 0) {
      throw new DatabaseError(
        `schema ${schema} at ${where} holds tables that are not queuectl's; ` +
          "refusing to touch it (name another with ?schema=)",
      );
    }
    return 0;
  }
  const [recorded] = await sql.unsafe(`SELECT version FROM "${schema}".schema_version`);
  const version = recorded?.version as number | undefined;
  // PostgreSQL began at FIRST_PG_VERSION, made whole by one migration: no queuectl wrote less,
  // and no migration leads from less (it would meet the tables already there).
  if (version === undefined || version < FIRST_PG_VERSION) {
    throw new DatabaseError(
      `the queue at ${where} (schema ${schema}) records ` +
        (version === undefined ? "no schema version" : `schema version ${version}`) +
        `, which no queuectl writes (PostgreSQL queues start at ${FIRST_PG_VERSION}): ` +
        "it was changed by hand; restore it from a backup, or use a new schema (?schema=NAME)",
    );
  }
  return version;
}

/** A schema written by a newer queuectl. */
function newerSchemaError(where: string, schema: string, version: number): DatabaseError {
  return new DatabaseError(
    `the queue at ${where} (schema ${schema}) was written by a newer queuectl ` +
      `(schema ${version}, this one knows ${PG_SCHEMA_VERSION}); upgrade queuectl`,
  );
}

/**
 * Applies the pending migrations in one transaction, under an advisory lock
 * named after the schema: a second process waits, then finds the work done.
 */
async function migrate(
  clients: PgClients,
  schema: string,
  where: string,
): Promise<SchemaMigration> {
  return await clients.transaction(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(hashtext(${"queuectl migrate " + schema}))`;
    // Only when missing: CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database, which a
    // role given a schema of its own by the administrator may well lack.
    const [found] = await tx`SELECT to_regnamespace(${schema}) IS NOT NULL AS there`;
    // The schema name was checked to be a plain identifier (pgSettings).
    if (!found.there) await tx.unsafe(`CREATE SCHEMA "${schema}"`);
    const from = await schemaVersion(tx, schema, where);
    if (from > PG_SCHEMA_VERSION) throw newerSchemaError(where, schema, from);
    const first = from === 0 ? 0 : from - FIRST_PG_VERSION + 1;
    for (let i = first; i < PG_MIGRATIONS.length; i++) await tx.unsafe(PG_MIGRATIONS[i]);
    await tx`INSERT INTO schema_version (id, version) VALUES (1, ${PG_SCHEMA_VERSION})
      ON CONFLICT (id) DO UPDATE SET version = excluded.version`;
    return { from, to: PG_SCHEMA_VERSION };
  });
}

/** Whether the queue's tables are still in their schema (false once it was dropped). */
export async function schemaStillThere(conn: PgConnection): Promise<boolean> {
  const [row] = await conn.read((sql) =>
    sql`SELECT to_regclass(${conn.schema + ".jobs"}) IS NOT NULL AS there`
  );
  return row.there as boolean;
}
