/**
 * `queuectl list`: jobs as a table for people or JSON for scripts.
 *
 * @module
 */

import { UsageError } from "../../errors.ts";
import { type Job, jobToJson } from "../../job.ts";
import { parseCount } from "../../numbers.ts";
import { checkQueueName } from "../../spec.ts";
import { isJobState, JOB_STATES, type JobState } from "../../states.ts";
import type { StateCounts, Store } from "../../store/store.ts";
import type { CommandContext } from "../commands.ts";
import {
  paintStateCell,
  printJson,
  printTable,
  relativeTime,
  type TableColumn,
  writeErr,
} from "../output.ts";

/** The default number of jobs listed. */
export const DEFAULT_LIMIT = 100;

/** Off a terminal, commands and errors are cut at this many columns (`--json` has them whole). */
export const PIPED_TEXT_MAX = 60;

/** Reads `--limit` (0 for all) into a limit for the store. */
export function limitOption(value: string | boolean | undefined): number | undefined {
  if (value === undefined) return DEFAULT_LIMIT;
  const limit = parseCount(value as string, "--limit");
  return limit === 0 ? undefined : limit;
}

/** Reads `--state`. */
export function stateOption(value: string | boolean | undefined): JobState | undefined {
  if (value === undefined) return undefined;
  if (!isJobState(value as string)) {
    throw new UsageError(`--state: unknown state '${value}' (known: ${JOB_STATES.join(", ")})`);
  }
  return value as JobState;
}

/** Reads `--queue`. */
export function queueOption(value: string | boolean | undefined): string | undefined {
  return value === undefined ? undefined : checkQueueName(value, "--queue");
}

/** A column of a job table: its layout and how it reads a job. */
interface JobColumn extends TableColumn {
  cell(job: Job, now: number): string;
}

/** Ids and queue names are never cut: a cut one cannot be copied into the next command. */
const ID: JobColumn = { header: "ID", cell: (job) => job.id };
const QUEUE: JobColumn = { header: "QUEUE", cell: (job) => job.queue };
const ATTEMPTS: JobColumn = {
  header: "ATTEMPTS",
  cell: (job) => `${job.attempts}/${job.maxRetries + 1}`,
};
const COMMAND: JobColumn = {
  header: "COMMAND",
  cut: 1,
  minWidth: 20,
  pipedMax: PIPED_TEXT_MAX,
  cell: (job) => job.command,
};

/**
 * The columns of `list`. On a narrow terminal the command is cut first;
 * before it gets shorter than 20 columns, PRI, UPDATED, RUN AT, ATTEMPTS and
 * QUEUE are left out in that order; then it is cut to 7 and left out too.
 * ID and STATE always stay.
 */
const LIST_COLUMNS: JobColumn[] = [
  ID,
  { header: "STATE", paint: paintStateCell, cell: (job) => job.state },
  { ...QUEUE, drop: 5 },
  { ...ATTEMPTS, drop: 4 },
  { header: "PRI", align: "right", drop: 1, cell: (job) => String(job.priority) },
  { header: "RUN AT", drop: 3, cell: (job, now) => relativeTime(job.runAt, now) },
  { header: "UPDATED", drop: 2, cell: (job, now) => relativeTime(job.updatedAt, now) },
  COMMAND,
];

/**
 * The columns of `dlq list`: every job is dead, so the state gives way to
 * why it died. On a narrow terminal the command and then the error are cut;
 * DIED, ATTEMPTS and QUEUE are left out next; then the command and the
 * error themselves. ID always stays.
 */
const DLQ_COLUMNS: JobColumn[] = [
  ID,
  { ...QUEUE, drop: 3 },
  { ...ATTEMPTS, drop: 2 },
  { header: "DIED", drop: 1, cell: (job, now) => relativeTime(job.updatedAt, now) },
  {
    header: "ERROR",
    cut: 2,
    minWidth: 16,
    pipedMax: PIPED_TEXT_MAX,
    cell: (job) => job.lastError ?? "-",
  },
  COMMAND,
];

/** What {@linkcode printJobs} prints and how. */
export interface PrintJobsOptions {
  json: boolean;
  limit?: number;
  state?: JobState;
  queue?: string;
  /** `dlq` for the dead-letter queue's columns. @default "list" */
  view?: "list" | "dlq";
}

/** Counts of the jobs that a filter matches, by state. */
async function matchingCounts(store: Store, queue: string | undefined): Promise<StateCounts> {
  if (queue === undefined) return await store.countByState();
  const summary = (await store.listQueues()).find((q) => q.name === queue);
  return summary?.counts ??
    Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as StateCounts;
}

/** Prints jobs as `list` and `dlq list` do; tells on stderr when the limit cut the list. */
export async function printJobs(
  store: Store,
  jobs: Job[],
  options: PrintJobsOptions,
): Promise<void> {
  if (options.json) {
    printJson(jobs.map(jobToJson));
    return;
  }
  if (jobs.length === 0) {
    const which = options.state ? `${options.state} jobs` : "jobs";
    writeErr(`no ${which}${options.queue === undefined ? "" : ` in queue '${options.queue}'`}\n`);
    return;
  }
  const now = Date.now();
  const columns = options.view === "dlq" ? DLQ_COLUMNS : LIST_COLUMNS;
  printTable(columns, jobs.map((job) => columns.map((column) => column.cell(job, now))));
  if (options.limit !== undefined && jobs.length === options.limit) {
    const counts = await matchingCounts(store, options.queue);
    const total = options.state
      ? counts[options.state]
      : Object.values(counts).reduce((a, b) => a + b, 0);
    if (total > jobs.length) {
      writeErr(`showing the newest ${jobs.length} of ${total} jobs; use --limit N or --limit 0\n`);
    }
  }
}

/** Runs `list`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const state = stateOption(args.options.state);
  const queue = queueOption(args.options.queue);
  const limit = limitOption(args.options.limit);
  const store = await openStore();
  try {
    const jobs = await store.listJobs({ state, queue, limit });
    await printJobs(store, jobs, { json: args.options.json === true, limit, state, queue });
    return 0;
  } finally {
    await store.close();
  }
}
