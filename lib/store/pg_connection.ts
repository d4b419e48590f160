/**
 * One PostgreSQL connection pool as the rest of the PostgreSQL backend uses
 * it, on the `postgres` npm package (porsager): the URL turned into client
 * settings the way libpq users expect (`PGPASSWORD`, `~/.pgpass`,
 * `sslmode`, a socket folder as `host`), the queue's schema on the search
 * path, epoch-ms `bigint` columns read as numbers, transactions, and the
 * server's errors turned into one-line queue errors that never show a
 * password.
 *
 * This module is loaded only when a PostgreSQL location is opened: the
 * package costs tens of milliseconds at start-up, which SQLite users never
 * pay.
 *
 * @module
 */

import postgres from "postgres";
import { DatabaseError, QueueError, UsageError } from "../errors.ts";
import { PgClients, type Tx } from "./pg_clients.ts";

export type { Tx };
/** The pool: what a statement or read runs on. */
export type Sql = postgres.Sql<Record<string, unknown>>;
/** A row as the client returns it. */
export type PgRow = Record<string, unknown>;

/** The schema queuectl's tables live in unless `?schema=` names another. */
export const DEFAULT_SCHEMA = "queuectl";

/** What a PostgreSQL URL says, split into the client's options and queuectl's own. */
export interface PgSettings {
  /** The URL without the parameters that are queuectl's (`schema`) or handled here (`host`). */
  url: string;
  /** The schema holding the queue's tables. */
  schema: string;
  /** A socket folder (`?host=/run/postgresql`), if the URL names one. */
  socketDir?: string;
  /** The password from `~/.pgpass` when the URL and `PGPASSWORD` give none. */
  password?: string;
}

/** A schema name queuectl accepts: plain, so that it never needs quoting in SQL. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Reads the parts of a PostgreSQL URL that are queuectl's (`?schema=`) or
 * that the client does not take in the URL (`?host=` naming a socket
 * folder), and finds a password in `~/.pgpass` (or `$PGPASSFILE`) when
 * none is given, as libpq does.
 *
 * @throws {UsageError} for a URL that cannot be read, or that names two schemas
 * @throws {DatabaseError} for a schema name that is not a plain lower-case identifier
 */
export function pgSettings(url: string, where: string): PgSettings {
  const parsed = parseUrl(url);
  // The client would throw the whole URL back, password and all.
  if (parsed === undefined) throw new UsageError(`${where} is not a valid PostgreSQL URL`);
  const params = parsed.searchParams;
  if (params.getAll("schema").length > 1) {
    throw new UsageError(`${where} names ?schema= more than once`);
  }
  const schema = params.get("schema") ?? DEFAULT_SCHEMA;
  if (schema.length > 63) {
    throw new DatabaseError(`schema name '${schema.slice(0, 20)}…' is longer than 63 characters`);
  }
  if (!SCHEMA_NAME.test(schema)) {
    throw new DatabaseError(
      `schema '${schema}' is not a plain name: use lower-case letters, digits and _`,
    );
  }
  const socketDir = params.get("host") ?? undefined;
  // libpq takes the password as a parameter too; the client would send it to the server as a setting.
  const passwordParam = params.get("password") ?? undefined;
  for (const name of ["schema", "host", "password"]) params.delete(name);
  const settings: PgSettings = { url: parsed.toString(), schema };
  if (socketDir !== undefined) settings.socketDir = socketDir;
  if (passwordParam !== undefined && parsed.password === "") settings.password = passwordParam;
  else if (parsed.password === "" && !Deno.env.get("PGPASSWORD")) {
    const password = passwordFromPgpass(parsed, socketDir);
    if (password !== undefined) settings.password = password;
  }
  return settings;
}

/** The URL parsed, or undefined when `URL` cannot read it (the client then reports it). */
function parseUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

/**
 * The password `~/.pgpass` holds for this server, database and user, as
 * libpq reads it: lines `host:port:database:user:password`, `*` matching
 * anything, `\` escaping `:` and `\`; the first matching line wins. A file
 * readable by others is ignored, as libpq does.
 */
