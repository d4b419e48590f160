/**
 * Black-box tests of the commands that read the queue (`list`, `show`,
 * `logs`, `status`) and of where the database lives.
 */

import assert from "node:assert/strict";
import type { JobJson } from "../lib/job.ts";
import {
  assertRefused,
  cli,
  cliOk,
  denoDir,
  enqueue,
  enqueueIn,
  jobCounts,
  listJobs,
  pathExists,
  queueExists,
  showJob,
  sqliteOnlyTest,
  waitFor,
  withQueue,
  withWorker,
} from "./helpers.ts";

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const JOB_FIELDS = [
  "id",
  "queue",
  "command",
  "state",
  "attempts",
  "max_retries",
  "priority",
  "run_at",
  "created_at",
  "updated_at",
  "started_at",
  "finished_at",
  "exit_code",
  "last_error",
  "timeout_ms",
  "cwd",
  "worker_id",
  "env",
  "unique_key",
];

/**
 * Fills a queue with a completed job `ok`, a dead job `bad` (both run by a
 * draining worker) and then a pending job `later`, in that order.
 */
async function mixedQueue(db: string): Promise<void> {
  await cliOk(["enqueue", "--file", "-"], {
    db,
    stdin: [
      JSON.stringify({ id: "ok", command: "printf 'out\\n'; printf 'err\\n' >&2" }),
      JSON.stringify({ id: "bad", command: "echo failing; exit 3", max_retries: 0 }),
    ].join("\n"),
  });
  await cliOk(["worker", "start", "--drain"], { db });
  await cliOk(["enqueue", "--id", "later", "--delay", "1h", "true"], { db });
}

/** Ids of `list --json <args>`. */
async function listIds(db: string, ...args: string[]): Promise<string[]> {
  const jobs: JobJson[] = JSON.parse(await cliOk(["list", "--json", ...args], { db }));
  return jobs.map((job) => job.id);
}

/** Mode bits of a file or folder. */
async function mode(path: string): Promise<number> {
  return (await Deno.stat(path)).mode! & 0o777;
}

/** An environment where only `overrides` say where the database is. */
async function locationEnv(overrides: Record<string, string>): Promise<Record<string, string>> {
  // An empty variable counts as unset, which keeps the caller's own settings out.
  return { QUEUECTL_DB: "", XDG_DATA_HOME: "", DENO_DIR: await denoDir(), ...overrides };
}

Deno.test("list shows jobs newest first and --state picks one state", () =>
  withQueue(async ({ db }) => {
    await mixedQueue(db);
    assert.deepEqual(await listIds(db), ["later", "bad", "ok"]);
    assert.deepEqual(await listIds(db, "--state", "pending"), ["later"]);
    assert.deepEqual(await listIds(db, "--state", "completed"), ["ok"]);
    assert.deepEqual(await listIds(db, "--state", "dead"), ["bad"]);
    assert.deepEqual(await listIds(db, "--state", "failed"), []);
    assert.deepEqual(await listIds(db, "--state", "processing"), []);

    const table = await cli(["list"], { db });
    assert.equal(table.code, 0);
    const lines = table.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 4, `a header and three rows:\n${table.stdout}`);
    assert.match(lines[0], /^ID\s+STATE\b.*COMMAND$/);
    assert.match(lines[1], /^later\s+pending\b.*true$/);
    assert.match(lines[2], /^bad\s+dead\b.*echo failing; exit 3$/);
    assert.match(lines[3], /^ok\s+completed\b/);

    const dead = await cliOk(["list", "--state", "dead"], { db });
    assert.match(dead, /^bad\s+dead\b/m);
    assert.doesNotMatch(dead, /^(ok|later)\s/m);
  }));

