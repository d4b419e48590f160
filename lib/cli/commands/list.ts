/**
 * `queuectl list`: jobs as a table for people or JSON for scripts.
 *
 * @module
 */

import { UsageError } from "../../errors.ts";
import { type Job, jobToJson } from "../../job.ts";
import { parseCount } from "../../numbers.ts";
import { isJobState, JOB_STATES, type JobState } from "../../states.ts";
import type { Store } from "../../store/store.ts";
import type { CommandContext } from "../commands.ts";
import { humanTime, printJson, printTable, truncate, writeErr } from "../output.ts";

/** The default number of jobs listed. */
export const DEFAULT_LIMIT = 100;

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

/** Prints jobs as `list` and `dlq list` do; tells on stderr when the limit cut the list. */
export async function printJobs(
  store: Store,
  jobs: Job[],
  options: { json: boolean; limit?: number; state?: JobState },
): Promise<void> {
  if (options.json) {
    printJson(jobs.map(jobToJson));
    return;
  }
  if (jobs.length === 0) {
    writeErr(options.state ? `no ${options.state} jobs\n` : "no jobs\n");
    return;
  }
  await printTable(
    ["ID", "STATE", "ATTEMPTS", "PRI", "RUN AT", "UPDATED", "COMMAND"],
    jobs.map((job) => [
      job.id,
      job.state,
      `${job.attempts}/${job.maxRetries + 1}`,
      String(job.priority),
      humanTime(job.runAt),
      humanTime(job.updatedAt),
      truncate(job.command, 48),
    ]),
  );
  if (options.limit !== undefined && jobs.length === options.limit) {
    const counts = await store.countByState();
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
  const limit = limitOption(args.options.limit);
  const store = await openStore();
  try {
    const jobs = await store.listJobs({ state, limit });
    await printJobs(store, jobs, { json: args.options.json === true, limit, state });
    return 0;
  } finally {
    await store.close();
  }
}
