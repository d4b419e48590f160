/**
 * The dashboard's JSON API: the CLI's `--json` shapes (lib/json_shapes.ts)
 * and its actions, through the same store functions and the same
 * validation (lib/spec.ts) as the commands. Authentication, the CSRF check
 * and `--read-only` are the server's (lib/dashboard/server.ts): a handler
 * here runs only for a request already let through.
 *
 * Errors are one line of JSON, `{ "error": "…" }`: 400 for invalid input,
 * 404 for a job or path that does not exist, 409 where the job's state (or
 * a taken id) forbids the action, 500 for a failure of the database or of
 * queuectl itself, never with a stack.
 *
 * @module
 */

import { DatabaseError, JobNotFoundError, QueueError, UsageError } from "../errors.ts";
import { isoTime, type Job } from "../job.ts";
import {
  jobDetailToJson,
  jobListToJson,
  queueToJson,
  readJobDetail,
  statusToJson,
} from "../json_shapes.ts";
import { checkQueueName, parseSpecArgument, resolveSpecList } from "../spec.ts";
import { JOB_STATES, type JobState } from "../states.ts";
import type { QueueSummary, Store } from "../store/store.ts";
import { parseStateList } from "../cli/args.ts";
import { enqueueNaming } from "../cli/commands/enqueue.ts";
import { readStatus } from "../cli/commands/status.ts";

/** A refusal with its HTTP status and a one-line message. */
export class ApiError extends Error {
  override name = "ApiError";
  /** @param status the HTTP status to answer with */
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Jobs a page of `GET /api/jobs` holds unless `limit` says otherwise, as `list` prints. */
export const DEFAULT_PAGE_SIZE = 100;

/** The most jobs one page may hold. */
export const MAX_PAGE_SIZE = 1_000;

/** What an endpoint's handler gets. */
export interface ApiRequest {
  store: Store;
  url: URL;
  /** The parts of the path the route names (a job id, a queue name), decoded. */
  params: string[];
  /** The parsed JSON body of a POST; `{}` when it was empty. */
  body: unknown;
  /** The body's text, as sent. */
  bodyText: string;
  /** The directory relative `cwd` fields of enqueued jobs are resolved against. */
  cwd: string;
}

/** One endpoint of the API. */
export interface Endpoint {
  method: "GET" | "POST";
  /** Matches the path; its groups become {@linkcode ApiRequest.params}. */
  pattern: RegExp;
  handle(request: ApiRequest): Promise<Response>;
}

/** A JSON response. */
export function jsonResponse(status: number, value: unknown, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(value) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/**
 * The JSON error response for `error`: its status by its kind, its first
 * line as the message. A {@linkcode QueueError} from an action is the
 * store's refusal (the job's state forbids it, the id is taken): 409. From
 * a read, where the store refuses nothing, it can only be a failure: 500.
 */
export function errorResponse(error: unknown, action: boolean): Response {
  const message = (error instanceof Error ? error.message : String(error)).split("\n")[0];
  if (error instanceof ApiError) return jsonResponse(error.status, { error: message });
  if (error instanceof UsageError) return jsonResponse(400, { error: message });
  if (error instanceof JobNotFoundError) return jsonResponse(404, { error: message });
  if (error instanceof DatabaseError) return jsonResponse(500, { error: message });
  if (error instanceof QueueError) return jsonResponse(action ? 409 : 500, { error: message });
  return jsonResponse(500, { error: `internal error: ${message}` });
}

/** The fields a body may hold; anything else is refused, as unknown spec fields are. */
function checkFields(body: unknown, known: readonly string[]): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError(400, "the body must be a JSON object");
  }
  for (const key of Object.keys(body)) {
    if (!known.includes(key)) {
      throw new ApiError(
        400,
        known.length === 0
          ? `unknown field '${key}': this action takes none`
          : `unknown field '${key}' (known: ${known.join(", ")})`,
      );
    }
  }
  return body as Record<string, unknown>;
}

/**
 * How many of a page's last jobs its cursor names: the next page starts
 * after the first of them still listed, so that deleting the job a cursor
 * points at (or a few before it) neither repeats nor skips a job.
 */
const CURSOR_ANCHORS = 8;

/**
 * A position in the newest-first list of jobs: after the first of `ids`
 * (the page's last jobs, last first) still listed; when none is, after the
 * jobs created later than `createdAt`.
 */