Deno.test("list --state takes several states, as delete and purge do", () =>
  withQueue(async ({ db }) => {
    await mixedQueue(db);
    assert.deepEqual(await listIds(db, "--state", "dead,completed"), ["bad", "ok"]);
    assert.deepEqual(await listIds(db, "--state", "pending, dead"), ["later", "bad"]);
    assert.deepEqual(await listIds(db, "--state", "failed,processing"), []);
    assert.deepEqual(await listIds(db, "--state", "dead,pending", "--limit", "1"), ["later"]);

    const table = await cli(["list", "--state", "dead,completed", "--limit", "1"], { db });
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^bad\s+dead\b/m);
    assert.doesNotMatch(table.stdout, /^(ok|later)\s/m);
    assert.match(table.stderr, /newest 1 of 2 jobs/, "the cut counts the jobs of both states");
    const none = await cli(["list", "--state", "dead,failed", "--queue", "other"], { db });
    assert.equal(none.stderr, "no dead or failed jobs in queue 'other'\n");

    for (const state of ["dead,bogus", "dead,", "Dead"]) {
      for (const command of ["list", "delete", "purge"]) {
        const olderThan = command === "list" ? [] : ["--older-than", "0"];
        const result = await cli([command, "--state", state, ...olderThan], { db });
        assertRefused(result, 2, `${command} --state ${state}`);
        assert.match(result.stderr, /--state: unknown state '(bogus|Dead|)' \(known: blocked,/);
      }
    }
    assert.deepEqual(await listIds(db), ["later", "bad", "ok"], "nothing was deleted");
  }));

Deno.test("list shows the newest 100 jobs by default and --limit changes that", () =>
  withQueue(async ({ db }) => {
    const ids = Array.from({ length: 101 }, (_, i) => `job-${String(i + 1).padStart(3, "0")}`);
    await cliOk(["enqueue", "--file", "-"], {
      db,
      stdin: ids.map((id) => JSON.stringify({ id, command: `echo ${id}` })).join("\n"),
    });
    const newestFirst = ids.toReversed();
    assert.deepEqual(await listIds(db), newestFirst.slice(0, 100));
    assert.deepEqual(await listIds(db, "--limit", "0"), newestFirst);
    assert.deepEqual(await listIds(db, "--limit", "3"), newestFirst.slice(0, 3));
    assert.deepEqual(await listIds(db, "--limit", "500", "--state", "pending"), newestFirst);

    const table = await cli(["list", "--limit", "3"], { db });
    assert.equal(table.code, 0);
    assert.equal(table.stdout.trimEnd().split("\n").length, 4, "a header and three rows");
    assert.match(table.stderr, /3 of 101/, "stderr tells that the list was cut");
  }));

Deno.test("an empty queue lists no jobs and counts zero in every state", () =>
  withQueue(async ({ db }) => {
    assert.deepEqual(JSON.parse(await cliOk(["list", "--json"], { db })), []);
    const table = await cli(["list"], { db });
    assert.equal(table.code, 0);
    assert.equal(table.stdout, "", "no table for no jobs");

    const status = JSON.parse(await cliOk(["status", "--json"], { db }));
    assert.deepEqual(status, {
      jobs: { blocked: 0, pending: 0, processing: 0, completed: 0, failed: 0, dead: 0 },
      queues: [],
      workers: [],
    });
    const text = await cliOk(["status"], { db });
    for (const state of ["pending", "processing", "completed", "failed", "dead"]) {
      assert.match(text, new RegExp(`^\\s*${state}\\s+0$`, "m"), `status shows ${state}`);
    }
  }));

Deno.test("status counts live workers in the singular for one", () =>
  withQueue(async ({ db }) => {
    await withWorker(db, ["--count", "1"], async () => {
      const text = await waitFor(
        "the worker to register",
        async () => {
          const out = await cliOk(["status"], { db });
          return out.includes("Workers: 0") ? undefined : out;
        },
      );
      assert.match(text, /^Workers: 1 process, 1 running job at most$/m);
    });
  }));

Deno.test("status counts the jobs in each state", () =>
  withQueue(async ({ db }) => {
    await mixedQueue(db);
    await cliOk(["enqueue", "--id", "later2", "--delay", "1h", "true"], { db });
    const status = JSON.parse(await cliOk(["status", "--json"], { db }));
    assert.deepEqual(status.jobs, {
      blocked: 0,
      pending: 2,
      processing: 0,
      completed: 1,
      failed: 0,
      dead: 1,
    });
    assert.deepEqual(status.workers, [], "the draining worker has exited");
    const text = await cliOk(["status"], { db });
    assert.match(text, /^\s*pending\s+2$/m);
    assert.match(text, /^\s*completed\s+1$/m);
    assert.match(text, /^\s*dead\s+1$/m);
  }));

