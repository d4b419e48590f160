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
  /** The server's port: the URL's, else `PGPORT`, else 5432 (also the socket's name). */
  port: number;
  /** The folder of the server's Unix socket, when the connection goes through one. */
  socketDir?: string;
  /**
   * The host to connect to when it is not the URL's own name: an IPv6
   * address (without its brackets), or the name `?host=` or `PGHOST` gives.
   */
  host?: string;
  /** The password from `?password=` or `~/.pgpass` when the URL and `PGPASSWORD` give none. */
  password?: string;
}

/**
 * A schema name queuectl accepts: lower case, so that it means the same
 * quoted or not (PostgreSQL folds unquoted names to lower case: `Jobs` and
 * `jobs` would otherwise be two queues).
 */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Where libpq looks for the server's socket when a URL names no host:
 * Debian's and Ubuntu's folder, then the one PostgreSQL builds with.
 */
const DEFAULT_SOCKET_DIRS = ["/var/run/postgresql", "/tmp"];

/**
 * Reads the parts of a PostgreSQL URL that are queuectl's (`?schema=`) or
 * that the client does not take as libpq does: the host (`?host=`, an IPv6
 * address, an empty host meaning the server's Unix socket), and finds a
 * password in `~/.pgpass` (or `$PGPASSFILE`) when none is given.
 *
 * @throws {UsageError} for a URL that cannot be read, two schemas, or a schema name queuectl refuses
 */
export function pgSettings(url: string, where: string): PgSettings {
  const read = parseUrl(url);
  // The client would throw the whole URL back, password and all.
  if (read === undefined) throw new UsageError(`${where} is not a valid PostgreSQL URL`);
  const { url: parsed, hostGiven } = read;
  const params = parsed.searchParams;
  if (params.getAll("schema").length > 1) {
    throw new UsageError(`${where} names ?schema= more than once`);
  }
  const schema = params.get("schema") ?? DEFAULT_SCHEMA;
  checkSchemaName(schema);
  // libpq: ?host= wins over the URL's host; with neither, PGHOST, else the local socket.
  const hostParam = params.get("host") || undefined;
  const host = hostParam ?? (hostGiven ? parsed.hostname : Deno.env.get("PGHOST") || undefined);
  // libpq takes the password as a parameter too; the client would send it to the server as a setting.
  const passwordParam = params.get("password") ?? undefined;
  for (const name of ["schema", "host", "password"]) params.delete(name);
  const port = parsed.port || Deno.env.get("PGPORT") || "5432";
  const settings: PgSettings = { url: parsed.toString(), schema, port: Number(port) };
  if (host === undefined) settings.socketDir = defaultSocketDir(port);
  else if (host.startsWith("/")) settings.socketDir = host;
  else if (host !== parsed.hostname || host.startsWith("[")) {
    settings.host = host.replace(/^\[(.*)\]$/, "$1");
  }
  // libpq never uses SSL on a Unix socket; the client would try, and fail.
  if (settings.socketDir !== undefined) {
    for (const name of ["sslmode", "ssl"]) parsed.searchParams.delete(name);
    settings.url = parsed.toString();
  }
  if (passwordParam !== undefined && parsed.password === "") settings.password = passwordParam;
  else if (parsed.password === "" && !Deno.env.get("PGPASSWORD")) {
    const pgpassHost = settings.socketDir === undefined
      ? (settings.host ?? parsed.hostname)
      : "localhost";
    const password = passwordFromPgpass(parsed, pgpassHost, port);
    if (password !== undefined) settings.password = password;
  }
  return settings;
}

/**
 * Refuses a schema name queuectl does not use: one that is not lower case
 * (see {@linkcode SCHEMA_NAME}), or a schema that is not the queue's own:
 * `public`, shared by everything in the database, and PostgreSQL's own.
 *
 * @throws {UsageError} naming the rule
 */
function checkSchemaName(schema: string): void {
  // One line, and short, whatever the URL held.
  const printable = schema.replace(/\p{Cc}/gu, "?");
  const shown = printable.length > 63 ? `${printable.slice(0, 20)}…` : printable;
  if (!SCHEMA_NAME.test(schema)) {
    throw new UsageError(
      `?schema=${shown}: a schema name is 1 to 63 lower-case letters, digits and _, ` +
        "not starting with a digit",
    );
  }
  const why = schema === "public"
    ? "is shared by everything in the database"
    : schema === "information_schema"
    ? "is PostgreSQL's own"
    : schema.startsWith("pg_")
    ? "starts with pg_, which PostgreSQL keeps for its own schemas"
    : undefined;
  if (why !== undefined) {
    throw new UsageError(
      `?schema=${schema} ${why}: give queuectl a schema of its own (the default is ${DEFAULT_SCHEMA})`,
    );
  }
}

