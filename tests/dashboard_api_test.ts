/**
 * The dashboard's JSON API (lib/dashboard/api.ts): each endpoint answers in
 * the CLI's `--json` shape for the same data (lib/json_shapes.ts), both run
 * as real processes; paging by cursor; the text filter; actions seen through
 * the CLI; enqueue validation. On SQLite and PostgreSQL.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { JobJson } from "../lib/job.ts";
import {
  cli,
  cliOk,
  drain,
  enqueue,
  listJobs,
  showJob,
  startWorker,
  waitFor,
  withWorker,
} from "./helpers.ts";
import { call, post, storeTest, withDashboard } from "./dashboard_helpers.ts";
import { pgTest, withFreshSchema, withSql } from "./pg_helpers.ts";

/** A page of `GET /api/jobs`. */
interface Page {
  jobs: JobJson[];
  next_cursor: string | null;
}

const json = async (db: string, ...args: string[]) =>
  JSON.parse(await cliOk([...args, "--json"], { db }));

/**
 * Every page of `GET /api/jobs?<query>`, `limit` at a time, following the
 * cursors from `start` (the first page when null).
 */
async function allPages(
  origin: string,
  query: string,
  limit: number,
  start: string | null = null,
): Promise<JobJson[][]> {
  const pages: JobJson[][] = [];
  let cursor: string | null = start;
  do {
    const path: string = `/api/jobs?${query}&limit=${limit}${
      cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`
    }`;
    const answer = await call(origin, path);
    assert.equal(answer.status, 200, answer.text);
    const page = answer.json as Page;
    assert.ok(page.jobs.length <= limit);
    pages.push(page.jobs);
    cursor = page.next_cursor;
    assert.ok(pages.length < 1_000, "the cursor never ends");
  } while (cursor !== null);
  return pages;
}

storeTest(
  "dashboard API: status, show and list answer exactly what status/show/list --json print for the same data",
  async (db) => {
    await enqueue(db, '{"id":"ok","command":"echo fine"}');
    await enqueue(db, '{"id":"bad","command":"echo oops >&2; exit 3","max_retries":1}');
    await drain(db, "--queue", "default");
    await enqueue(db, '{"id":"later","command":"true","queue":"other","priority":5}');
    await enqueue(db, '{"id":"waits","command":"true","queue":"other","after":["later"]}');
    await enqueue(db, "echo '<script>alert(1)</script>'", "--id", "html");
    await cliOk(["pause", "other"], { db });
    await withDashboard(db, [], async (dash) => {
      const status = await call(dash.origin, "/api/status");
      assert.equal(status.status, 200);
      assert.match(status.headers.get("content-type") ?? "", /^application\/json/);
      assert.deepEqual(status.json, await json(db, "status"));
      assert.equal((status.json as { queues: unknown[] }).queues.length, 2);

      for (const id of ["ok", "bad", "later", "waits", "html"]) {
        const shown = await call(dash.origin, `/api/jobs/${id}`);
        assert.equal(shown.status, 200, id);
        assert.deepEqual(shown.json, await json(db, "show", id), id);
      }
      const bad = (await call(dash.origin, "/api/jobs/bad")).json as { history: unknown[] };
      assert.equal(bad.history.length, 2, "the dead job's two runs");

      const filters = [
        ["", []],
        ["state=dead", ["--state", "dead"]],
        ["state=blocked,pending", ["--state", "blocked,pending"]],
        ["queue=other", ["--queue", "other"]],
        ["queue=nothing", ["--queue", "nothing"]],
      ] as const;
      for (const [query, flags] of filters) {
        const page = await call(dash.origin, `/api/jobs?${query}`);
        assert.equal(page.status, 200, query);
        assert.deepEqual(
          (page.json as Page).jobs,
          await json(db, "list", "--limit", "0", ...flags),
          query,
        );
        assert.equal((page.json as Page).next_cursor, null);
      }

      const missing = await call(dash.origin, "/api/jobs/no-such-job");
      assert.equal(missing.status, 404);
      assert.deepEqual(missing.json, { error: "no job with id 'no-such-job'" });
      for (const path of ["/api/nothing", "/api/jobs/ok/history", "/nothing"]) {
        const answer = await call(dash.origin, path);
        assert.equal(answer.status, 404, path);
        assert.equal(typeof (answer.json as { error: unknown }).error, "string");
      }
      for (
        const query of ["state=bogus", "queue=bad%20name", "limit=0", "limit=1001", "cursor=x"]
      ) {
        const answer = await call(dash.origin, `/api/jobs?${query}`);
        assert.equal(answer.status, 400, query);
        assert.match(answer.text, /^\{"error":"[^\n]+"\}\n$/, query);
      }
      assert.equal((await call(dash.origin, "/metrics")).status, 200);
    });
  },
);

storeTest(
  "dashboard API: paging by cursor gives every job exactly once, newest first, also while jobs are added and the cursor's job is deleted",
  async (db) => {
    const specs = Array.from({ length: 23 }, (_, i) => ({
      id: `job-${String(i).padStart(2, "0")}`,
      command: i % 3 === 0 ? `echo needle ${i}` : `echo hay ${i}`,
      queue: i % 2 === 0 ? "even" : "odd",
    }));
    await cliOk(["enqueue", JSON.stringify(specs)], { db });
    const everyJob = await listJobs(db);
    await withDashboard(db, [], async (dash) => {
      for (const limit of [1, 4, 23, 50]) {
        const pages = await allPages(dash.origin, "", limit);
        assert.deepEqual(pages.flat(), everyJob, `limit ${limit}`);
        assert.equal(pages.length, Math.max(1, Math.ceil(23 / limit)), `pages at limit ${limit}`);
      }
      const odd = await allPages(dash.origin, "queue=odd", 3);
      assert.deepEqual(odd.flat(), everyJob.filter((job) => job.queue === "odd"));

      // Jobs added at the top, and the job a cursor points at deleted, while paging.
      const first = (await call(dash.origin, "/api/jobs?limit=5")).json as Page;
      await enqueue(db, '{"id":"newer","command":"true"}');
      await cliOk(["delete", first.jobs[4].id, "--yes"], { db });
      const rest = await allPages(dash.origin, "", 4, first.next_cursor);
      assert.deepEqual(
        [...first.jobs, ...rest.flat()].map((job) => job.id),
        everyJob.map((job) => job.id),
      );
    });
  },
);

storeTest(
  "dashboard API: q matches text in the id or the command (a substring), with the other filters and pages",
  async (db) => {
    const specs = [
      { id: "build-1", command: "make all" },
      { id: "deploy-1", command: "./deploy --env build" },
      { id: "test-1", command: "deno test" },
      { id: "BUILD-2", command: "make BUILD", queue: "other" },
    ];
    await cliOk(["enqueue", JSON.stringify(specs)], { db });
    await withDashboard(db, [], async (dash) => {
      const ids = async (query: string) =>
        ((await call(dash.origin, `/api/jobs?${query}`)).json as Page).jobs.map((job) => job.id);
      assert.deepEqual(await ids("q=build"), ["deploy-1", "build-1"]);
      assert.deepEqual(await ids("q=BUILD"), ["BUILD-2"]);
      assert.deepEqual(await ids("q=make"), ["BUILD-2", "build-1"]);
      assert.deepEqual(await ids("q=make&queue=default"), ["build-1"]);
      assert.deepEqual(await ids("q=-1&state=pending"), ["test-1", "deploy-1", "build-1"]);
      assert.deepEqual(await ids("q=-1&state=dead"), []);
      assert.deepEqual(await ids("q=nothing-like-this"), []);
      assert.deepEqual(await ids(`q=${encodeURIComponent("./deploy --env")}`), ["deploy-1"]);
      const pages = await allPages(dash.origin, "q=-", 1);
      assert.deepEqual(pages.flat().map((job) => job.id), [
        "BUILD-2",
        "test-1",
        "deploy-1",
        "build-1",
      ]);
      // Rare matches far below the newest jobs: found past the first window read.
      const hay = Array.from({ length: 700 }, (_, i) => ({ id: `hay-${i}`, command: "true" }));
      await cliOk(["enqueue", JSON.stringify(hay)], { db });
      const found = await allPages(dash.origin, "q=deploy", 1);
      assert.deepEqual(found.flat().map((job) => job.id), ["deploy-1"]);
      const last = await allPages(dash.origin, "q=hay-", 300);
      assert.deepEqual(last.map((page) => page.length), [300, 300, 100]);
      assert.deepEqual(last.flat().map((job) => job.id), hay.map((job) => job.id).reverse());
    });
  },
);

storeTest(
  "dashboard API: retry, delete, pause and resume change what show/status --json report; refusals are 404 and 409",
  async (db) => {
    await enqueue(db, '{"id":"dead1","command":"exit 4","max_retries":0}');
    await enqueue(db, '{"id":"done1","command":"true"}');
    await drain(db);
    await enqueue(db, '{"id":"waiting","command":"true","queue":"q2"}');
    await withDashboard(db, [], async (dash) => {
      const retried = await post(dash.origin, "/api/jobs/dead1/retry");
      assert.equal(retried.status, 200, retried.text);
      const shown = await showJob(db, "dead1");
      assert.equal(shown.state, "pending");
      assert.equal(shown.attempts, 0);
      assert.deepEqual(retried.json, await json(db, "show", "dead1"));

      const refusals: [string, number][] = [
        ["/api/jobs/waiting/retry", 409],
        ["/api/jobs/waiting/kill", 409],
        ["/api/jobs/missing/retry", 404],
        ["/api/jobs/missing/kill", 404],
        ["/api/jobs/missing/delete", 404],
        ["/api/queues/bad%20name/pause", 400],
      ];
      for (const [path, code] of refusals) {
        const answer = await post(dash.origin, path);
        assert.equal(answer.status, code, `${path}: ${answer.text}`);
        assert.match(answer.text, /^\{"error":"[^\n]+"\}\n$/);
      }
      const extra = await post(dash.origin, "/api/jobs/done1/delete", { force: true });
      assert.equal(extra.status, 400);
      assert.equal(
        (await post(dash.origin, "/api/jobs/done1/kill", { no_retry: "yes" })).status,
        400,
      );
      assert.equal((await call(dash.origin, "/api/jobs/done1/delete")).status, 405);

      const deleted = await post(dash.origin, "/api/jobs/done1/delete");
      assert.equal(deleted.status, 200, deleted.text);
      assert.deepEqual(deleted.json, { deleted: 1 });
      assert.equal((await cli(["show", "done1"], { db })).code, 1);

      const paused = await post(dash.origin, "/api/queues/q2/pause");
      assert.equal(paused.status, 200, paused.text);
      const statusPaused = await json(db, "status");
      const q2 = statusPaused.queues.find((queue: { name: string }) => queue.name === "q2");
      assert.equal(q2.paused, true);
      assert.deepEqual(paused.json, { ...q2, changed: true });
      const again = await post(dash.origin, "/api/queues/q2/pause");
      assert.deepEqual(again.json, { ...q2, changed: false });

      const resumed = await post(dash.origin, "/api/queues/q2/resume");
      assert.equal(resumed.status, 200);
      const q2After = (await json(db, "status")).queues.find((q: { name: string }) =>
        q.name === "q2"
      );
      assert.equal(q2After.paused, false);
      assert.deepEqual(resumed.json, { ...q2After, changed: true });
    });
  },
);

storeTest(
  "dashboard API: bulk retry and delete act on exactly the jobs the filter matches, in the states each takes, counted first",
  async (db) => {
    const jobs = [
      { id: "d1", command: "echo tagX; exit 1", queue: "a", max_retries: 0 },
      { id: "d2", command: "exit 1", queue: "a", max_retries: 0 },
      { id: "c1", command: "echo tagX", queue: "a" },
      { id: "e1", command: "echo tagX; exit 1", queue: "b", max_retries: 0 },
    ];
    await cliOk(["enqueue", JSON.stringify(jobs)], { db });
    await drain(db, "--queue", "a,b");
    await enqueue(db, '{"id":"w1","command":"echo tagX","queue":"a"}');
    const states = async () =>
      Object.fromEntries((await listJobs(db)).map((job) => [job.id, job.state]));
    await withDashboard(db, [], async (dash) => {
      const counted = await call(dash.origin, "/api/bulk?action=retry&queue=a&q=tagX");
      assert.equal(counted.status, 200, counted.text);
      assert.deepEqual(counted.json, { action: "retry", matching: 3, eligible: 2 });
      const none = await call(dash.origin, "/api/bulk?action=retry&state=pending");
      assert.deepEqual(none.json, { action: "retry", matching: 1, eligible: 0 });
      for (
        const [body, why] of [
          [{ action: "nuke" }, "action"],
          [{ action: "retry", state: "bogus" }, "state"],
          [{ action: "retry", queue: "bad name" }, "queue"],
          [{ action: "retry", q: 5 }, "q"],
          [{ action: "retry", ids: ["d1"] }, "unknown field"],
        ] as const
      ) {
        const refused = await post(dash.origin, "/api/bulk", body);
        assert.equal(refused.status, 400, `${why}: ${refused.text}`);
      }
      assert.equal((await call(dash.origin, "/api/bulk?action=nuke")).status, 400);
      assert.deepEqual(await states(), {
        w1: "pending",
        e1: "dead",
        c1: "completed",
        d2: "dead",
        d1: "dead",
      });

      const retried = await post(dash.origin, "/api/bulk", {
        action: "retry",
        queue: "a",
        q: "tagX",
      });
      assert.equal(retried.status, 200, retried.text);
      assert.deepEqual(retried.json, { action: "retry", done: 2, left: 1 });
      assert.deepEqual(await states(), {
        w1: "pending",
        e1: "dead",
        c1: "pending",
        d2: "dead",
        d1: "pending",
      });
      assert.equal((await showJob(db, "w1")).attempts, 0, "a pending job is left as it was");

      const deleted = await post(dash.origin, "/api/bulk", { action: "delete", state: "dead" });
      assert.deepEqual(deleted.json, { action: "delete", done: 2, left: 0 });
      assert.deepEqual(await states(), { w1: "pending", c1: "pending", d1: "pending" });

      // More than a batch: every matching job, none other.
      const many = Array.from({ length: 1_100 }, (_, i) => ({ id: `m${i}`, command: "echo many" }));
      await cliOk(["enqueue", JSON.stringify(many)], { db });
      const manyCount = await call(dash.origin, "/api/bulk?action=delete&q=many");
      assert.deepEqual(manyCount.json, { action: "delete", matching: 1_100, eligible: 1_100 });
      const all = await post(dash.origin, "/api/bulk", { action: "delete", q: "many" });
      assert.deepEqual(all.json, { action: "delete", done: 1_100, left: 0 });
      assert.deepEqual(await states(), { w1: "pending", c1: "pending", d1: "pending" });
    });
  },
);

storeTest(
  "dashboard API: a bulk retry while workers run the retried jobs retries each matching job exactly once",
  async (db) => {
    // More than one batch (BULK_BATCH), each job dead again soon after its retry.
    const count = 520;
    const jobs = Array.from({ length: count }, (_, i) => ({
      id: `r${i}`,
      command: "exit 1",
      queue: "bulk",
      max_retries: 0,
    }));
    await cliOk(["enqueue", JSON.stringify(jobs)], { db });
    await drain(db, "--queue", "bulk");
    const failedRuns = async (origin: string) => {
      const metrics = (await call(origin, "/metrics")).text;
      const line = /^queuectl_runs_finished_total\{queue="bulk",outcome="failed"\} (\d+)$/m
        .exec(metrics);
      return Number(line?.[1]);
    };
    await withDashboard(db, [], async (dash) => {
      assert.equal(await failedRuns(dash.origin), count);
      await withWorker(db, ["--count", "2", "--queue", "bulk"], async () => {
        const retried = await post(dash.origin, "/api/bulk", { action: "retry", state: "dead" });
        assert.deepEqual(retried.json, { action: "retry", done: count, left: 0 });
        await waitFor("the retried jobs to run", async () => {
          const { jobs } = JSON.parse(await cliOk(["status", "--json"], { db }));
          return jobs.dead === count && jobs.pending === 0 && jobs.processing === 0;
        }, { timeoutMs: 60_000 });
      });
      assert.equal(await failedRuns(dash.origin), 2 * count, "each job ran twice, no more");
    });
  },
);

storeTest(
  "dashboard API: kill stops a running job (202), as show --json then reports",
  async (db, dir) => {
    await enqueue(db, '{"id":"long","command":"sleep 60","max_retries":0}');
    const worker = startWorker(db, [], { cwd: dir });
    try {
      await waitFor(
        "the job to run",
        async () => (await showJob(db, "long")).state === "processing",
      );
      await withDashboard(db, [], async (dash) => {
        const killed = await post(dash.origin, "/api/jobs/long/kill", { no_retry: true });
        assert.equal(killed.status, 202, killed.text);
        assert.equal((killed.json as { mode: string }).mode, "dead");
        const job = await waitFor("the kill to end the run", async () => {
          const job = await showJob(db, "long");
          return job.state === "processing" ? undefined : job;
        }, { timeoutMs: 30_000 });
        assert.equal(job.state, "dead");
      });
    } finally {
      worker.signal("SIGTERM");
      await worker.exit();
    }
  },
);

storeTest(
  "dashboard API: POST /api/jobs enqueues as enqueue does; invalid specs are 400 and store nothing",
  async (db, dir) => {
    await withDashboard(db, [], async (dash) => {
      const invalid: unknown[] = [
        {},
        { command: "" },
        { command: "true", bogus: 1 },
        { command: "true", id: "bad id" },
        { command: "true", queue: "no/slash" },
        { command: "true", delay: "soon" },
        { command: "true", cwd: `${dir}/missing` },
        { command: 5 },
        [],
        [{ id: "fine", command: "true" }, { command: "" }],
        [{ id: "twice", command: "true" }, { id: "twice", command: "true" }],
        "echo plain string",
        42,
        null,
      ];
      for (const body of invalid) {
        const answer = await post(dash.origin, "/api/jobs", body);
        assert.equal(answer.status, 400, `${JSON.stringify(body)}: ${answer.text}`);
        assert.match(answer.text, /^\{"error":"[^\n]+"\}\n$/);
      }
      const notJson = await call(dash.origin, "/api/jobs", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"command": "true"',
      });
      assert.equal(notJson.status, 400);
      assert.deepEqual(await listJobs(db), [], "a refused enqueue stored a job");

      const created = await post(dash.origin, "/api/jobs", {
        id: "api1",
        command: "echo from the api",
        priority: 3,
        max_retries: 2,
        queue: "web",
        timeout: "90s",
        cwd: dir,
      });
      assert.equal(created.status, 201, created.text);
      assert.deepEqual(created.json, { ids: ["api1"] });
      const two = await post(dash.origin, "/api/jobs", [{ command: "true" }, "echo second"]);
      assert.equal(two.status, 201);
      assert.equal((two.json as { ids: string[] }).ids.length, 2);
      const duplicate = await post(dash.origin, "/api/jobs", [{ id: "new1", command: "true" }, {
        id: "api1",
        command: "true",
      }]);
      assert.equal(duplicate.status, 409, duplicate.text);
      assert.match((duplicate.json as { error: string }).error, /item 2: .*'api1' already exists/);
      assert.equal((await cli(["show", "new1"], { db })).code, 1, "half an array was stored");

      // The same spec through the CLI gives the same job, apart from its id and times.
      await cliOk([
        "enqueue",
        '{"id":"cli1","command":"echo from the api","priority":3,"max_retries":2,"queue":"web","timeout":"90s"}',
      ], { db, cwd: dir });
      const strip = ({ id: _, run_at: _r, created_at: _c, updated_at: _u, ...rest }: JobJson) =>
        rest;
      assert.deepEqual(strip(await showJob(db, "api1")), strip(await showJob(db, "cli1")));
      assert.equal((await json(db, "status")).jobs.pending, 4);
    });
  },
);

storeTest(
  "dashboard API: a command holding <script> comes back as JSON data, unchanged, never as markup",
  async (db) => {
    const command =
      `echo '<script>alert("x")</script>' && echo "</script><img src=x onerror=alert(1)>"`;
    await enqueue(db, JSON.stringify({ id: "html-cli", command }));
    await withDashboard(db, [], async (dash) => {
      const created = await post(dash.origin, "/api/jobs", { id: "html-api", command });
      assert.equal(created.status, 201, created.text);
      for (const id of ["html-cli", "html-api"]) {
        const shown = await call(dash.origin, `/api/jobs/${id}`);
        assert.equal((shown.json as JobJson).command, command);
        assert.match(shown.headers.get("content-type") ?? "", /^application\/json/);
        assert.equal(shown.headers.get("x-content-type-options"), "nosniff");
        assert.match(shown.headers.get("content-security-policy") ?? "", /default-src 'none'/);
        assert.equal((await showJob(db, id)).command, command);
      }
      const listed = (await call(dash.origin, "/api/jobs?q=%3Cscript%3E")).json as Page;
      assert.deepEqual(listed.jobs.map((job) => job.command), [command, command]);
    });
  },
);

pgTest(
  "dashboard API: a failing database is a 500 with one line of JSON for reads and actions, never a stack, and the server goes on (PostgreSQL: every table dropped)",
  async () => {
    await withFreshSchema(async (fresh) => {
      await enqueue(fresh.url, "true");
      await withDashboard(fresh.url, [], async (dash) => {
        assert.equal((await call(dash.origin, "/api/status")).status, 200);
        await withSql(fresh.url, async (sql) => {
          const tables =
            await sql`SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`;
          await sql`DROP TABLE ${sql(tables.map((row) => row.tablename as string))} CASCADE`;
        });
        for (const path of ["/api/status", "/api/jobs", "/api/jobs/x"]) {
          const answer = await call(dash.origin, path);
          assert.equal(answer.status, 500, `${path}: ${answer.text}`);
          assert.match(answer.text, /^\{"error":"[^\n]+"\}\n$/, path);
          assert.doesNotMatch(answer.text, /\.(ts|js):\d+|Stack backtrace/, path);
        }
        // An action's database failure is the database's (500), not a refusal of the job's state.
        const actions: [string, unknown][] = [
          ["/api/jobs/x/retry", {}],
          ["/api/jobs/x/delete", {}],
          ["/api/queues/q/pause", {}],
          ["/api/dlq/retry", { all: true }],
          ["/api/jobs", { command: "true" }],
        ];
        for (const [path, body] of actions) {
          const answer = await post(dash.origin, path, body);
          assert.equal(answer.status, 500, `${path}: ${answer.text}`);
          assert.match(answer.text, /^\{"error":"[^\n]+"\}\n$/, path);
        }
        assert.equal((await call(dash.origin, "/")).status, 200, "the server stopped serving");
        assert.match(dash.process.stderr(), /^queuectl dashboard: GET \/api\/status: [^\n]+\n/);
        assert.doesNotMatch(dash.process.stderr(), /^ {4}at |Stack backtrace/m);
      });
    });
  },
);

storeTest(
  "dashboard API: /api/jobs/<id>/output answers the latest run's output as logs prints it, as text",
  async (db) => {
    await enqueue(
      db,
      '{"id":"twice","command":"echo out-$RANDOM; echo err >&2; exit 3","max_retries":1}',
    );
    await enqueue(db, '{"id":"waiting","command":"true","queue":"later"}');
    await drain(db, "--queue", "default");
    const logs = await cli(["logs", "twice"], { db });
    await withDashboard(db, [], async (dash) => {
      const answer = await call(dash.origin, "/api/jobs/twice/output");
      assert.equal(answer.status, 200, answer.text);
      assert.deepEqual(answer.json, {
        id: "twice",
        attempt: 2,
        running: false,
        stdout: logs.stdout,
        stderr: logs.stderr,
        stdout_dropped: 0,
        stderr_dropped: 0,
      });
      const none = await call(dash.origin, "/api/jobs/waiting/output");
      assert.equal((none.json as { attempt: number | null }).attempt, null, none.text);
      assert.equal((await call(dash.origin, "/api/jobs/nope/output")).status, 404);
    });
  },
);

storeTest(
  "dashboard pages: each page is the HTML shell under a script-src 'self' policy, with its script and style beside it",
  async (db) => {
    await withDashboard(db, [], async (dash) => {
      for (const path of ["/", "/jobs", "/dlq", "/jobs/any-id"]) {
        const page = await call(dash.origin, path);
        assert.equal(page.status, 200, path);
        assert.match(page.headers.get("content-type") ?? "", /^text\/html/, path);
        const policy = page.headers.get("content-security-policy") ?? "";
        for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'"]) {
          assert.ok(policy.includes(`${directive};`), `${path}: ${directive} in ${policy}`);
        }
        assert.match(policy, /connect-src 'self';/);
        assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval/);
        assert.match(page.text, /<script src="\/assets\/dashboard\.js" defer><\/script>/);
        assert.doesNotMatch(page.text, /<script>|style=/, `${path}: no inline script or style`);
      }
      const script = await call(dash.origin, "/assets/dashboard.js");
      assert.match(script.headers.get("content-type") ?? "", /^text\/javascript/);
      assert.match(script.text, /new EventSource\("\/api\/events"\)/);
      assert.doesNotMatch(script.text, /innerHTML|insertAdjacentHTML|eval\(|new Function/);
      const style = await call(dash.origin, "/assets/dashboard.css");
      assert.match(style.headers.get("content-type") ?? "", /^text\/css/);
      assert.match(style.text, /prefers-color-scheme: dark/);
      assert.equal((await post(dash.origin, "/jobs")).status, 405);
      assert.doesNotMatch((await call(dash.origin, "/")).text, /data-read-only/);
      // The API keeps its own, stricter policy.
      const api = await call(dash.origin, "/api/status");
      assert.equal(
        api.headers.get("content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'",
      );
    });
    await withDashboard(db, ["--read-only"], async (dash) => {
      // The script then offers no action (tests/dashboard_browser_test.ts).
      assert.match((await call(dash.origin, "/dlq")).text, /<body data-read-only>/);
    });
  },
);

storeTest(
  "dashboard API: POST /api/dlq/retry revives the dead jobs named, or all of them, as dlq retry does",
  async (db) => {
    for (const id of ["d1", "d2", "d3"]) {
      await enqueue(db, JSON.stringify({ id, command: "exit 1", max_retries: 0 }));
    }
    await drain(db);
    await enqueue(db, '{"id":"alive","command":"true","queue":"held"}');
    await withDashboard(db, [], async (dash) => {
      const one = await post(dash.origin, "/api/dlq/retry", { ids: ["d1"] });
      assert.equal(one.status, 200, one.text);
      assert.deepEqual(one.json, { retried: ["d1"] });
      assert.equal((await showJob(db, "d1")).state, "pending");

      const mixed = await post(dash.origin, "/api/dlq/retry", { ids: ["d2", "alive"] });
      assert.equal(mixed.status, 409, mixed.text);
      assert.equal((await showJob(db, "d2")).state, "dead", "nothing changes when one is not dead");

      for (
        const body of [{}, { ids: [] }, { ids: "d2" }, { all: false }, { ids: ["d2"], all: true }]
      ) {
        const refused = await post(dash.origin, "/api/dlq/retry", body);
        assert.equal(refused.status, 400, JSON.stringify(body));
        assert.match(refused.text, /^\{"error":"[^\n]+"\}\n$/);
      }
      const all = await post(dash.origin, "/api/dlq/retry", { all: true });
      assert.deepEqual((all.json as { retried: string[] }).retried.sort(), ["d2", "d3"]);
      assert.equal((await json(db, "status")).jobs.dead, 0);
    });
  },
);

storeTest(
  "dashboard API: /api/runs counts the runs of each of the last N minutes, every minute present",
  async (db) => {
    await enqueue(db, '{"id":"fine","command":"true"}');
    await enqueue(db, '{"id":"flaky","command":"exit 1","max_retries":1}');
    await drain(db);
    await withDashboard(db, [], async (dash) => {
      type Minutes = { minutes: { minute: string; succeeded: number; failed: number }[] };
      const hour = (await call(dash.origin, "/api/runs")).json as Minutes;
      assert.equal(hour.minutes.length, 60);
      const starts = hour.minutes.map((m) => Date.parse(m.minute));
      assert.ok(
        starts.every((t, i) => t % 60_000 === 0 && (i === 0 || t - starts[i - 1] === 60_000)),
      );
      assert.ok(Date.now() - starts[59] < 120_000, "the last minute is the current one");
      const sum = (key: "succeeded" | "failed") => hour.minutes.reduce((n, m) => n + m[key], 0);
      assert.deepEqual([sum("succeeded"), sum("failed")], [1, 2], "fine once, flaky's two runs");
      const two = await call(dash.origin, "/api/runs?minutes=2");
      assert.equal((two.json as Minutes).minutes.length, 2);
      for (const bad of ["0", "1441", "x", "-1"]) {
        const refused = await call(dash.origin, `/api/runs?minutes=${bad}`);
        assert.equal(refused.status, 400, bad);
      }
    });
  },
);
