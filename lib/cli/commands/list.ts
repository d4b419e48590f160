/**
 * `queuectl list`: jobs as a table for people or JSON for scripts.
 *
 * @module
 */

import { UsageError } from "../../errors.ts";
import { type Job, jobToJson } from "../../job.ts";
import { jobListToJson } from "../../json_shapes.ts";
import { parseCount } from "../../numbers.ts";
import { checkQueueName } from "../../spec.ts";
import { JOB_STATES, type JobState } from "../../states.ts";
import type { NewestOutput, StateCounts, Store } from "../../store/store.ts";
import { parseStateList } from "../args.ts";
import type { CommandContext } from "../context.ts";
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

/** Reads `--state`: one state or several, `S1,S2`, as every command reads it. */
export function stateOption(value: string | boolean | undefined): JobState[] | undefined {
  return value === undefined ? undefined : parseStateList(value as string, JOB_STATES, "list");
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
  states?: readonly JobState[];
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
    printJson(jobListToJson(jobs));
    return;
  }
  if (jobs.length === 0) {
    const which = options.states ? `${options.states.join(" or ")} jobs` : "jobs";
    writeErr(`no ${which}${options.queue === undefined ? "" : ` in queue '${options.queue}'`}\n`);
    return;
  }
  const now = store.now();
  const columns = options.view === "dlq" ? DLQ_COLUMNS : LIST_COLUMNS;
  printTable(columns, jobs.map((job) => columns.map((column) => column.cell(job, now))));
  if (options.limit !== undefined && jobs.length === options.limit) {
    const counts = await matchingCounts(store, options.queue);
    const total = (options.states ?? JOB_STATES).reduce((sum, state) => sum + counts[state], 0);
    if (total > jobs.length) {
      writeErr(`showing the newest ${jobs.length} of ${total} jobs; use --limit N or --limit 0\n`);
    }
  }
}

/** The JSON form of a run's output in `list --output`: text, and counts of the bytes dropped. */
export interface OutputJson {
  attempt: number;
  /** False while the run is under way: its output so far. */
  finished: boolean;
  stdout: string;
  stderr: string;
  stdout_dropped: number;
  stderr_dropped: number;
}

/** Output as text: UTF-8, with U+FFFD for bytes that are not (a character cut at the 64 KiB start, say). */
const outputDecoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

function outputToJson(output: NewestOutput): OutputJson {
  return {
    attempt: output.attempt,
    finished: output.finished,
    stdout: outputDecoder.decode(output.stdout),
    stderr: outputDecoder.decode(output.stderr),
    stdout_dropped: output.stdoutDropped,
    stderr_dropped: output.stderrDropped,
  };
}

/** Prints `list --json --output`: each job with its newest output, read for all jobs at once. */
async function printJobsWithOutput(store: Store, jobs: Job[]): Promise<void> {
  const outputs = await store.newestOutputs(jobs.map((job) => job.id));
  printJson(jobs.map((job) => {
    const output = outputs.get(job.id);
    return { ...jobToJson(job), output: output ? outputToJson(output) : null };
  }));
}

/** Runs `list`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const states = stateOption(args.options.state);
  const queue = queueOption(args.options.queue);
  const limit = limitOption(args.options.limit);
  const withOutput = args.options.output === true;
  if (withOutput && args.options.json !== true) {
    throw new UsageError("--output needs --json (one job's output as text: queuectl logs <id>)");
  }
  const store = await openStore();
  try {
    const jobs = await store.listJobs({ states, queue, limit });
    if (withOutput) {
      await printJobsWithOutput(store, jobs);
      return 0;
    }
    await printJobs(store, jobs, { json: args.options.json === true, limit, states, queue });
    return 0;
  } finally {
    await store.close();
  }
}