/**
 * The URL parsed, and whether it names a host; undefined when it cannot be
 * read. `URL` refuses libpq's `postgres://user@/db` (a user or a port and
 * no host): it is read with a stand-in host, which the caller replaces.
 */
function parseUrl(url: string): { url: URL; hostGiven: boolean } | undefined {
  const parsed = tryUrl(url);
  if (parsed !== undefined) return { url: parsed, hostGiven: parsed.hostname !== "" };
  // `postgres://user@/db`, `postgres://user@:5433/db`, `postgres://:5433/db`.
  const emptyHost = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/(?:[^/?#]*@)?)(?=(?::\d*)?(?:[/?#]|$))/.exec(
    url,
  );
  if (emptyHost === null) return undefined;
  const standIn = tryUrl(`${emptyHost[1]}localhost${url.slice(emptyHost[1].length)}`);
  return standIn === undefined ? undefined : { url: standIn, hostGiven: false };
}

/** `new URL(text)`, or undefined when it cannot be read. */
function tryUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/** The first of libpq's usual socket folders that holds the server's socket for `port`. */
function defaultSocketDir(port: string): string {
  const found = DEFAULT_SOCKET_DIRS.find((dir) => {
    try {
      return Deno.statSync(`${dir}/.s.PGSQL.${port}`).isSocket === true;
    } catch {
      return false;
    }
  });
  return found ?? DEFAULT_SOCKET_DIRS[0];
}

/**
 * The password `~/.pgpass` holds for this server, database and user, as
 * libpq reads it: lines `host:port:database:user:password`, `*` matching
 * anything, `\` escaping `:` and `\`; the first matching line wins. A file
 * readable by others is ignored, as libpq does. `host` is `localhost` for a
 * Unix socket, as in libpq.
 */
function passwordFromPgpass(url: URL, host: string, port: string): string | undefined {
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
  const wanted = [
    host,
    port,
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
  else if (settings.host !== undefined) {
    // As lists: the client splits a string host at its first `:`, which breaks an IPv6 address.
    Object.assign(clientOptions, { host: [settings.host], port: [settings.port] });
  }
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
 * A connection failure or server error as a one-line {@linkcode DatabaseError}
 * that names the server by `where` (its URL without password) and says what
 * to do; queue errors (the store's own refusals) pass through unchanged.
 */
export function pgError(error: unknown, where: string): QueueError {
  if (error instanceof QueueError) return error;
  const e = error as { code?: string; message?: string; errno?: string; address?: unknown };
  const message = (e.message ?? String(error)).split("\n")[0];
  const state = sqlState(error);
  if (state === "28P01") {
    // The server says this for a role that does not exist too, so as not to tell which.
    return new DatabaseError(
      `PostgreSQL at ${where} refused the login: ${message} ` +
        "(check the user, and give the password in the URL, PGPASSWORD or ~/.pgpass)",
    );
  }
  if (state === "28000") {
    // No pg_hba.conf line for a connection without SSL: PostgreSQL 13-15 say "SSL off", 16 on "no encryption".
    const wantsSsl = /no pg_hba\.conf entry.*(SSL off|no encryption)/.test(message);
    return new DatabaseError(
      `PostgreSQL at ${where} refused the login: ${message}` +
        (wantsSsl ? " (the server may accept it over SSL: add ?sslmode=require)" : ""),
    );
  }
  if (state === "3D000") return new DatabaseError(`PostgreSQL at ${where}: ${message}`);
  // Any other server error is the database failing (a missing table, a full disk, a
  // cancelled statement): the store's own refusals are QueueErrors thrown by its code.
  if (state !== undefined) return new DatabaseError(`PostgreSQL at ${where}: ${message}`);
  const code = e.code ?? e.errno;
  if (code === "ECONNREFUSED") {
    return new DatabaseError(`cannot reach PostgreSQL at ${where}: connection refused`);
  }
  if (code === "ENOENT") {
    const socket = typeof e.address === "string" ? ` at ${e.address}` : "";
    return new DatabaseError(
      `cannot reach PostgreSQL at ${where}: no server socket${socket} (is the server running?)`,
    );
  }
  if (code === "ENETUNREACH" || code === "EHOSTUNREACH") {
    return new DatabaseError(`cannot reach PostgreSQL at ${where}: no route to the host`);
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
