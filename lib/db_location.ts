/**
 * Where the queue database is: `--db`, `QUEUECTL_DB` or the default file,
 * parsed once into a {@linkcode DbLocation}, and the form messages show it in.
 *
 * The rule for a value (documented in the README, under Command reference):
 *
 * 1. `postgres://…` or `postgresql://…`, the scheme in any case, is a
 *    PostgreSQL URL.
 * 2. Any other `scheme://…` (two or more letters before `://`) is refused:
 *    a URL of a database queuectl cannot use, or a mistyped one, must not
 *    become a file whose folders are named after its host and password.
 *    For the same reason `postgres:` or `postgresql:` without `//` is refused.
 * 3. Anything else is the path of a SQLite file, taken as it is: `:` and
 *    `//` elsewhere are part of the name, and there are no `sqlite:` or
 *    `file:` prefixes (`file:q.db` is a file of that name). A relative path
 *    is taken from the current directory; `./` in front makes any name a
 *    path, `./mysql://x` included.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

/** Where the queue database is: a SQLite file on this host, or a PostgreSQL server. */
export type DbLocation =
  | {
    kind: "sqlite";
    /** Absolute. */
    path: string;
  }
  | {
    kind: "postgres";
    /** As given, password included: never print it ({@linkcode describeLocation} is for that). */
    url: string;
  };

/** `scheme://` at the start of a value: letters, digits, `+`, `.`, `-` after a first letter. */
const URL_START = /^([A-Za-z][A-Za-z0-9+.-]+):\/\//;
/** The schemes of PostgreSQL URLs, lower case. */
const POSTGRES_SCHEMES = ["postgres", "postgresql"];

/**
 * Parses a database location as given by `source` (`--db`, `QUEUECTL_DB`),
 * by the rule in the module doc; a relative path is resolved against `cwd`.
 *
 * @throws {UsageError} for a URL that is not PostgreSQL's, or `postgres:` without `//`
 */
export function parseDbLocation(text: string, source: string, cwd = Deno.cwd()): DbLocation {
  const scheme = URL_START.exec(text)?.[1].toLowerCase();
  if (scheme !== undefined) {
    if (POSTGRES_SCHEMES.includes(scheme)) return { kind: "postgres", url: text };
    throw new UsageError(
      `${source}: ${scheme}:// is not a database queuectl can use: give the path of a SQLite ` +
        `file or a postgres:// URL (for a file of that name, start it with ./)`,
    );
  }
  const prefix = /^[A-Za-z]+:/.exec(text)?.[0].toLowerCase();
  if (prefix !== undefined && POSTGRES_SCHEMES.includes(prefix.slice(0, -1))) {
    throw new UsageError(
      `${source}: a PostgreSQL URL starts with ${prefix}// (for a file of that name, ` +
        `start it with ./)`,
    );
  }
  return { kind: "sqlite", path: absolutePath(text, cwd) };
}

/** `path` taken from `cwd` when relative, so that Web Workers and later commands agree on the file. */
function absolutePath(path: string, cwd: string): string {
  return path.startsWith("/") ? path : `${cwd}/${path}`;
}

/**
 * The database location: `--db` (`flag`), else `$QUEUECTL_DB`, else
 * `$XDG_DATA_HOME/queuectl/queue.db`, else `~/.local/share/queuectl/queue.db`.
 * An empty variable counts as unset.
 *
 * @throws {UsageError} for an empty `--db`, or a value {@linkcode parseDbLocation} refuses
 */
export function resolveDbLocation(flag: string | undefined): DbLocation {
  const env = (name: string) => {
    const value = Deno.env.get(name);
    return value === undefined || value === "" ? undefined : value;
  };
  // Most likely `--db "$DB"` with DB unset: neither the current directory nor the default is meant.
  if (flag === "") throw new UsageError("--db: the path is empty");
  if (flag !== undefined) return parseDbLocation(flag, "--db");
  const fromEnv = env("QUEUECTL_DB");
  if (fromEnv !== undefined) return parseDbLocation(fromEnv, "QUEUECTL_DB");
  const dataHome = env("XDG_DATA_HOME") ??
    `${env("HOME") ?? env("USERPROFILE") ?? "."}/.local/share`;
  // A file by definition: the URL rules are for what the user names.
  return { kind: "sqlite", path: absolutePath(`${dataHome}/queuectl/queue.db`, Deno.cwd()) };
}

/**
 * The location as messages, `worker start` and `top` show it: the path of a
 * SQLite file; a PostgreSQL URL without its password (in the user part or
 * in a `password` or `sslpassword` parameter).
 */
export function describeLocation(location: DbLocation): string {
  return location.kind === "sqlite" ? location.path : withoutPassword(location.url);
}

/**
 * A `scheme://` URL with no password left in it. Safe before faithful: the
 * user part ends at the last `@`, since a password may hold `@`, `/`, `?` or
 * `#` that its writer did not escape; and a query loses everything from its
 * first password parameter on, since that password may hold an `&`.
 */
function withoutPassword(url: string): string {
  const start = url.indexOf("://") + 3;
  const rest = url.slice(start);
  const at = rest.lastIndexOf("@");
  const name = at === -1 ? "" : rest.slice(0, at).split(":")[0];
  const user = name === "" ? "" : `${name}@`;
  let place = rest.slice(at + 1);
  const query = place.indexOf("?");
  if (query !== -1) {
    const params = place.slice(query + 1).split("&");
    const secret = params.findIndex((param) => /password/i.test(decodedName(param)));
    if (secret !== -1) {
      const kept = params.slice(0, secret);
      place = place.slice(0, query) + (kept.length === 0 ? "" : `?${kept.join("&")}`);
    }
  }
  return `${url.slice(0, start)}${user}${place}`;
}

/** The name of a query parameter, `%`-escapes decoded where they can be. */
function decodedName(param: string): string {
  const name = param.split("=")[0];
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}