function passwordFromPgpass(url: URL, socketDir: string | undefined): string | undefined {
  const home = Deno.env.get("HOME");
  const file = Deno.env.get("PGPASSFILE") ?? (home ? `${home}/.pgpass` : undefined);
  if (file === undefined) return undefined;
  let text: string;
  try {
    if ((Deno.statSync(file).mode ?? 0) & 0o077) return undefined;
    text = Deno.readTextFileSync(file);
  } catch {
    return undefined;
  }
  const host = socketDir === undefined ? (url.hostname || "localhost") : "localhost";
  const wanted = [
    host,
    url.port || Deno.env.get("PGPORT") || "5432",
    decoded(url.pathname.slice(1)) || Deno.env.get("PGDATABASE") || "",
    decoded(url.username) || Deno.env.get("PGUSER") || Deno.env.get("USER") || "",
  ];
  for (const line of text.split("\n")) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const fields = splitPgpassLine(line);
    if (fields.length < 5) continue;
    if (wanted.every((value, i) => fields[i] === "*" || fields[i] === value)) {
      return fields.slice(4).join(":");
    }
  }
  return undefined;
}

/** A URL part with its %-escapes decoded; as it is when they are malformed. */
function decoded(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** A `.pgpass` line's fields, `\:` and `\\` unescaped. */
function splitPgpassLine(line: string): string[] {
  const fields = [""];
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "\\" && i + 1 < line.length) fields[fields.length - 1] += line[++i];
    else if (c === ":") fields.push("");
    else fields[fields.length - 1] += c;
  }
  return fields;
}

/** What a connection tells as it happens: a notice received, the connection closed. */
export interface ConnectionEvents {
  onnotify?: (channel: string, payload: string) => void;
  onclose?: () => void;
}

/** Options of {@linkcode connectPg}. */
export interface ConnectOptions {
  /** Connections in the pool. */
  max?: number;
  /** Seconds to wait for the server before giving up. */
  connectTimeoutS?: number;
}

/**
 * Opens a pool to the server `settings` name, with the queue's schema first
 * on the search path and `bigint` read as a JavaScript number (every
 * `bigint` queuectl stores is epoch ms or a count, far below 2^53).
 */
export function connectPg(
  settings: PgSettings,
  options: ConnectOptions = {},
  events: ConnectionEvents = {},
): Sql {
  const clientOptions: postgres.Options<Record<string, postgres.PostgresType>> = {
    max: options.max ?? 4,
    connect_timeout: options.connectTimeoutS ?? 10,
    idle_timeout: 60,
    onnotice: () => {},
    types: {
      bigint: {
        to: 20,
        from: [20],
        serialize: (value: number) => String(value),
        parse: (text: string) => Number(text),
      },
    },
    connection: { application_name: "queuectl", search_path: settings.schema },
  };
  // Both are options of the client that its type declarations leave out.
  Object.assign(clientOptions, events);
  if (settings.socketDir !== undefined) clientOptions.host = settings.socketDir;
  if (settings.password !== undefined) clientOptions.password = settings.password;
  return postgres(settings.url, clientOptions);
}

/** The SQLSTATE of a server error; undefined for errors that are not the server's. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** The server aborted a transaction to break a deadlock, or as a serialization failure. */
const RETRYABLE = new Set(["40P01", "40001"]);

/** How many times a write is run in all when the server aborts it that way. */
const WRITE_RUNS = 5;

/** A unique constraint failed. */
export const UNIQUE_VIOLATION = "23505";

/**
 * A connection failure or server error as a one-line {@linkcode QueueError}
 * that names the server by `where` (its URL without password) and says what
 * to do; queue errors pass through unchanged.
 */
