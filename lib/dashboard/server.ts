/**
 * The dashboard's HTTP server: `Deno.serve`, routing, authentication, the
 * CSRF and read-only checks, and a stop that does not wait for open event
 * streams. The JSON API itself is lib/dashboard/api.ts; `/metrics` and
 * `/api/events` are lib/dashboard/metrics.ts and lib/dashboard/events.ts;
 * the web pages and their assets are lib/dashboard/page.ts.
 *
 * Auth model. With a token, every request must carry it: as
 * `Authorization: Bearer <token>`, or as the session cookie (HttpOnly,
 * SameSite=Strict) set by a visit to `/?token=<token>`, which redirects to
 * `/` so that the token leaves the address bar. Tokens are compared in
 * constant time (as SHA-256 digests, so their lengths do not show either).
 * Without a token the server only listens on loopback (the command refuses
 * anything else) and answers only requests whose `Host` is a loopback name,
 * so that a web page cannot reach it through a DNS name rebound to
 * 127.0.0.1. Every state-changing request is a POST with a JSON body
 * (`Content-Type: application/json`, which a cross-site form cannot send),
 * refused when its `Origin` is another origin; `--read-only` refuses them all.
 *
 * @module
 */

import type { Store } from "../store/store.ts";
import { ApiError, ENDPOINTS, errorResponse, jsonResponse } from "./api.ts";
import { eventStream } from "./events.ts";
import { metricsText } from "./metrics.ts";
import { pageResponse } from "./page.ts";

/** The largest request body taken, in bytes: room for a large array of jobs. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** What {@linkcode startDashboard} serves and how. */
export interface DashboardOptions {
  store: Store;
  /** The address to listen on, e.g. `127.0.0.1`. */
  hostname: string;
  /** The port; 0 for any free one. */
  port: number;
  /** The secret every request must carry; undefined for none (loopback only). */
  token?: string;
  /** Refuse every action (403). */
  readOnly: boolean;
  /** The directory relative `cwd` fields of jobs enqueued through the API are resolved against. */
  cwd: string;
}

/** A running dashboard. */
export interface Dashboard {
  /** Where it listens, e.g. `http://127.0.0.1:8080/` (never with the token). */
  url: URL;
  /**
   * Stops it: ends every event stream, stops taking requests, and waits for
   * the requests in flight to be answered.
   */
  stop(): Promise<void>;
}

/** Whether `hostname` (as given to listen on, or from a `Host` header) is a loopback name. */
export function isLoopback(hostname: string): boolean {
  const bare = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return bare === "localhost" || bare === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}

/** The host part of a `Host` header (`127.0.0.1:8080`, `[::1]:8080`), without the port. */
function hostOf(header: string): string {
  const bracketed = /^(\[[^\]]*\])(?::\d*)?$/.exec(header);
  if (bracketed) return bracketed[1];
  return header.replace(/:\d*$/, "");
}

const encoder = new TextEncoder();

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

/** Whether two digests are equal, looking at every byte whatever differs. */
function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < Math.min(a.length, b.length); i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

/** A secret checked in constant time: only its digest is kept and compared. */
class Secret {
  private constructor(private readonly expected: Uint8Array) {}

  static async of(text: string): Promise<Secret> {
    return new Secret(await digest(text));
  }

  /** Whether `presented` is the secret. */
  async matches(presented: string | null | undefined): Promise<boolean> {
    if (presented === null || presented === undefined) return false;
    return sameDigest(await digest(presented), this.expected);
  }
}

/** The value of cookie `name` in a `Cookie` header, if present. */
function cookieValue(header: string | null, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return value.join("=");
  }
  return undefined;
}

/**
 * Headers every response carries: nothing cached, framed, sniffed or sent on as a referrer. The
 * pages replace the content security policy with theirs (lib/dashboard/page.ts).
 */
const SAFETY_HEADERS: Record<string, string> = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
};

/** `response` with {@linkcode SAFETY_HEADERS} added (copied: a response's headers may be immutable). */
function withSafetyHeaders(response: Response): Response {
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(SAFETY_HEADERS)) {
    if (!headers.has(name)) headers.set(name, value);
  }
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}

