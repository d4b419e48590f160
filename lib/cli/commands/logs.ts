/**
 * `queuectl logs`: the output of a job's latest run (a running job's output
 * so far), of an earlier run with `--attempt N`, or with `--follow` the
 * output of its runs as they happen.
 *
 * @module
 */

import { JobNotFoundError, QueueError, UsageError } from "../../errors.ts";
import type { AttemptOutput, Job } from "../../job.ts";
import { parseCount } from "../../numbers.ts";
import type { LiveOutput, Store } from "../../store/store.ts";
import type { CommandContext } from "../context.ts";
import { followJob, interruptOnSignals, isFinished, printFinishedOutput } from "../follow.ts";
import { writeErr } from "../output.ts";
import { singleId } from "./show.ts";

/** Reads `--attempt`: a run's number, from 1. */
function attemptOption(value: string | boolean | undefined): number | undefined {
  if (value === undefined) return undefined;
  const text = value as string;
  // One message for a word, a negative and 0 alike: parseCount's "0 or more" would invite a 0.
  if (!/^\d+$/.test(text.trim()) || /^0+$/.test(text.trim())) {
    throw new UsageError(`--attempt: '${text}' is not a run number (runs are numbered from 1)`);
  }
  return parseCount(text, "--attempt");
}

/** A live output row in the shape of a finished run's, its dropped bytes counted from the totals. */
function liveAsOutput(live: LiveOutput): AttemptOutput {
  return {
    attempt: live.attempt,
    stdout: live.stdout,
    stderr: live.stderr,
    stdoutDropped: live.stdoutTotal - live.stdout.length,
    stderrDropped: live.stderrTotal - live.stderr.length,
  };
}

/**
 * Prints the output so far of the run under way, with a note on stderr that
 * it is still running. Returns false when the run ended meanwhile (or, with
 * `attempt`, the run under way has another number): the caller then prints
 * a stored run instead.
 */
async function printRunning(store: Store, job: Job, attempt?: number): Promise<boolean> {
  const live = await store.liveOutput(job.id);
  const follow = `'queuectl logs ${job.id} -f' follows it`;
  if (live) {
    if (attempt !== undefined && live.attempt !== attempt) return false;
    writeErr(
      `queuectl: job '${job.id}' is still running (attempt ${live.attempt} of ${
        job.maxRetries + 1
      }); this is its output so far; ${follow}\n`,
    );
    printFinishedOutput(liveAsOutput(live));
    return true;
  }
  // No live row: the run has printed nothing yet, or it has just ended (its row goes with it).
  const now = await store.getJob(job.id);
  if (now?.state !== "processing" || (attempt !== undefined && now.attempts !== attempt)) {
    return false;
  }
  writeErr(
    `queuectl: job '${job.id}' is still running (attempt ${now.attempts} of ${
      now.maxRetries + 1
    }) and has printed nothing yet; ${follow}\n`,
  );
  return true;
}

/** Prints the run numbered `attempt`: the one under way, or a finished one. */
async function printAttempt(store: Store, job: Job, attempt: number): Promise<void> {
  if (job.state === "processing" && job.attempts === attempt) {
    if (await printRunning(store, job, attempt)) return;
  }
  const output = await store.attemptOutput(job.id, attempt);
  if (output) {
    printFinishedOutput(output);
    return;
  }
  const runs = (await store.listAttempts(job.id)).map((run) => run.attempt);
  const highest = Math.max(0, ...runs);
  const finished = highest === 0
    ? "no run of it has finished yet"
    : `its finished runs are numbered 1 to ${highest}`;
  const running = job.state === "processing" ? `; attempt ${job.attempts} is running` : "";
  throw new QueueError(`job '${job.id}' has no attempt ${attempt}: ${finished}${running}`);
}

/** Runs `logs`: the job's stdout goes to stdout, its stderr to stderr, byte for byte. */
export async function run({ args, openStore }: CommandContext): Promise<number> {
  const id = singleId(args.positionals, "logs");
  const attempt = attemptOption(args.options.attempt);
  if (attempt !== undefined && args.options.follow) {
    throw new UsageError(
      "--attempt and --follow do not go together: --follow follows the run under way",
    );
  }
  const store = await openStore();
  try {
    const job = await store.getJob(id);
    if (!job) throw new JobNotFoundError(id);
    if (args.options.follow && !isFinished(job)) {
      if (job.state !== "processing") {
        writeErr(`queuectl: job '${id}' is ${job.state}; waiting for it to run\n`);
      }
      const interrupt = interruptOnSignals();
      try {
        const finished = await followJob(store, id, { signal: interrupt.signal });
        return finished ? 0 : interrupt.exitCode();
      } finally {
        interrupt.dispose();
      }
    }
    if (attempt !== undefined) {
      await printAttempt(store, job, attempt);
      return 0;
    }
    if (job.state === "processing" && await printRunning(store, job)) return 0;
    const output = await store.latestOutput(id);
    if (!output) {
      writeErr(`queuectl: job '${id}' has no finished run yet (state: ${job.state})\n`);
      return 0;
    }
    printFinishedOutput(output);
    return 0;
  } finally {
    await store.close();
  }
}