export function pgError(error: unknown, where: string): QueueError {
  if (error instanceof QueueError) return error;
  const e = error as { code?: string; message?: string; errno?: string };
  const message = (e.message ?? String(error)).split("\n")[0];
  const state = sqlState(error);
  if (state === "28P01" || state === "28000") {
    return new DatabaseError(
      `PostgreSQL at ${where} refused the login: ${message} ` +
        "(give the password in the URL, PGPASSWORD or ~/.pgpass)",
    );
  }
  if (state === "3D000") return new DatabaseError(`PostgreSQL at ${where}: ${message}`);
  if (state !== undefined) return new QueueError(`PostgreSQL at ${where}: ${message}`);
  const code = e.code ?? e.errno;
  if (code === "ECONNREFUSED" || code === "ENOENT") {
    return new DatabaseError(`cannot reach PostgreSQL at ${where}: connection refused`);
  }
  if (code === "CONNECT_TIMEOUT") {
    return new DatabaseError(`cannot reach PostgreSQL at ${where}: no answer in time`);
  }
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") {
    return new DatabaseError(`cannot reach PostgreSQL at ${where}: unknown host`);
  }
  if (
    code === "CONNECTION_CLOSED" || code === "CONNECTION_ENDED" || code === "ECONNRESET" ||
    code === "EPIPE" || /ended by the other party/.test(message)
  ) {
    // The client goes on with TLS when a server refuses SSL, which then closes the connection.
    const ssl = /[?&]sslmode=(require|verify-ca|verify-full)\b/.exec(where)?.[1];
    return new DatabaseError(
      `lost the connection to PostgreSQL at ${where}` +
        (ssl === undefined ? "" : ` (sslmode=${ssl}: does the server accept SSL?)`),
    );
  }
  return new DatabaseError(`PostgreSQL at ${where}: ${message}`);
}

/**
 * The open queue as every `pg_*.ts` concern takes it: its connections, the
 * schema, the server as messages name it, and the channel its news goes on.
 */
export class PgConnection {
  /** The schema holding the queue's tables. */
  readonly schema: string;
  /** The server and schema as messages show them: never a password. */
  readonly where: string;
  /** The LISTEN/NOTIFY channel of this queue (one per schema). */
  readonly channel: string;

  /** The channel on which every committed write to the queue's jobs, output, queues or settings is announced. */
  readonly changeChannel: string;
  /** How the pool was made: for the notifier's own connections. */
  readonly settings: PgSettings;
  readonly #clients: PgClients;

  constructor(clients: PgClients, settings: PgSettings, where: string) {
    this.#clients = clients;
    this.settings = settings;
    this.schema = settings.schema;
    this.where = where;
    this.channel = `queuectl.${settings.schema}`;
    this.changeChannel = `queuectl.${settings.schema}.changes`;
  }

  /**
   * Runs `body` in one transaction (READ COMMITTED) on a connection of its
   * own (see lib/store/pg_clients.ts), committed when it returns and rolled
   * back when it throws; server and connection errors come out as one-line
   * queue errors. A transaction the server aborted to break a deadlock (or
   * as a serialization failure) runs again from the start, a few times: the
   * writes take their locks in one order (oldest job first, as a cascade
   * does), but writes that touch many jobs at once (a delete and an enqueue
   * naming the same jobs) can still meet in the other.
   */
  write<T>(body: (tx: Tx) => Promise<T>): Promise<T> {
    return this.#retried(() => this.#clients.transaction(body));
  }

  /**
   * Runs `body`, one statement that writes, on its own (its own transaction,
   * without BEGIN and COMMIT round trips), aborted deadlocks run again and
   * errors as {@linkcode write}'s.
   */
  statement<T>(body: (sql: Sql) => Promise<T>): Promise<T> {
    return this.#retried(() => this.#clients.onPool(body));
  }

  /** Runs one read (or a single-statement write), errors as {@linkcode write}'s. */
  async read<T>(body: (sql: Sql) => Promise<T>): Promise<T> {
    try {
      return await this.#clients.onPool(body);
    } catch (error) {
      throw pgError(error, this.where);
    }
  }

  /**
   * Inside a write: tells the queue's listeners (idle workers of every host)
   * what the write gave them to do. PostgreSQL delivers it at commit, and
   * only then, and folds identical notices of one transaction into one, so
   * a write calls this once whatever it changed. The payload is the word
   * only, never job data (payloads are limited to 8,000 bytes).
   */
  async notify(tx: Tx, what: "jobs" | "kill"): Promise<void> {
    await tx`SELECT pg_notify(${this.channel}, ${what})`;
  }

  /** Closes the connections, waiting a moment for queries under way. */
  async close(): Promise<void> {
    await this.#clients.end(2);
  }

  async #retried<T>(run: () => Promise<T>): Promise<T> {
    for (let attempt = 1;; attempt++) {
      try {
        return await run();
      } catch (error) {
        if (attempt < WRITE_RUNS && RETRYABLE.has(sqlState(error) ?? "")) continue;
        throw pgError(error, this.where);
      }
    }
  }
}
