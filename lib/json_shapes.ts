/**
 * The JSON forms of `status --json`, `show --json` and `list --json`: one
 * source of truth for the CLI and the dashboard's API (lib/dashboard/api.ts),
 * which answer with the same shapes for the same data. It imports no code
 * beyond lib/job.ts: `list` and `show` load it at start-up.
 *
 * @module
 */

import {
  type AttemptRecord,
  attemptToJson,
  isoTime,
  type Job,
  type JobJson,
  jobToJson,
} from "./job.ts";
import type { Dependency, QueueSummary, StateCounts, Store, WorkerRecord } from "./store/store.ts";

/** What `status` reads: counts by state, the queues, the live workers, and the moment. */
export interface StatusData {
  counts: StateCounts;
  queues: QueueSummary[];
  workers: WorkerRecord[];
  /** The store's clock when the counts were read, epoch ms. */
  now: number;
}

/** One queue as `status --json` lists it. */
export interface QueueJson {
  name: string;
  paused: boolean;
  paused_at: string | null;
  counts: StateCounts;
  /** At most this many of its jobs run at once (`counts.processing` run now); null: no limit. */
  concurrency: number | null;
  /** At most `limit` starts in any window of `period_ms` (it slides); null: no limit. */
  rate: { limit: number; period_ms: number; starts_in_window: number } | null;
}

/** One live worker process as `status --json` lists it. */
export interface WorkerJson {
  id: string;
  pid: number;
  host: string;
  threads: number;
  started_at: string;
  heartbeat_at: string;
  stopping: boolean;
}

/** What `status --json` prints. */
export interface StatusJson {
  jobs: StateCounts;
  queues: QueueJson[];
  workers: WorkerJson[];
}

/** The JSON form of one queue, as `status --json` lists it. */
export function queueToJson(queue: QueueSummary): QueueJson {
  return {
    name: queue.name,
    paused: queue.pausedAt !== null,
    paused_at: isoTime(queue.pausedAt),
    counts: queue.counts,
    concurrency: queue.limits.concurrency,
    rate: queue.limits.rate === null ? null : {
      limit: queue.limits.rate.starts,
      period_ms: queue.limits.rate.periodMs,
      starts_in_window: queue.recentStarts,
    },
  };
}

/** The JSON form of `status`. */
export function statusToJson(status: StatusData): StatusJson {
  return {
    jobs: status.counts,
    queues: status.queues.map(queueToJson),
    workers: status.workers.map((w) => ({
      id: w.id,
      pid: w.pid,
      host: w.host,
      threads: w.threads,
      started_at: isoTime(w.startedAt),
      heartbeat_at: isoTime(w.heartbeatAt),
      stopping: w.stopRequested,
    })),
  };
}

/** What `show` reads about one job: the job, the jobs it runs after, its finished runs. */
export interface JobDetail {
  job: Job;
  after: Dependency[];
  attempts: AttemptRecord[];
}

/** Reads what `show` shows about job `id`; undefined when there is no such job. */
export async function readJobDetail(store: Store, id: string): Promise<JobDetail | undefined> {
  const job = await store.getJob(id);
  if (!job) return undefined;
  const after = await store.getDependencies(id);
  const attempts = await store.listAttempts(id);
  return { job, after, attempts };
}

/** What `show --json` prints: every field of the job, `after`, and `history`. */
export type JobDetailJson = JobJson & {
  after: Dependency[];
  history: Record<string, unknown>[];
};

/** The JSON form of `show`. */
export function jobDetailToJson(detail: JobDetail): JobDetailJson {
  return {
    ...jobToJson(detail.job),
    after: detail.after,
    history: detail.attempts.map(attemptToJson),
  };
}

/** The JSON form of `list` (and `dlq list`): the jobs in the order given. */
export function jobListToJson(jobs: readonly Job[]): JobJson[] {
  return jobs.map(jobToJson);
}