Deno.test("show prints every field of a job with times in ISO 8601 UTC", () =>
  withQueue(async ({ db, dir }) => {
    await mixedQueue(db);
    const ok = await showJob(db, "ok");
    // Every field of the job, then what show adds: the jobs it runs after and its runs.
    assert.deepEqual(Object.keys(ok), [...JOB_FIELDS, "after", "history"]);
    assert.equal(ok.state, "completed");
    assert.equal(ok.attempts, 1);
    assert.equal(ok.exit_code, 0);
    assert.equal(ok.cwd, await Deno.realPath(Deno.cwd()), "default cwd: where enqueue ran");
    for (const field of ["run_at", "created_at", "updated_at", "started_at", "finished_at"]) {
      assert.match(String(ok[field as keyof JobJson]), ISO_UTC, `ok.${field}`);
    }
    assert.ok(ok.started_at! <= ok.finished_at!, "started before it finished");
    assert.ok(ok.created_at <= ok.started_at!, "created before it started");

    const bad = await showJob(db, "bad");
    assert.equal(bad.state, "dead");
    assert.equal(bad.attempts, 1);
    assert.equal(bad.max_retries, 0);
    assert.equal(bad.exit_code, 3);
    assert.equal(typeof bad.last_error, "string");
    assert.ok(bad.last_error!.length > 0);

    const later = await showJob(db, "later");
    assert.equal(later.state, "pending");
    assert.equal(later.started_at, null);
    assert.equal(later.finished_at, null);
    assert.equal(later.exit_code, null);

    const text = await cliOk(["show", "bad"], { db, cwd: dir });
    for (const field of JOB_FIELDS) {
      assert.match(text, new RegExp(`^${field}\\b`, "m"), `show prints ${field}`);
    }
    assert.match(text, /^state\s+dead$/m);
    assert.match(text, /^exit_code\s+3$/m);
    assert.match(text, /^command\s+echo failing; exit 3$/m);
  }));

Deno.test("logs prints a finished run's stdout and stderr on the matching streams", () =>
  withQueue(async ({ db }) => {
    await mixedQueue(db);
    const ok = await cli(["logs", "ok"], { db });
    assert.equal(ok.code, 0);
    assert.equal(ok.stdout, "out\n");
    assert.equal(ok.stderr, "err\n");

    const bad = await cli(["logs", "bad"], { db });
    assert.equal(bad.code, 0);
    assert.equal(bad.stdout, "failing\n");
    assert.equal(bad.stderr, "");

    const notRun = await cli(["logs", "later"], { db });
    assert.equal(notRun.code, 0, "a job that has not run is no error");
    assert.equal(notRun.stdout, "");
    assert.match(notRun.stderr, /^queuectl: [^\n]+\n$/, "one line on stderr says why");
  }));

Deno.test("logs --attempt N prints run N's output; an attempt it does not have is refused", () =>
  withQueue(async ({ db, dir }) => {
    await cliOk(["config", "set", "backoff-base", "1"], { db });
    // Each run counts itself in a file; the first attempt of a round fails.
    const command = "n=$(( $(cat runs 2>/dev/null || echo 0) + 1 )); echo $n > runs; " +
      'echo "run $n, attempt $QUEUECTL_ATTEMPT"; echo "err $n" >&2; [ "$QUEUECTL_ATTEMPT" -ge 2 ]';
    await enqueueIn(dir, db, command, "--id", "flaky", "--max-retries", "2");
    await cliOk(["worker", "start", "--drain"], { db, cwd: dir });

    const first = await cli(["logs", "flaky", "--attempt", "1"], { db });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, "run 1, attempt 1\n");
    assert.equal(first.stderr, "err 1\n");
    assert.equal(await cliOk(["logs", "flaky", "--attempt", "2"], { db }), "run 2, attempt 2\n");
    assert.equal(await cliOk(["logs", "flaky"], { db }), "run 2, attempt 2\n", "the latest");

    const missing = await cli(["logs", "flaky", "--attempt", "3"], { db });
    assertRefused(missing, 1, "an attempt that never ran");
    assert.equal(
      missing.stderr,
      "queuectl: job 'flaky' has no attempt 3: its finished runs are numbered 1 to 2\n",
    );

    // After a retry, numbers start again at 1: --attempt 1 is the newest run numbered 1.
    await cliOk(["retry", "flaky"], { db });
    await cliOk(["worker", "start", "--drain"], { db, cwd: dir });
    assert.equal(await cliOk(["logs", "flaky", "--attempt", "1"], { db }), "run 3, attempt 1\n");

    const fresh = await enqueue(db, "true", "--delay", "1h");
    assert.match(
      (await cli(["logs", fresh, "--attempt", "1"], { db })).stderr,
      /^queuectl: job '[^']+' has no attempt 1: no run of it has finished yet\n$/,
    );
    for (
      const [args, code, what] of [
        [["logs", "flaky", "--attempt", "0"], 2, "attempt 0"],
        [["logs", "flaky", "--attempt", "two"], 2, "a word"],
        [["logs", "flaky", "--attempt", "-1"], 2, "a negative"],
        [["logs", "flaky", "--attempt", "1", "--follow"], 2, "with --follow"],
        [["logs", "nope", "--attempt", "1"], 1, "an unknown job"],
      ] as const
    ) {
      assertRefused(await cli([...args], { db }), code, what);
    }
  }));