interface Cursor {
  ids: string[];
  createdAt: number;
}

/** The opaque text of the cursor after `page`: base64url of its JSON. */
function encodeCursor(page: readonly Job[]): string {
  const last = page.slice(-CURSOR_ANCHORS).reverse();
  const text = JSON.stringify({ ids: last.map((job) => job.id), created_at: last[0].createdAt });
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function decodeCursor(text: string): Cursor {
  try {
    const value = JSON.parse(atob(text.replaceAll("-", "+").replaceAll("_", "/")));
    const ids: unknown = value?.ids;
    if (
      Array.isArray(ids) && ids.length > 0 && ids.length <= CURSOR_ANCHORS &&
      ids.every((id) => typeof id === "string") && Number.isSafeInteger(value?.created_at)
    ) {
      return { ids, createdAt: value.created_at };
    }
  } catch {
    // Refused below, whatever was wrong with it.
  }
  throw new ApiError(400, "cursor: not a cursor this API gave out (use next_cursor as it is)");
}

/** Reads `limit`: 1 to {@linkcode MAX_PAGE_SIZE}. */
function pageSize(text: string | null): number {
  if (text === null) return DEFAULT_PAGE_SIZE;
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > MAX_PAGE_SIZE) {
    throw new ApiError(400, `limit: '${text}' is not a whole number from 1 to ${MAX_PAGE_SIZE}`);
  }
  return Number(text);
}

/**
 * Where a page starts in `jobs` (newest first): just after the first of the
 * cursor's jobs still listed. When none of them is in `jobs` and `jobs` is
 * every job (`complete`), they are all gone: at the first job created no
 * later than them (which may repeat a job rather than skip one). Undefined
 * when they may be further down than `jobs` reaches.
 */
function startAfter(
  jobs: readonly Job[],
  cursor: Cursor | undefined,
  complete: boolean,
): number | undefined {
  if (cursor === undefined) return 0;
  const position = new Map(jobs.map((job, index) => [job.id, index]));
  for (const id of cursor.ids) {
    const index = position.get(id);
    if (index !== undefined) return index + 1;
  }
  if (!complete) return undefined;
  const older = jobs.findIndex((job) => job.createdAt <= cursor.createdAt);
  return older === -1 ? jobs.length : older;
}

/** One page of `GET /api/jobs`: jobs as `list --json` prints them, and where the next starts. */
async function listPage(request: ApiRequest): Promise<Response> {
  const params = request.url.searchParams;
  const stateText = params.get("state");
  const states: JobState[] | undefined = stateText === null || stateText === ""
    ? undefined
    : parseStateList(stateText, JOB_STATES, "list");
  const queueText = params.get("queue");
  const queue = queueText === null || queueText === ""
    ? undefined
    : checkQueueName(queueText, "queue");
  const text = params.get("q") ?? "";
  const limit = pageSize(params.get("limit"));
  const cursorText = params.get("cursor");
  const cursor = cursorText === null || cursorText === "" ? undefined : decodeCursor(cursorText);
  const matches = (job: Job) => text === "" || job.id.includes(text) || job.command.includes(text);
  // The store lists jobs newest first from the top only, so a page is found in a window from the
  // top that grows until it holds the page and one match more (or every job): early pages, the
  // ones people look at, read little. Deep pages and rare matches read more; a store query that
  // seeks to the cursor and matches text in SQL is left for a later round.
  for (let window = Math.max(limit + 1, 256);; window *= 4) {
    const jobs = await request.store.listJobs({ states, queue, limit: window });
    const complete = jobs.length < window;
    const start = startAfter(jobs, cursor, complete);
    if (start === undefined) continue;
    const found: Job[] = [];
    for (let i = start; i < jobs.length && found.length <= limit; i++) {
      if (matches(jobs[i])) found.push(jobs[i]);
    }
    if (found.length > limit || complete) {
      const page = found.slice(0, limit);
      const more = found.length > limit;
      return jsonResponse(200, {
        jobs: jobListToJson(page),
        next_cursor: more ? encodeCursor(page) : null,
      });
    }
  }
}

/** `GET /api/jobs/<id>`: as `show --json`. */
async function showJob({ store, params: [id] }: ApiRequest): Promise<Response> {
  const detail = await readJobDetail(store, id);
  if (!detail) throw new JobNotFoundError(id);
  return jsonResponse(200, jobDetailToJson(detail));
}

