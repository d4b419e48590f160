/**
 * A worker process on PostgreSQL whose connections the server ends under
 * load (a restart, a failover, `pg_terminate_backend` by an operator) keeps
 * running: outcomes are recorded once the connection is back, no job runs
 * twice, none is lost, and the drain ends normally. Before
 * lib/store/pg_clients.ts, the client library's uncaught error ended a Web
 * Worker and with it the worker process. Real server, real worker process;
 * only this test's worker's sessions are ended (found by their client ports).
 *
 * @module
 */

import assert from "node:assert/strict";
import { cli, exitWithin, killProcess, startWorker, waitFor } from "./helpers.ts";
import { freshSchema, pgTest, withSql } from "./pg_helpers.ts";

/** The local TCP ports of the sockets process `pid` holds open (from /proc). */
async function localPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
    const target = await Deno.readLink(`/proc/${pid}/fd/${fd.name}`).catch(() => "");
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode) inodes.add(inode);
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const lines = (await Deno.readTextFile(table).catch(() => "")).split("\n").slice(1);
    for (const line of lines) {
      const fields = line.trim().split(/\s+/);
      if (fields.length > 9 && inodes.has(fields[9])) {
        ports.push(parseInt(fields[1].split(":")[1], 16));
      }
    }
  }
  return ports;
}

/** Ends every server session whose client is process `pid`; returns how many. */
async function endSessionsOf(url: string, pid: number): Promise<number> {
  const ports = await localPorts(pid);
  if (ports.length === 0) return 0;
  return await withSql(url, async (sql) => {
    const rows = await sql`SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
      WHERE client_port = ANY(${ports}) AND client_addr IS NOT NULL AND pid <> pg_backend_pid()`;
    return rows.filter((row) => row.ended).length;
  });
}

pgTest(
  "pg worker: sessions ended by the server under load; the worker goes on, every job runs once",
  async (url) => {
    const schema = await freshSchema(url);
    const jobs = 1000;
    const file = await Deno.makeTempFile({ suffix: ".txt" });
    try {
      await Deno.writeTextFile(file, "true\n".repeat(jobs));
      const enqueued = await cli(["enqueue", "--file", file], { db: schema.url });
      assert.equal(enqueued.code, 0, enqueued.stderr);
      const worker = startWorker(schema.url, ["--count", "4", "--drain"]);
      try {
        const completed = () =>
          withSql(
            schema.url,
            async (sql) =>
              (await sql`SELECT count(*)::integer AS n FROM jobs WHERE state = 'completed'`)[0]
                .n as number,
          );
        await waitFor("the first 20 jobs to complete", async () => await completed() >= 20, {
          timeoutMs: 30_000,
        });
        let ended = 0;
        for (let round = 0; round < 12; round++) {
          ended += await endSessionsOf(url, worker.pid);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        assert.ok(ended >= 6, `sessions of the worker were ended (${ended})`);
        const code = await exitWithin(worker, 90_000);
        assert.equal(code, 0, worker.stderr());
        assert.doesNotMatch(worker.stderr(), /crashed|Uncaught/);
      } finally {
        killProcess(worker);
      }
      const [counts] = await withSql(
        schema.url,
        (sql) =>
          sql`SELECT (SELECT count(*)::integer FROM jobs WHERE state = 'completed') AS completed,
        (SELECT count(*)::integer FROM job_attempts) AS runs,
        (SELECT count(DISTINCT job_id)::integer FROM job_attempts) AS jobs_run`,
      );
      assert.deepEqual(
        { completed: counts.completed, runs: counts.runs, jobsRun: counts.jobs_run },
        { completed: jobs, runs: jobs, jobsRun: jobs },
        "every job completed, after one run",
      );
    } finally {
      await Deno.remove(file);
      await schema.drop();
    }
  },
);