Deno.test("logs --attempt refuses what is not a run number with one message, before opening", () =>
  withQueue(async ({ db }) => {
    for (const typed of ["0", "two", "-1", "1.5"]) {
      const result = await cli(["logs", "x", "--attempt", typed], { db });
      assertRefused(result, 2, `--attempt ${typed}`);
      assert.equal(
        result.stderr,
        `queuectl: --attempt: '${typed}' is not a run number (runs are numbered from 1)\n`,
      );
    }
    assert.equal(await queueExists(db), false, "no database was created");
  }));

Deno.test("list --json --output gives 200 jobs' outputs in one call", () =>
  withQueue(async ({ db, dir }) => {
    const gate = `${dir}/gate`;
    const specs: Record<string, unknown>[] = [];
    for (let i = 0; i < 196; i++) {
      const id = `job-${String(i).padStart(3, "0")}`;
      const fails = i % 50 === 0;
      specs.push({
        id,
        command: `echo "out ${id}"; echo "err ${id}" >&2${fails ? "; exit 3" : ""}`,
        max_retries: 0,
      });
    }
    // Bytes that are not UTF-8 become U+FFFD; 70,000 bytes keep the last 65,536.
    specs.push({
      id: "bytes",
      command: String.raw`printf 'caf\303\251 \377\n'`,
    });
    specs.push({ id: "big", command: "yes 0123456789abcde | head -c 70000" });
    specs.push({
      id: "running",
      command: `echo started; while [ ! -e '${gate}' ]; do sleep 0.02; done`,
    });
    specs.push({ id: "later", command: "true", delay: "1h" });
    await cliOk(["enqueue", "--file", "-"], {
      db,
      stdin: specs.map((spec) => JSON.stringify(spec)).join("\n"),
    });

    await withWorker(db, ["--count", "4"], async () => {
      try {
        await waitFor("198 jobs to finish", async () => {
          const counts = await jobCounts(db);
          return counts.completed + counts.dead === 198;
        }, { timeoutMs: 120_000, intervalMs: 250 });
        await waitFor(
          "the running job's first line",
          async () => (await cliOk(["logs", "running"], { db })) === "started\n",
        );

        const all = await cli(["list", "--json", "--output", "--limit", "0"], { db });
        assert.equal(all.code, 0, all.stderr);
        const jobs: (JobJson & { output: unknown })[] = JSON.parse(all.stdout);
        assert.equal(jobs.length, 200);
        const byId = new Map(jobs.map((job) => [job.id, job.output]));
        for (let i = 0; i < 196; i++) {
          const id = `job-${String(i).padStart(3, "0")}`;
          assert.deepEqual(byId.get(id), {
            attempt: 1,
            finished: true,
            stdout: `out ${id}\n`,
            stderr: `err ${id}\n`,
            stdout_dropped: 0,
            stderr_dropped: 0,
          }, id);
        }
        assert.equal(jobs.filter((job) => job.state === "dead").length, 4);
        assert.deepEqual(byId.get("bytes"), {
          attempt: 1,
          finished: true,
          stdout: "caf\u00e9 \ufffd\n",
          stderr: "",
          stdout_dropped: 0,
          stderr_dropped: 0,
        });
        const big = byId.get("big") as { stdout: string; stdout_dropped: number };
        assert.equal(big.stdout.length, 65_536);
        assert.equal(big.stdout_dropped, 70_000 - 65_536);
        assert.ok("0123456789abcde\n".repeat(5000).endsWith(big.stdout), "the tail, unchanged");
        assert.deepEqual(byId.get("running"), {
          attempt: 1,
          finished: false,
          stdout: "started\n",
          stderr: "",
          stdout_dropped: 0,
          stderr_dropped: 0,
        });
        assert.equal(byId.get("later"), null, "a job that has not run has no output");

        // The limit bounds it: the newest three.
        const three: (JobJson & { output: unknown })[] = JSON.parse(
          await cliOk(["list", "--json", "--output", "--limit", "3"], { db }),
        );
        assert.deepEqual(three.map((job) => job.id), ["later", "running", "big"]);
        assert.equal(JSON.stringify(three[2].output), JSON.stringify(byId.get("big")));
      } finally {
        await Deno.writeTextFile(gate, "");
      }
    });
    assertRefused(await cli(["list", "--output"], { db }), 2, "--output without --json");
  }));