/** The most minutes `GET /api/runs` covers: a day. */
export const MAX_RUN_MINUTES = 1_440;

/**
 * `GET /api/runs?minutes=N`: the runs that ended in each of the last N
 * minutes (default 60, the current one last), succeeded and failed, every
 * minute present; minutes are UTC minutes of the store's clock.
 */
async function runsByMinute({ store, url }: ApiRequest): Promise<Response> {
  const text = url.searchParams.get("minutes");
  if (
    text !== null &&
    (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > MAX_RUN_MINUTES)
  ) {
    throw new ApiError(
      400,
      `minutes: '${text}' is not a whole number from 1 to ${MAX_RUN_MINUTES}`,
    );
  }
  const count = text === null ? 60 : Number(text);
  const current = Math.floor(store.now() / 60_000) * 60_000;
  const first = current - (count - 1) * 60_000;
  const found = new Map((await store.runsByMinute(first)).map((row) => [row.minute, row]));
  const minutes = Array.from({ length: count }, (_, i) => {
    const minute = first + i * 60_000;
    const row = found.get(minute);
    return { minute: isoTime(minute), succeeded: row?.succeeded ?? 0, failed: row?.failed ?? 0 };
  });
  return jsonResponse(200, { minutes });
}

/** Output bytes as text for a page: invalid UTF-8 shows as U+FFFD. */
const lenientText = new TextDecoder("utf-8", { fatal: false });

/**
 * `GET /api/jobs/<id>/output`: the output of the job's latest run, as
 * `logs <id>` prints it (a running job's output so far), as text; `attempt`
 * null when no run has printed or finished yet.
 */
async function jobOutput({ store, params: [id] }: ApiRequest): Promise<Response> {
  const job = await store.getJob(id);
  if (!job) throw new JobNotFoundError(id);
  const live = job.state === "processing" ? await store.liveOutput(id) : undefined;
  const output = live
    ? {
      attempt: live.attempt,
      stdout: live.stdout,
      stderr: live.stderr,
      stdoutDropped: live.stdoutTotal - live.stdout.length,
      stderrDropped: live.stderrTotal - live.stderr.length,
    }
    : job.state === "processing"
    ? undefined
    : await store.latestOutput(id);
  return jsonResponse(200, {
    id,
    attempt: output?.attempt ?? null,
    running: live !== undefined,
    stdout: output ? lenientText.decode(output.stdout) : "",
    stderr: output ? lenientText.decode(output.stderr) : "",
    stdout_dropped: output?.stdoutDropped ?? 0,
    stderr_dropped: output?.stderrDropped ?? 0,
  });
}

/** `POST /api/jobs`: as `enqueue '<spec>'` with the body as the spec; the new ids. */
async function enqueueJobs({ store, body, bodyText, cwd }: ApiRequest): Promise<Response> {
  if (typeof body !== "object" || body === null) {
    throw new ApiError(400, "the body must be a JSON job spec (an object) or an array of them");
  }
  const specs = parseSpecArgument(bodyText);
  const config = await store.getConfig();
  const now = store.now();
  const jobs = resolveSpecList(specs, {}, { now, cwd, config });
  await enqueueNaming(store, jobs, now, specs);
  await store.notifier.announce("jobs");
  return jsonResponse(201, { ids: jobs.map((job) => job.id) });
}

/** `POST /api/jobs/<id>/retry`: as `retry <id>`; the job after, as `show --json`. */
async function retryJob(request: ApiRequest): Promise<Response> {
  checkFields(request.body, []);
  const { store, params: [id] } = request;
  await store.rerunJobs([id], store.now());
  await store.notifier.announce("jobs");
  return await showJob(request);
}

/** `POST /api/jobs/<id>/kill`: asks its worker to stop the run, as `kill <id>` does; 202. */
async function killJob(request: ApiRequest): Promise<Response> {
  const fields = checkFields(request.body, ["no_retry"]);
  if (fields.no_retry !== undefined && typeof fields.no_retry !== "boolean") {
    throw new ApiError(400, "'no_retry' must be true or false");
  }
  const { store, params: [id] } = request;
  const kill = await store.requestKill(id, fields.no_retry === true ? "dead" : "retry");
  await store.notifier.announce("kill");
  return jsonResponse(202, { id, kill_requested: true, mode: kill.mode, attempt: kill.attempt });
}

