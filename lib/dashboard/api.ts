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
import { DELETABLE_STATES, JOB_STATES, type JobState, TRANSITIONS } from "../states.ts";
import type { JobPosition, QueueSummary, Store } from "../store/store.ts";
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
 * after the oldest of them still stored ({@linkcode JobPosition}), so that
 * deleting the job a cursor points at (or a few before it) neither repeats
 * nor skips a job.
 */
const CURSOR_ANCHORS = 8;

/** The place in the list after `page`'s last job. */
function positionAfter(page: readonly Job[]): JobPosition {
  const last = page.slice(-CURSOR_ANCHORS).reverse();
  return { ids: last.map((job) => job.id), createdAt: last[0].createdAt };
}

/** The opaque text of the cursor after `page`: base64url of its JSON. */
function encodeCursor(page: readonly Job[]): string {
  const { ids, createdAt } = positionAfter(page);
  const text = JSON.stringify({ ids, created_at: createdAt });
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function decodeCursor(text: string): JobPosition {
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

/** What `state`, `queue` and `q` of a query (or a body) ask for. */
interface ListFilter {
  states: JobState[] | undefined;
  queue: string | undefined;
  text: string | undefined;
}

/** Reads the filter fields, each as `GET /api/jobs` takes it; empty means no filter. */
function readFilter(field: (name: string) => unknown): ListFilter {
  const text = (name: string): string => {
    const value = field(name);
    if (value === undefined || value === null) return "";
    if (typeof value !== "string") throw new ApiError(400, `'${name}' must be a string`);
    return value;
  };
  const stateText = text("state");
  const queueText = text("queue");
  return {
    states: stateText === "" ? undefined : parseStateList(stateText, JOB_STATES, "list"),
    queue: queueText === "" ? undefined : checkQueueName(queueText, "queue"),
    text: text("q") === "" ? undefined : text("q"),
  };
}

/** A query's parameters as {@linkcode readFilter} reads them. */
function queryFilter(url: URL): ListFilter {
  return readFilter((name) => url.searchParams.get(name) ?? undefined);
}

/** One page of `GET /api/jobs`: jobs as `list --json` prints them, and where the next starts. */
async function listPage(request: ApiRequest): Promise<Response> {
  const params = request.url.searchParams;
  const filter = queryFilter(request.url);
  const limit = pageSize(params.get("limit"));
  const cursorText = params.get("cursor");
  const cursor = cursorText === null || cursorText === "" ? undefined : decodeCursor(cursorText);
  // One more than the page: whether there is a next page.
  const found = await request.store.listJobs({ ...filter, after: cursor, limit: limit + 1 });
  const page = found.slice(0, limit);
  return jsonResponse(200, {
    jobs: jobListToJson(page),
    next_cursor: found.length > limit ? encodeCursor(page) : null,
  });
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

/**
 * `POST /api/jobs`: as `enqueue '<spec>'` with the body as the spec; the new
 * ids, and `not_added`, the places of jobs whose unique key was held, if any.
 */
async function enqueueJobs({ store, body, bodyText, cwd }: ApiRequest): Promise<Response> {
  if (typeof body !== "object" || body === null) {
    throw new ApiError(400, "the body must be a JSON job spec (an object) or an array of them");
  }
  const specs = parseSpecArgument(bodyText);
  const config = await store.getConfig();
  const now = store.now();
  const jobs = resolveSpecList(specs, {}, { now, cwd, config });
  const held = await enqueueNaming(store, jobs, now, specs);
  await store.notifier.announce("jobs");
  // As the CLI prints them: a job not added for its unique key answers with its holder's id.
  const ids = jobs.map((job) => job.id);
  for (const { index, holder } of held) ids[index] = holder;
  if (held.length === 0) return jsonResponse(201, { ids });
  return jsonResponse(201, { ids, not_added: held.map(({ index }) => index) });
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

/** The actions `/api/bulk` does to every job a filter matches, as `retry` and `delete` do. */
const BULK_ACTIONS = {
  /** As `retry <ids>`: finished jobs (completed or dead) run again. */
  retry: {
    states: TRANSITIONS.rerun.from,
    act: (store: Store, ids: string[]) => store.rerunJobs(ids, store.now()).then((d) => d.length),
  },
  /** As `delete <ids>`: every job but a running one. */
  delete: {
    states: DELETABLE_STATES,
    act: (store: Store, ids: string[]) => store.deleteJobs({ ids }, store.now()),
  },
} as const;

type BulkAction = keyof typeof BULK_ACTIONS;

/**
 * Jobs acted on per write: each batch is a transaction of its own, so that
 * workers finishing and claiming jobs wait for one batch at most.
 */
export const BULK_BATCH = 500;

/** Reads `action`: retry or delete. */
function bulkAction(value: unknown): BulkAction {
  if (value === "retry" || value === "delete") return value;
  throw new ApiError(400, "'action' must be retry or delete");
}

/** The filter narrowed to the states `action` takes: the jobs it would act on. */
function eligible(filter: ListFilter, action: BulkAction): ListFilter {
  const takes: readonly JobState[] = BULK_ACTIONS[action].states;
  const states = (filter.states ?? [...JOB_STATES]).filter((state) => takes.includes(state));
  return { ...filter, states };
}

/**
 * `GET /api/bulk?action=&state=&queue=&q=`: how many jobs the filter
 * matches, and how many of them the action would take (the rest are in a
 * state it leaves alone), for the page to ask before it acts.
 */
async function countBulk({ store, url }: ApiRequest): Promise<Response> {
  const action = bulkAction(url.searchParams.get("action"));
  const filter = queryFilter(url);
  const target = eligible(filter, action);
  const [matching, acting] = await Promise.all([
    store.countMatching(filter),
    target.states?.length === 0 ? 0 : store.countMatching(target),
  ]);
  return jsonResponse(200, { action, matching, eligible: acting });
}

/**
 * `POST /api/bulk` with `{"action": "retry" | "delete", "state", "queue",
 * "q"}`: the action done to every job the filter matches now and the
 * action takes (retry: completed and dead jobs; delete: all but running
 * ones), in batches of {@linkcode BULK_BATCH}, newest first. Jobs it does
 * not take, and jobs that changed in the meantime so that it no longer
 * does (a job claimed before its batch; for retry, a job that runs after a
 * dead one), are left as they are and counted as `left`.
 */
async function doBulk(request: ApiRequest): Promise<Response> {
  const fields = checkFields(request.body, ["action", "state", "queue", "q"]);
  const action = bulkAction(fields.action);
  const filter = readFilter((name) => fields[name]);
  const { store } = request;
  const target = eligible(filter, action);
  const matching = await store.countMatching(filter);
  let done = 0;
  const tried = new Set<string>();
  if (target.states?.length !== 0) {
    const act = BULK_ACTIONS[action].act;
    let after: JobPosition | undefined;
    while (true) {
      const batch = await store.listJobs({ ...target, after, limit: BULK_BATCH });
      // A position whose jobs were all deleted may repeat a few: each is tried once.
      const ids = batch.map((job) => job.id).filter((id) => !tried.has(id));
      for (const id of ids) tried.add(id);
      if (ids.length > 0) {
        done += await actOnBatch(store, ids, act);
        if (action === "retry") await store.notifier.announce("jobs");
      }
      if (batch.length < BULK_BATCH) break;
      after = positionAfter(batch);
    }
  }
  return jsonResponse(200, { action, done, left: Math.max(0, matching - done) });
}

/**
 * Acts on a batch in one write; when the store refuses it (all ids or none),
 * on each job alone, so that one job that changed does not stop the rest.
 */
async function actOnBatch(
  store: Store,
  ids: string[],
  act: (store: Store, ids: string[]) => Promise<number>,
): Promise<number> {
  try {
    return await act(store, ids);
  } catch (error) {
    if (!(error instanceof QueueError) || error instanceof DatabaseError) throw error;
  }
  let done = 0;
  for (const id of ids) {
    try {
      done += await act(store, [id]);
    } catch (error) {
      if (!(error instanceof QueueError) || error instanceof DatabaseError) throw error;
    }
  }
  return done;
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
  { method: "GET", pattern: /^\/api\/bulk$/, handle: countBulk },
  { method: "POST", pattern: /^\/api\/bulk$/, handle: doBulk },
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
