/**
 * `queuectl dashboard`: serves the dashboard's API (lib/dashboard/server.ts)
 * until Ctrl+C or SIGTERM.
 *
 * @module
 */

import { QueueError, UsageError } from "../../errors.ts";
import { isLoopback, startDashboard } from "../../dashboard/server.ts";
import type { CommandContext } from "../context.ts";
import { writeErr, writeOut } from "../output.ts";

/** Where the dashboard listens unless told otherwise. */
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 8080;

/**
 * How long a stop waits for requests in flight to be answered before the
 * process exits anyway: a slow query must not keep a stopped dashboard up.
 */
const STOP_GRACE_MS = 5_000;

/** Reads `--port`: 0 (any free port) to 65535. */
function portOption(value: string | boolean | undefined): number {
  if (value === undefined) return DEFAULT_PORT;
  const text = String(value).trim();
  if (!/^\d+$/.test(text) || Number(text) > 65_535) {
    throw new UsageError(
      `--port: '${value}' is not a port number (0 to 65535; 0 for any free one)`,
    );
  }
  return Number(text);
}

/** Tokens are sent in a header and a URL: printable ASCII without spaces. */
const TOKEN_PATTERN = /^[\x21-\x7e]+$/;

/** Reads the token from `--token` or `--token-file` (its first line); undefined for none. */
async function tokenOption(options: Record<string, string | boolean | undefined>) {
  const given = options.token as string | undefined;
  const file = options["token-file"] as string | undefined;
  if (given !== undefined && file !== undefined) {
    throw new UsageError("give --token or --token-file, not both");
  }
  let token = given;
  let what = "--token";
  if (file !== undefined) {
    what = `--token-file '${file}'`;
    try {
      token = (await Deno.readTextFile(file)).split(/\r?\n/)[0].trim();
    } catch (error) {
      throw new UsageError(`--token-file: cannot read '${file}': ${(error as Error).message}`);
    }
  }
  if (token === undefined) return undefined;
  if (token === "") throw new UsageError(`${what}: the token is empty`);
  if (!TOKEN_PATTERN.test(token)) {
    throw new UsageError(`${what}: a token is printable ASCII without spaces`);
  }
  return token;
}

/** Resolves when the process is asked to stop: Ctrl+C (SIGINT) or SIGTERM. */
function stopRequested(): { stopped: Promise<Deno.Signal>; dispose(): void } {
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  let resolve!: (signal: Deno.Signal) => void;
  const stopped = new Promise<Deno.Signal>((done) => resolve = done);
  const listeners = signals.map((signal) => {
    const listener = () => resolve(signal);
    Deno.addSignalListener(signal, listener);
    return { signal, listener };
  });
  return {
    stopped,
    dispose: () => {
      for (const { signal, listener } of listeners) Deno.removeSignalListener(signal, listener);
    },
  };
}

/** Runs `dashboard`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const hostOption = args.options.host as string | undefined;
  const hostname = (hostOption ?? DEFAULT_HOST).trim();
  if (hostname === "") throw new UsageError("--host: give an address to listen on");
  const port = portOption(args.options.port);
  const token = await tokenOption(args.options);
  if (token === undefined && !isLoopback(hostname)) {
    throw new UsageError(
      `refusing to serve on ${hostname} without a token: give --token-file F (or --token T), or listen on ${DEFAULT_HOST}`,
    );
  }
  const readOnly = args.options["read-only"] === true;
  // Listening on signals before serving: a stop that comes as the address is printed is kept.
  const stop = stopRequested();
  try {
    const store = await openStore();
    try {
      let dashboard;
      try {
        dashboard = await startDashboard({
          store,
          hostname,
          port,
          token,
          readOnly,
          cwd: Deno.cwd(),
        });
      } catch (error) {
        const reason = error instanceof Deno.errors.AddrInUse
          ? "the address is already in use"
          : (error as Error).message.split("\n")[0];
        throw new QueueError(`cannot listen on ${hostname}:${port}: ${reason}`);
      }
      const open = new URL(dashboard.url);
      if (token !== undefined) open.searchParams.set("token", token);
      writeOut(
        `dashboard of ${store.location}${readOnly ? " (read-only)" : ""}: open ${open.href}\n`,
      );
      await stop.stopped;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stopped = await Promise.race([
        dashboard.stop().then(() => true),
        new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), STOP_GRACE_MS)),
      ]);
      clearTimeout(timer);
      if (!stopped) {
        writeErr(
          `queuectl: dashboard: requests still unanswered ${
            STOP_GRACE_MS / 1000
          }s after the stop; stopped anyway\n`,
        );
      }
      return 0;
    } finally {
      await store.close();
    }
  } finally {
    stop.dispose();
  }
}
