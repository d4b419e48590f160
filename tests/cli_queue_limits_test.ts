/**
 * Queue limits through the CLI (`queue set`, `queue list`, `status`), and
 * what real workers do under them: a concurrency-1 queue served by four
 * workers in two processes never runs two jobs at once (seen from the
 * jobs' own timestamps), and a rate-limited queue spreads its starts. The
 * rules under many claimers are the store conformance tests'
 * (tests/store_conformance_limits.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { onBothStores } from "./both_stores.ts";
import {
  assertRefused,
  cli,
  cliOk,
  exitWithin,
  killProcess,
  listJobs,
  startWorker,
  type WorkerProcess,
} from "./helpers.ts";

/** Enqueues `n` jobs `<prefix>-<i>` of `queue` that run `command`. */
async function enqueueMany(db: string, queue: string, prefix: string, n: number, command: string) {
  const lines = Array.from(
    { length: n },
    (_, i) => JSON.stringify({ id: `${prefix}-${i}`, queue, command }),
  );
  await cliOk(["enqueue", "--file", "-"], { db, stdin: lines.join("\n") + "\n" });
}

/** Runs `worker start --drain` processes to the end. */
async function drainWith(db: string, processes: string[][]): Promise<void> {
  const workers: WorkerProcess[] = processes.map((args) => startWorker(db, ["--drain", ...args]));
  try {
    for (const worker of workers) {
      assert.equal(await exitWithin(worker, 30_000), 0, worker.stderr());
    }
  } finally {
    workers.forEach(killProcess);
  }
}

onBothStores(
  "queue set, queue list and status show the limits and how full they are",
  async ({ db }) => {
    assert.equal(
      await cliOk(["queue", "set", "mail", "--concurrency", "3", "--rate", "10/1m"], { db }),
      "queue 'mail': concurrency 3, rate 10/1m\n",
    );
    assert.equal(
      await cliOk(["queue", "set", "mail", "--rate", "none"], { db }),
      "queue 'mail': concurrency 3, rate none\n",
    );
    await cliOk(["queue", "set", "api", "--rate", "5/s"], { db });
    for (const bad of [["--concurrency", "0"], ["--rate", "5"], ["--rate", "x/1m"], []]) {
      assertRefused(await cli(["queue", "set", "mail", ...bad], { db }), 2, `queue set ${bad}`);
    }
    const listed = JSON.parse(await cliOk(["queue", "list", "--json"], { db }));
    assert.deepEqual(
      listed.map((q: Record<string, unknown>) => [q.name, q.concurrency, q.rate, q.paused]),
      [["api", null, { limit: 5, period_ms: 1000, starts_in_window: 0 }, false], [
        "mail",
        3,
        null,
        false,
      ]],
    );
    const status = JSON.parse(await cliOk(["status", "--json"], { db }));
    assert.deepEqual(status.queues, listed, "status --json lists the queues as queue list does");
    assert.match(
      await cliOk(["status"], { db }),
      /Limits:\n {2}api: 0\/5 per 1s\n {2}mail: 0\/3 running/,
    );
    await cliOk(["queue", "pause", "mail"], { db });
    assert.match(await cliOk(["queue", "list"], { db }), /mail +paused +0\/3 +-/);
    await cliOk(["resume", "mail"], { db });
    assert.match(await cliOk(["queue", "list"], { db }), /mail +active +0\/3/);
  },
);

onBothStores(
  "a concurrency-1 queue served by four workers never runs two jobs at once",
  async ({ db, dir }) => {
    await cliOk(["queue", "set", "serial", "--concurrency", "1"], { db });
    const log = `${dir}/runs.log`;
    const command = `echo "$QUEUECTL_JOB_ID start $(date +%s%N)" >> ${log}; sleep 0.15; ` +
      `echo "$QUEUECTL_JOB_ID end $(date +%s%N)" >> ${log}`;
    await enqueueMany(db, "serial", "s", 6, command);
    await enqueueMany(db, "free", "f", 4, "sleep 0.1");
    await drainWith(db, [["--count", "2"], ["--count", "2"]]);
    const runs = new Map<string, { start?: bigint; end?: bigint }>();
    for (const line of (await Deno.readTextFile(log)).trim().split("\n")) {
      const [id, what, ns] = line.split(" ");
      const run = runs.get(id) ?? {};
      run[what as "start" | "end"] = BigInt(ns);
      runs.set(id, run);
    }
    assert.equal(runs.size, 6);
    const spans = [...runs.values()].sort((a, b) => Number(a.start! - b.start!));
    for (let i = 1; i < spans.length; i++) {
      assert.ok(spans[i].start! >= spans[i - 1].end!, `run ${i} started before run ${i - 1} ended`);
    }
    assert.ok((await listJobs(db)).every((job) => job.state === "completed"));
  },
);

onBothStores("a rate-limited queue spreads its starts over the window", async ({ db, dir }) => {
  await cliOk(["queue", "set", "api", "--rate", "2/1s"], { db });
  await enqueueMany(db, "api", "a", 6, `date +%s%N >> ${dir}/starts.log`);
  await drainWith(db, [["--count", "3"]]);
  // The claims (started_at) obey the window exactly: any three are 1 s apart at least.
  const claims = (await listJobs(db)).map((job) => Date.parse(job.started_at!)).sort((a, b) =>
    a - b
  );
  assert.equal(claims.length, 6);
  for (let i = 2; i < claims.length; i++) {
    assert.ok(claims[i] - claims[i - 2] >= 1_000, `starts ${claims.join(", ")}`);
  }
  // And the jobs' own clocks see them spread over at least two windows.
  const starts = (await Deno.readTextFile(`${dir}/starts.log`)).trim().split("\n").map(BigInt)
    .sort((a, b) => Number(a - b));
  assert.ok(starts[5] - starts[0] >= 1_900_000_000n, `spread ${starts[5] - starts[0]} ns`);
});