sqliteOnlyTest(
  "a job enqueued by one process is seen by later ones",
  () =>
    withQueue(async ({ db, dir }) => {
      await Deno.mkdir(`${dir}/a`);
      const env = await locationEnv({ QUEUECTL_DB: db });
      const id = (await cliOk(["enqueue", "echo kept"], { env, cwd: `${dir}/a` })).trim();

      const byFlag = await listJobs(db);
      assert.deepEqual(byFlag.map((job) => [job.id, job.command]), [[id, "echo kept"]]);
      // A relative --db is taken from the current directory.
      const relative = JSON.parse(
        await cliOk(["--db", "queue.db", "show", id, "--json"], { cwd: dir }),
      );
      assert.equal(relative.cwd, await Deno.realPath(`${dir}/a`));
    }),
);

Deno.test("without --db or QUEUECTL_DB the queue is a private file under XDG_DATA_HOME", () =>
  withQueue(async ({ dir }) => {
    const data = `${dir}/xdg/data`;
    const env = await locationEnv({ HOME: `${dir}/home`, XDG_DATA_HOME: data });
    const id = (await cliOk(["enqueue", "true"], { env, cwd: dir })).trim();

    const db = `${data}/queuectl/queue.db`;
    assert.equal(await mode(db), 0o600, "the database file is private");
    for (const folder of [`${dir}/xdg`, data, `${data}/queuectl`]) {
      assert.equal(await mode(folder), 0o700, `${folder} was created private`);
    }
    assert.equal(await pathExists(`${dir}/home/.local/share/queuectl`), false);
    assert.equal((await showJob(db, id)).command, "true");
  }));

Deno.test("without --db, QUEUECTL_DB or XDG_DATA_HOME the queue is under ~/.local/share", () =>
  withQueue(async ({ dir }) => {
    const home = `${dir}/home`;
    await Deno.mkdir(home);
    const env = await locationEnv({ HOME: home });
    const id = (await cliOk(["enqueue", "true"], { env, cwd: dir })).trim();

    const db = `${home}/.local/share/queuectl/queue.db`;
    assert.equal(await mode(db), 0o600, "the database file is private");
    for (
      const folder of [`${home}/.local`, `${home}/.local/share`, `${home}/.local/share/queuectl`]
    ) {
      assert.equal(await mode(folder), 0o700, `${folder} was created private`);
    }
    assert.deepEqual((await listJobs(db)).map((job) => job.id), [id]);
  }));

Deno.test("the --db flag wins over QUEUECTL_DB, which wins over XDG_DATA_HOME", () =>
  withQueue(async ({ dir }) => {
    const envDb = `${dir}/env/queue.db`;
    const flagDb = `${dir}/flag.db`;
    const env = await locationEnv({
      HOME: `${dir}/home`,
      XDG_DATA_HOME: `${dir}/xdg`,
      QUEUECTL_DB: envDb,
    });

    const fromEnv = (await cliOk(["enqueue", "echo env"], { env, cwd: dir })).trim();
    assert.equal(await pathExists(`${dir}/xdg`), false, "XDG_DATA_HOME was not used");
    assert.equal(await mode(`${dir}/env`), 0o700, "the missing folder was created private");

    const fromFlag = (await cliOk(["enqueue", "echo flag"], { env, cwd: dir, db: flagDb })).trim();
    assert.deepEqual((await listJobs(envDb)).map((job) => job.id), [fromEnv]);
    assert.deepEqual((await listJobs(flagDb)).map((job) => job.id), [fromFlag]);
    assert.equal(await mode(flagDb), 0o600);
    assert.equal(await pathExists(`${dir}/xdg`), false);
  }));