/** `POST /api/jobs/<id>/delete`: as `delete <id>`. */
async function deleteJob(request: ApiRequest): Promise<Response> {
  checkFields(request.body, []);
  const { store, params: [id] } = request;
  const deleted = await store.deleteJobs({ ids: [id] }, store.now());
  return jsonResponse(200, { deleted });
}

/**
 * `POST /api/dlq/retry`: as `dlq retry <ids>` with `{"ids": [...]}`, as
 * `dlq retry --all` with `{"all": true}`; the ids revived. With ids, every
 * one must be dead or nothing changes (409), so that a page retries exactly
 * the jobs it counted and asked about.
 */
async function retryDead(request: ApiRequest): Promise<Response> {
  const fields = checkFields(request.body, ["ids", "all"]);
  const { ids, all } = fields;
  if (all !== undefined && all !== true) throw new ApiError(400, "'all' must be true when given");
  if ((ids === undefined) === (all === undefined)) {
    throw new ApiError(400, "give 'ids' (the dead jobs to retry) or 'all': true, not both");
  }
  if (
    ids !== undefined &&
    (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => typeof id === "string"))
  ) {
    throw new ApiError(400, "'ids' must be a non-empty array of job ids");
  }
  const { store } = request;
  const retried = await store.reviveDead(all === true ? "all" : ids as string[], store.now());
  if (retried.length > 0) await store.notifier.announce("jobs");
  return jsonResponse(200, { retried });
}

/** A queue as `status --json` lists it, also when it holds no job and is not paused. */
async function queueNow(store: Store, name: string): Promise<QueueSummary> {
  const found = (await store.listQueues()).find((queue) => queue.name === name);
  return found ?? {
    name,
    pausedAt: null,
    counts: Object.fromEntries(JOB_STATES.map((state) => [state, 0])) as QueueSummary["counts"],
    limits: { concurrency: null, rate: null },
    recentStarts: 0,
  };
}

/**
 * `POST /api/queues/<name>/pause` and `/resume`: as `pause` and `resume`;
 * the queue after, as `status --json` lists it, and whether it changed
 * (pausing a paused queue is not an error, as for the CLI).
 */
async function pauseOrResume(request: ApiRequest, pause: boolean): Promise<Response> {
  checkFields(request.body, []);
  const { store } = request;
  const name = checkQueueName(request.params[0], "queue");
  const changed = pause ? await store.pauseQueue(name, store.now()) : await store.resumeQueue(name);
  if (changed && !pause) await store.notifier.announce("jobs");
  return jsonResponse(200, { ...queueToJson(await queueNow(store, name)), changed });
}

/** Every endpoint, by method and path. */
export const ENDPOINTS: readonly Endpoint[] = [
  {
    method: "GET",
    pattern: /^\/api\/status$/,
    handle: async ({ store }) => jsonResponse(200, statusToJson(await readStatus(store))),
  },
  { method: "GET", pattern: /^\/api\/jobs$/, handle: listPage },
  { method: "POST", pattern: /^\/api\/jobs$/, handle: enqueueJobs },
  { method: "GET", pattern: /^\/api\/jobs\/([^/]+)$/, handle: showJob },
  { method: "GET", pattern: /^\/api\/jobs\/([^/]+)\/output$/, handle: jobOutput },
  { method: "POST", pattern: /^\/api\/jobs\/([^/]+)\/retry$/, handle: retryJob },
  { method: "POST", pattern: /^\/api\/jobs\/([^/]+)\/kill$/, handle: killJob },
  { method: "POST", pattern: /^\/api\/jobs\/([^/]+)\/delete$/, handle: deleteJob },
  { method: "POST", pattern: /^\/api\/dlq\/retry$/, handle: retryDead },
  { method: "GET", pattern: /^\/api\/runs$/, handle: runsByMinute },
  {
    method: "POST",
    pattern: /^\/api\/queues\/([^/]+)\/pause$/,
    handle: (request) => pauseOrResume(request, true),
  },
  {
    method: "POST",
    pattern: /^\/api\/queues\/([^/]+)\/resume$/,
    handle: (request) => pauseOrResume(request, false),
  },
];