/** Reads a request body as UTF-8 text, refusing one larger than {@linkcode MAX_BODY_BYTES}. */
async function readBody(request: Request): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) {
    throw new ApiError(413, `the body is larger than ${MAX_BODY_BYTES} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    for await (const chunk of request.body) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        throw new ApiError(413, `the body is larger than ${MAX_BODY_BYTES} bytes`);
      }
      chunks.push(chunk);
    }
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new ApiError(400, "the body is not valid UTF-8 text");
  }
}

/** The parsed JSON body of an action; `{}` for an empty one. */
function parseBody(text: string): { body: unknown; bodyText: string } {
  if (text.trim() === "") return { body: {}, bodyText: "{}" };
  try {
    return { body: JSON.parse(text), bodyText: text };
  } catch (error) {
    throw new ApiError(400, `the body is not valid JSON: ${(error as Error).message}`);
  }
}

/** Decodes the parts of a path a route captured. */
function pathParams(match: RegExpExecArray): string[] {
  try {
    return match.slice(1).map((part) => decodeURIComponent(part));
  } catch {
    throw new ApiError(400, "the path is not valid percent-encoded text");
  }
}

/**
 * Starts serving the dashboard.
 *
 * @throws {Deno.errors.AddrInUse} when the port is taken, and the like for other listen errors
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const { store, readOnly } = options;
  const token = options.token === undefined ? undefined : await Secret.of(options.token);
  // The cookie holds a value derived from the token, not the token itself.
  const sessionValue = options.token === undefined ? "" : Array.from(
    await digest(`queuectl dashboard session\0${options.token}`),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  const session = await Secret.of(sessionValue);
  const stopping = new AbortController();
  let cookieName = "queuectl_dashboard";

  /** Whether a request carries the token, as a bearer token or the session cookie. */
  async function authorized(request: Request): Promise<boolean> {
    const bearer = /^Bearer +(.+)$/i.exec(request.headers.get("authorization") ?? "")?.[1];
    if (bearer !== undefined) return await token!.matches(bearer.trim());
    return await session.matches(cookieValue(request.headers.get("cookie"), cookieName));
  }

  /** The visit to `/?token=T`: sets the session cookie and sends the browser on to `/`. */
  async function signIn(url: URL): Promise<Response> {
    if (!await token!.matches(url.searchParams.get("token"))) {
      return jsonResponse(401, { error: "wrong token" });
    }
    const next = new URL(url);
    next.searchParams.delete("token");
    return new Response(null, {
      status: 303,
      headers: {
        location: `${next.pathname}${next.search}`,
        "set-cookie": `${cookieName}=${sessionValue}; Path=/; HttpOnly; SameSite=Strict`,
      },
    });
  }

  /** Checks an action: not read-only, from this origin, with a JSON body. */
  function checkAction(request: Request, url: URL): void {
    if (readOnly) throw new ApiError(403, "this dashboard is read-only (--read-only)");
    const origin = request.headers.get("origin");
    if (origin !== null && origin !== url.origin) {
      throw new ApiError(403, `cross-site request refused (Origin: ${origin})`);
    }
    if (request.headers.get("sec-fetch-site") === "cross-site") {
      throw new ApiError(403, "cross-site request refused (Sec-Fetch-Site: cross-site)");
    }
    const type = (request.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "application/json") {
      throw new ApiError(415, "an action takes a JSON body: send Content-Type: application/json");
    }
  }

  async function route(request: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
    const url = new URL(request.url);
    if (token === undefined && !isLoopback(hostOf(request.headers.get("host") ?? ""))) {
      throw new ApiError(403, "this dashboard answers only requests to a loopback address");
    }
    if (token !== undefined) {
      if (request.method === "GET" && url.pathname === "/" && url.searchParams.has("token")) {
        return await signIn(url);
      }
      if (!await authorized(request)) {
        return jsonResponse(401, { error: "missing or wrong token" }, {
          "www-authenticate": 'Bearer realm="queuectl"',
        });
      }
    }
    const path = url.pathname;
    const page = request.method === "GET" ? pageResponse(path, readOnly) : undefined;
    if (page) return page;
    if (request.method === "GET" && path === "/metrics") {
      return new Response(await metricsText(store), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    if (request.method === "GET" && path === "/api/events") {
      // Not request.signal: Deno warns of its legacy abort on every response. The response's
      // `completed` settles when it has been delivered or its client went away.
      const gone = new AbortController();
      const end = () => gone.abort();
      info.completed.then(end, end);
      return eventStream(store, AbortSignal.any([gone.signal, stopping.signal]));
    }
    const matching = ENDPOINTS.flatMap((endpoint) => {
      const match = endpoint.pattern.exec(path);
      return match ? [{ endpoint, match }] : [];
    });
    if (matching.length === 0) {
      if (pageResponse(path) || path === "/metrics" || path === "/api/events") {
        throw new ApiError(405, `${request.method} is not allowed here: use GET`);
      }
      throw new ApiError(404, `no such path: ${path}`);
    }
    const found = matching.find(({ endpoint }) => endpoint.method === request.method);
    if (!found) {
      const allowed = matching.map(({ endpoint }) => endpoint.method).join(", ");
      return jsonResponse(405, { error: `${request.method} is not allowed here: use ${allowed}` }, {
        allow: allowed,
      });
    }
    const params = pathParams(found.match);
    let parsed = { body: {} as unknown, bodyText: "{}" };
    if (found.endpoint.method === "POST") {
      checkAction(request, url);
      parsed = parseBody(await readBody(request));
    }
    return await found.endpoint.handle({ store, url, params, ...parsed, cwd: options.cwd });
  }

  async function handle(request: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
    let response: Response;
    try {
      response = await route(request, info);
    } catch (error) {
      response = errorResponse(error, request.method === "POST");
      if (response.status >= 500) {
        const message = (error instanceof Error ? error.message : String(error)).split("\n")[0];
        console.error(
          `queuectl dashboard: ${request.method} ${new URL(request.url).pathname}: ${message}`,
        );
      }
    }
    return withSafetyHeaders(response);
  }

  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    // Quiet: the command prints the address itself, with the token for a browser.
    onListen: () => {},
  }, handle);
  const address = server.addr as Deno.NetAddr;
  // Cookies are shared by every port of a host: one per dashboard, so that two do not clash.
  cookieName = `queuectl_dashboard_${address.port}`;
  const shownHost = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  return {
    url: new URL(`http://${shownHost}:${address.port}/`),
    stop: async () => {
      // Event streams end first: the server's shutdown waits for every open response.
      stopping.abort();
      await server.shutdown();
    },
  };
}
