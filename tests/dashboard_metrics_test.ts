/**
 * The dashboard's `/metrics` text (lib/dashboard/metrics.ts), on SQLite and
 * on PostgreSQL, after real runs by `worker start --drain`: it passes
 * `promtool check metrics` (Debian's prometheus package; skipped with one
 * line where it is missing), and its values are what `status --json` and
 * `stats --json` report for the same database.
 */

import assert from "node:assert/strict";
import { DURATION_BUCKETS_S, metricsText } from "../lib/dashboard/metrics.ts";
import { onBothStores } from "./both_stores.ts";
import {
  cliOk,
  drain,
  enqueue,
  exitWithin,
  killProcess,
  openQueueStore,
  startWorker,
  waitFor,
} from "./helpers.ts";

/** Whether `promtool` runs here (`.ci/run` installs Debian's prometheus, which ships it). */
const HAS_PROMTOOL = (() => {
  try {
    return new Deno.Command("promtool", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();
if (!HAS_PROMTOOL) {
  console.error(
    "skipping promtool's check of /metrics: promtool is not installed (apt-get install prometheus)",
  );
}

/** Samples by their series (`name{labels}` as printed), and every family's TYPE. */
interface Exposition {
  samples: Map<string, number>;
  types: Map<string, string>;
}

function parseExposition(text: string): Exposition {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.trimEnd().split("\n")) {
    const type = line.match(/^# TYPE (\S+) (\S+)$/);
    if (type) types.set(type[1], type[2]);
    if (line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return { samples, types };
}

/** Runs `promtool check metrics` on `text`; returns what it said and its exit code. */
async function promtoolCheck(text: string): Promise<{ code: number; said: string }> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    said: decoder.decode(output.stdout) + decoder.decode(output.stderr),
  };
}

async function readMetrics(db: string): Promise<string> {
  const store = await openQueueStore(db);
  try {
    return await metricsText(store);
  } finally {
    await store.close();
  }
}

interface StatusJson {
  jobs: Record<string, number>;
  queues: { name: string; paused: boolean; counts: Record<string, number> }[];
  workers: { host: string; threads: number }[];
}

onBothStores(
  "/metrics passes promtool and agrees with status --json and stats --json after real runs",
  async ({ db }) => {
    await cliOk(["config", "set", "backoff-base", "1"], { db });
    await enqueue(db, "true");
    await enqueue(db, "sleep 0.3", "--queue", "slow");
    // Fails twice: its second run is a retry, then it is dead.
    await enqueue(db, "exit 3", "--max-retries", "1", "--queue", "bad");
    await enqueue(db, "true", "--queue", "held");
    await cliOk(["pause", "held"], { db });
    await drain(db);
    await enqueue(db, "true", "--delay", "1h");

    const text = await readMetrics(db);
    if (HAS_PROMTOOL) {
      const checked = await promtoolCheck(text);
      assert.equal(checked.code, 0, checked.said);
      assert.equal(checked.said.trim(), "", "promtool's linter found nothing");
    }
    const { samples, types } = parseExposition(text);
    for (const [name, type] of types) {
      assert.ok(name.startsWith("queuectl_"), name);
      if (type === "counter") assert.ok(name.endsWith("_total"), `counter ${name}`);
    }
    assert.equal(types.get("queuectl_run_duration_seconds"), "histogram");
    assert.doesNotMatch(text, /job_id|\bid="/, "no job ids as labels");

    const status: StatusJson = JSON.parse(await cliOk(["status", "--json"], { db }));
    const names = status.queues.map((q) => q.name);
    assert.deepEqual(names.toSorted(), ["bad", "default", "held", "slow"]);
    for (const queue of status.queues) {
      for (const [state, n] of Object.entries(queue.counts)) {
        assert.equal(samples.get(`queuectl_jobs{queue="${queue.name}",state="${state}"}`), n);
      }
      assert.equal(
        samples.get(`queuectl_queue_paused{queue="${queue.name}"}`),
        queue.paused ? 1 : 0,
      );
    }
    assert.equal(samples.get('queuectl_queue_paused{queue="held"}'), 1);

    const stats = JSON.parse(await cliOk(["stats", "--json", "--since", "1d"], { db }));
    /** The sum of the samples whose series matches. */
    const sum = (series: RegExp) =>
      [...samples].filter(([name]) => series.test(name)).reduce((n, [, v]) => n + v, 0);
    assert.deepEqual(
      {
        total: sum(/^queuectl_runs_finished_total\{/),
        succeeded: sum(/^queuectl_runs_finished_total\{.*outcome="succeeded"/),
        failed: sum(/^queuectl_runs_finished_total\{.*outcome="failed"/),
        attempts: sum(/^queuectl_attempts_total\{/),
        retries: sum(/^queuectl_attempts_total\{.*attempt="retry"/),
      },
      {
        total: stats.runs.total,
        succeeded: stats.runs.succeeded,
        failed: stats.runs.failed,
        attempts: stats.runs.total,
        retries: stats.runs.retries,
      },
    );
    assert.equal(stats.runs.total, 4);
    assert.equal(samples.get('queuectl_runs_finished_total{queue="bad",outcome="failed"}'), 2);
    assert.equal(samples.get('queuectl_attempts_total{queue="bad",attempt="retry"}'), 1);

    // The histogram: cumulative buckets, +Inf is the count, and the runs sit where their
    // durations (stats' max and mean) put them.
    assert.equal(sum(/^queuectl_run_duration_seconds_count\{/), stats.runs.total);
    const mean = sum(/^queuectl_run_duration_seconds_sum\{/) * 1000 / stats.runs.total;
    assert.ok(
      Math.abs(mean - stats.duration_ms.mean) <= 1,
      `mean ${mean} vs ${stats.duration_ms.mean}`,
    );
    for (const queue of ["default", "slow", "bad"]) {
      const counts = [...DURATION_BUCKETS_S.map(String), "+Inf"].map((le) =>
        samples.get(`queuectl_run_duration_seconds_bucket{queue="${queue}",le="${le}"}`)!
      );
      for (let i = 1; i < counts.length; i++) {
        assert.ok(counts[i - 1] <= counts[i], `${queue}: ${counts}`);
      }
      assert.equal(
        counts.at(-1),
        samples.get(`queuectl_run_duration_seconds_count{queue="${queue}"}`),
      );
    }
    assert.equal(
      samples.get('queuectl_run_duration_seconds_bucket{queue="slow",le="0.25"}'),
      0,
      "it slept 300 ms",
    );
    const maxBound = DURATION_BUCKETS_S.find((s) => s * 1000 >= stats.duration_ms.max)!;
    assert.equal(
      samples.get(`queuectl_run_duration_seconds_bucket{queue="slow",le="${maxBound}"}`),
      1,
    );

    // The oldest waiting job is the paused queue's, due since before the drain.
    const age = samples.get("queuectl_oldest_waiting_job_age_seconds")!;
    assert.ok(stats.oldest_waiting.overdue_ms > 0);
    assert.ok(
      Math.abs(age * 1000 - stats.oldest_waiting.overdue_ms) < 10_000,
      `${age} s against ${stats.oldest_waiting.overdue_ms} ms`,
    );
    assert.ok(
      ![...samples.keys()].some((s) => s.startsWith("queuectl_workers{")),
      "no live worker after the drain",
    );
  },
);

onBothStores(
  "/metrics counters never go down when finished jobs are purged or deleted",
  async ({ db }) => {
    await enqueue(db, "true", "--id", "kept");
    await enqueue(db, "exit 1", "--id", "lost", "--max-retries", "0");
    await enqueue(db, "true", "--id", "purged", "--queue", "other");
    await drain(db);
    const counters = (text: string) =>
      new Map(
        [...parseExposition(text).samples].filter(([series]) =>
          /^queuectl_(runs_finished_total|attempts_total|run_duration_seconds_(bucket|sum|count))\{/
            .test(series)
        ),
      );
    const before = counters(await readMetrics(db));
    assert.equal(before.get('queuectl_runs_finished_total{queue="other",outcome="succeeded"}'), 1);
    await cliOk(["purge", "--state", "completed", "--older-than", "0"], { db });
    await cliOk(["delete", "lost"], { db });
    const after = await readMetrics(db);
    assert.deepEqual(counters(after), before);
    // The gauges do follow: no job is left.
    const jobs = [...parseExposition(after).samples].filter(([series]) =>
      series.startsWith("queuectl_jobs{")
    );
    assert.equal(jobs.reduce((n, [, v]) => n + v, 0), 0);
  },
);

onBothStores(
  "/metrics counts the live workers by host as status --json shows them",
  async ({ db }) => {
    await cliOk(["pause", "default"], { db });
    const worker = startWorker(db, ["--count", "3"]);
    try {
      const status: StatusJson = await waitFor("the worker to register", async () => {
        const shown: StatusJson = JSON.parse(await cliOk(["status", "--json"], { db }));
        return shown.workers.length === 1 ? shown : undefined;
      });
      const { samples } = parseExposition(await readMetrics(db));
      const host = status.workers[0].host;
      assert.equal(samples.get(`queuectl_workers{host="${host}"}`), 1);
      assert.equal(samples.get(`queuectl_worker_threads{host="${host}"}`), 3);
    } finally {
      worker.signal("SIGTERM");
      await exitWithin(worker, 20_000).catch(() => killProcess(worker));
    }
    const { samples } = parseExposition(await readMetrics(db));
    assert.ok(
      ![...samples.keys()].some((s) => s.startsWith("queuectl_workers{")),
      "none once it stopped",
    );
  },
);
