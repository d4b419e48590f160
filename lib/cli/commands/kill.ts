/**
 * `queuectl kill`: stops a running job and its child processes. The kill is
 * a request in the database that the job's worker carries out (it TERMs the
 * job's process group, then KILLs it); this command waits to see it done.
 *
 * @module
 */

import { formatDuration, parseDuration } from "../../duration.ts";
import { JobNotFoundError, QueueError, UsageError } from "../../errors.ts";
import type { Job } from "../../job.ts";
import { pollUntil } from "../../timing.ts";
import type { CommandContext } from "../context.ts";
import { humanTime, writeOut } from "../output.ts";

const DEFAULT_TIMEOUT_MS = 10_000;
const POLL_MS = 100;

/** Whether `job` is still in the run that was asked to be killed. */
function sameRun(job: Job | undefined, run: Job): boolean {
  return job !== undefined && job.state === "processing" && job.attempts === run.attempts &&
    job.startedAt === run.startedAt;
}

/** One line on what became of a job after its run ended. */
function describeEnd(id: string, run: Job, job: Job | undefined): string {
  if (job === undefined) return `job '${id}' was deleted while it was being killed`;
  switch (job.state) {
    case "failed":
      return `killed job '${id}': failed, retry at ${
        humanTime(job.runAt)
      } (run ${run.attempts} of ${job.maxRetries + 1})`;
    case "dead":
      return `killed job '${id}': dead (${job.lastError ?? "killed"})`;
    case "processing":
      return `killed job '${id}': failed, and its next run (${job.attempts} of ${
        job.maxRetries + 1
      }) has already started`;
    case "completed":
      return `job '${id}' completed before it could be killed`;
    case "pending":
      return `job '${id}' was returned to the queue (pending) by its worker's shutdown`;
    default:
      return `job '${id}' is now ${job.state}`;
  }
}

/** Runs `kill`. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  if (args.positionals.length === 0) throw new UsageError("missing job id: kill <id>");
  if (args.positionals.length > 1) {
    throw new UsageError(`kill takes one job id (got ${args.positionals.length})`);
  }
  const id = args.positionals[0];
  const timeoutMs = args.options.timeout === undefined
    ? DEFAULT_TIMEOUT_MS
    : parseDuration(args.options.timeout as string, "--timeout");
  const mode = args.options["no-retry"] === true ? "dead" : "retry";
  const store = await openStore();
  try {
    const request = await store.requestKill(id, mode);
    const run = await store.getJob(id);
    if (run === undefined) throw new JobNotFoundError(id);
    // The run the request was stored for; a later run (claimed after it ended on its
    // own) is not the one to wait for.
    const requested = { ...run, attempts: request.attempt, startedAt: request.startedAt };
    if (sameRun(run, requested)) {
      await store.notifier.announce("kill");
      let job: Job | undefined = run;
      const ended = await pollUntil(async () => {
        job = await store.getJob(id);
        return !sameRun(job, run);
      }, { intervalMs: POLL_MS, deadline: Date.now() + timeoutMs });
      if (!ended) {
        throw new QueueError(
          `job '${id}' is still running after ${
            formatDuration(timeoutMs)
          }: its worker has not acted yet (it may run on another host, or be stalled); the kill request stays`,
        );
      }
      writeOut(describeEnd(id, run, job) + "\n");
    } else {
      writeOut(describeEnd(id, run, run) + "\n");
    }
    return 0;
  } finally {
    await store.close();
  }
}
