/**
 * Tools for the dashboard's tests: a real `queuectl dashboard` process on a
 * free loopback port, real HTTP with `fetch`, and every test registered on
 * SQLite and on PostgreSQL.
 *
 * @module
 */

import { type CliProcess, exitWithin, killProcess, spawnCli, waitFor } from "./helpers.ts";
import { onBothStores } from "./both_stores.ts";

/** A `queuectl dashboard` process serving a test's queue. */
export interface DashboardProcess {
  process: CliProcess;
  /** Its origin, e.g. `http://127.0.0.1:41234`. */
  origin: string;
  /** The URL it printed to open (with `?token=` when it has a token). */
  printed: string;
  /** Sends `signal` (SIGTERM by default) and returns the exit code; kills it after `ms`. */
  stop(signal?: Deno.Signal, ms?: number): Promise<number>;
}

/**
 * Starts `queuectl dashboard --port 0 <args>` on `db` and waits for the URL
 * it prints.
 *
 * @throws with its stderr when it exits before printing one
 */
export async function startDashboard(db: string, args: string[] = []): Promise<DashboardProcess> {
  const process = spawnCli(["dashboard", "--port", "0", ...args], { db });
  let exited = false;
  process.status().then(() => exited = true, () => exited = true);
  let printed: string;
  try {
    printed = await waitFor("the dashboard to print its URL", () => {
      const url = /open (http:\/\/\S+)/.exec(process.stdout())?.[1];
      if (url === undefined && exited) {
        throw new Error(`the dashboard exited: ${process.stderr()}`);
      }
      return url;
    }, { timeoutMs: 30_000 });
  } catch (error) {
    killProcess(process);
    throw error;
  }
  let stopped: Promise<number> | undefined;
  return {
    process,
    origin: new URL(printed).origin,
    printed,
    stop: (signal: Deno.Signal = "SIGTERM", ms = 20_000) => {
      if (stopped === undefined) {
        try {
          process.signal(signal);
        } catch {
          // It has exited already.
        }
        stopped = exitWithin(process, ms);
      }
      return stopped;
    },
  };
}

/** Runs `fn` with a dashboard on `db`, and stops it afterwards whatever happened. */
export async function withDashboard(
  db: string,
  args: string[],
  fn: (dashboard: DashboardProcess) => Promise<void>,
): Promise<void> {
  const dashboard = await startDashboard(db, args);
  try {
    await fn(dashboard);
  } finally {
    await dashboard.stop().catch(() => killProcess(dashboard.process));
  }
}

/**
 * Registers a test twice: on a SQLite file in a temp dir, and on a fresh
 * PostgreSQL schema (ignored when there is no test server). `fn` gets the
 * queue's `--db` and a temp dir of its own.
 */
export function storeTest(name: string, fn: (db: string, dir: string) => Promise<void>): void {
  onBothStores(name, ({ db, dir }) => fn(db, dir));
}

/** What an API call answered. */
export interface ApiAnswer {
  status: number;
  headers: Headers;
  /** The parsed JSON body (undefined when there was none). */
  json: unknown;
  text: string;
}

/** Options of {@linkcode call}: `fetch`'s, plus a bearer token and a JSON body. */
export interface CallOptions extends RequestInit {
  token?: string;
  /** Sent as the JSON body, with `Content-Type: application/json`. */
  jsonBody?: unknown;
}

/** One HTTP request to the dashboard at `origin`, its answer read whole. */
export async function call(
  origin: string,
  path: string,
  options: CallOptions = {},
): Promise<ApiAnswer> {
  const headers = new Headers(options.headers);
  if (options.token !== undefined) headers.set("authorization", `Bearer ${options.token}`);
  let body = options.body;
  if (options.jsonBody !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(options.jsonBody);
  }
  const response = await fetch(`${origin}${path}`, {
    redirect: "manual",
    ...options,
    headers,
    body,
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, json, text };
}

/** A POST of an action with a JSON body (`{}` unless given). */
export function post(
  origin: string,
  path: string,
  body: unknown = {},
  options: CallOptions = {},
): Promise<ApiAnswer> {
  return call(origin, path, { ...options, method: "POST", jsonBody: body });
}
