/**
 * `GET /metrics`: the queue's figures in Prometheus's text exposition format
 * (version 0.0.4). Every figure is read from the database at the scrape, so
 * any number of dashboards on any hosts report the same values, and none
 * is kept in this process's memory. No job id is ever a label: labels are
 * queues, states, outcomes and hosts, a number of series that stays small
 * however many jobs there are.
 *
 * The counters come from the store's tally of finished runs
 * ({@linkcode Store.runTotals}), kept in the transaction that records each
 * run and never lowered by retention, `purge` or `delete`: they only grow,
 * as Prometheus expects of a counter.
 *
 * @module
 */

import { listLiveWorkers } from "../live_workers.ts";
import { JOB_STATES } from "../states.ts";
import { RUN_DURATION_BOUNDS_MS } from "../store/rows.ts";
import type { QueueRunTotals, Store } from "../store/store.ts";

/** The content type of the text format, for the response's header. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The run duration histogram's upper bounds, seconds: the buckets the store tallies. */
export const DURATION_BUCKETS_S: readonly number[] = RUN_DURATION_BOUNDS_MS.map((ms) => ms / 1000);

/** A label value as the text format spells it inside quotes. */
function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** `{a="x",b="y"}`, or nothing without labels. */
function labelSet(labels: Record<string, string>): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`;
}

/** A sample value: the text format's spellings of the special floats, else JavaScript's. */
function sampleValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Builds the exposition text one metric family at a time. */
class Exposition {
  readonly #lines: string[] = [];

  /** Starts a family: its HELP and TYPE lines. */
  family(name: string, type: "gauge" | "counter" | "histogram", help: string): void {
    this.#lines.push(
      `# HELP ${name} ${help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")}`,
      `# TYPE ${name} ${type}`,
    );
  }

  sample(name: string, labels: Record<string, string>, value: number): void {
    this.#lines.push(`${name}${labelSet(labels)} ${sampleValue(value)}`);
  }

  text(): string {
    return this.#lines.join("\n") + "\n";
  }
}

/** The run duration histogram of each queue: buckets, sum and count. */
function durationHistogram(out: Exposition, runs: readonly QueueRunTotals[]): void {
  const name = "queuectl_run_duration_seconds";
  out.family(
    name,
    "histogram",
    "How long finished runs took, from start to end, by queue.",
  );
  for (const totals of runs) {
    DURATION_BUCKETS_S.forEach((bound, i) =>
      out.sample(
        `${name}_bucket`,
        { queue: totals.queue, le: String(bound) },
        totals.atMostMs[i],
      )
    );
    out.sample(`${name}_bucket`, { queue: totals.queue, le: "+Inf" }, totals.timed);
    out.sample(`${name}_sum`, { queue: totals.queue }, totals.durationSumMs / 1000);
    out.sample(`${name}_count`, { queue: totals.queue }, totals.timed);
  }
}

/**
 * The queue's metrics in Prometheus's text format, read from the database
 * now. See README, "Metrics", for each metric's meaning.
 */
export async function metricsText(store: Store): Promise<string> {
  const [queues, runs, oldestRunAt, workers] = await Promise.all([
    store.listQueues(),
    store.runTotals(),
    store.oldestWaitingRunAt(),
    listLiveWorkers(store, store.now()),
  ]);
  const now = store.now();
  const out = new Exposition();

  out.family("queuectl_jobs", "gauge", "Jobs in each state, by queue.");
  for (const queue of queues) {
    for (const state of JOB_STATES) {
      out.sample("queuectl_jobs", { queue: queue.name, state }, queue.counts[state]);
    }
  }

  out.family("queuectl_queue_paused", "gauge", "1 while the queue is paused, else 0.");
  for (const queue of queues) {
    out.sample("queuectl_queue_paused", { queue: queue.name }, queue.pausedAt === null ? 0 : 1);
  }

  out.family(
    "queuectl_oldest_waiting_job_age_seconds",
    "gauge",
    "How long the job that has waited longest since it became due has waited; 0 when none is due.",
  );
  out.sample(
    "queuectl_oldest_waiting_job_age_seconds",
    {},
    oldestRunAt === undefined ? 0 : Math.max(0, now - oldestRunAt) / 1000,
  );

  out.family(
    "queuectl_runs_finished_total",
    "counter",
    "Finished runs by queue and outcome: succeeded, or failed (any error: exit code, " +
      "signal, kill, timeout).",
  );
  for (const totals of runs) {
    out.sample(
      "queuectl_runs_finished_total",
      { queue: totals.queue, outcome: "succeeded" },
      totals.succeeded,
    );
    out.sample(
      "queuectl_runs_finished_total",
      { queue: totals.queue, outcome: "failed" },
      totals.failed,
    );
  }

  out.family(
    "queuectl_attempts_total",
    "counter",
    "Finished runs by queue and attempt: a job's first run, or a retry (a second or later " +
      "attempt).",
  );
  for (const totals of runs) {
    out.sample(
      "queuectl_attempts_total",
      { queue: totals.queue, attempt: "first" },
      totals.succeeded + totals.failed - totals.retries,
    );
    out.sample(
      "queuectl_attempts_total",
      { queue: totals.queue, attempt: "retry" },
      totals.retries,
    );
  }

  durationHistogram(out, runs);

  const byHost = new Map<string, { processes: number; threads: number }>();
  for (const worker of workers) {
    const host = byHost.get(worker.host) ?? { processes: 0, threads: 0 };
    host.processes++;
    host.threads += worker.threads;
    byHost.set(worker.host, host);
  }
  const hosts = [...byHost.keys()].sort();
  out.family("queuectl_workers", "gauge", "Live `worker start` processes, by host.");
  for (const host of hosts) out.sample("queuectl_workers", { host }, byHost.get(host)!.processes);
  out.family(
    "queuectl_worker_threads",
    "gauge",
    "Jobs the live worker processes can run at once (their --count), by host.",
  );
  for (const host of hosts) {
    out.sample("queuectl_worker_threads", { host }, byHost.get(host)!.threads);
  }

  return out.text();
}
