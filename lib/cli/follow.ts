/**
 * Following one job's output live, for `logs --follow` and `enqueue --wait`.
 *
 * While a job runs, its worker rewrites the job's live-output row (the last
 * 64 KiB of each stream and a count of every byte produced) every 100 ms
 * when new output arrived; when the run ends the row goes and the run's
 * final output is stored with its attempt. The follower counts the bytes it
 * has printed of each stream of the run it follows and prints only what lies
 * beyond them, first from the live row, then from the final record.
 *
 * @module
 */

import { QueueError } from "../errors.ts";
import type { AttemptOutput, Job } from "../job.ts";
import { FINAL_STATES } from "../states.ts";
import type { Store } from "../store/store.ts";
import { sleep } from "../timing.ts";
import { writeErr, writeOut } from "./write.ts";

/** How often the database is checked for news, in ms: as often as workers store live output. */
export const FOLLOW_POLL_MS = 100;

/** Where followed output goes; stdout and stderr unless a test or caller says otherwise. */
export interface FollowSinks {
  stdout(bytes: Uint8Array): void;
  stderr(bytes: Uint8Array): void;
  /** One line about the follow itself (not the job's output), without its newline. */
  note(text: string): void;
}

const DEFAULT_SINKS: FollowSinks = {
  stdout: writeOut,
  stderr: writeErr,
  note: (text) => writeErr(`queuectl: ${text}\n`),
};

/** Options of {@linkcode followJob}. */
export interface FollowOptions {
  /** Stops following early; {@linkcode followJob} then resolves with undefined. */
  signal?: AbortSignal;
  sinks?: FollowSinks;
}

/** Whether a job has finished for good (completed or dead). */
export function isFinished(job: Job): boolean {
  return FINAL_STATES.includes(job.state);
}

/** What {@linkcode interruptOnSignals} hands back. */
export interface Interrupt {
  /** Aborted when a stopping signal arrives. */
  signal: AbortSignal;
  /** The exit code for the signal that arrived: 128 + its number (130 for Ctrl+C). */
  exitCode(): number;
  /** Stops listening. */
  dispose(): void;
}

/** The signals that stop a waiting command, with the exit code each one gives. */
const STOPPING_SIGNALS: [Deno.Signal, number][] = [
  ["SIGINT", 130],
  ["SIGTERM", 143],
  ["SIGHUP", 129],
];

/**
 * Turns Ctrl+C, SIGTERM and SIGHUP into an aborted signal instead of ending
 * the process, so that a waiting command can restore the terminal (a progress
 * bar hides the cursor) and exit 128 + the signal's number. Call `dispose`
 * when done waiting.
 */
export function interruptOnSignals(): Interrupt {
  const controller = new AbortController();
  let code = 130;
  const listeners: [Deno.Signal, () => void][] = [];
  for (const [name, exitCode] of STOPPING_SIGNALS) {
    const listener = () => {
      if (!controller.signal.aborted) code = exitCode;
      controller.abort();
    };
    try {
      Deno.addSignalListener(name, listener);
      listeners.push([name, listener]);
    } catch {
      // Not on this platform (Windows has only SIGINT): that signal ends the process as usual.
    }
  }
  return {
    signal: controller.signal,
    exitCode: () => code,
    dispose: () => {
      for (const [name, listener] of listeners) Deno.removeSignalListener(name, listener);
    },
  };
}

/**
 * Prints the output of a finished run as `logs` shows it: notes about bytes
 * dropped to keep the last 64 KiB, then stdout and stderr.
 */
export function printFinishedOutput(output: AttemptOutput, sinks = DEFAULT_SINKS): void {
  for (
    const [name, dropped] of [["stdout", output.stdoutDropped], ["stderr", output.stderrDropped]]
  ) {
    if (dropped) {
      sinks.note(`the first ${dropped} bytes of ${name} were dropped; the last 64 KiB are kept`);
    }
  }
  sinks.stdout(output.stdout);
  sinks.stderr(output.stderr);
}

/** One stream of the run being followed: how many of its bytes are printed. */
class StreamCursor {
  printed = 0;

  constructor(readonly name: "stdout" | "stderr", readonly sinks: FollowSinks) {}

  /**
   * Prints what `tail` (the last bytes of a stream that has produced `total`
   * bytes) holds beyond the bytes already printed.
   */
  advance(tail: Uint8Array, total: number): void {
    if (total <= this.printed) return;
    const tailStart = total - tail.length;
    let from = this.printed - tailStart;
    if (from < 0) {
      this.sinks.note(
        `${-from} bytes of ${this.name} were skipped (more than 64 KiB arrived between two reads)`,
      );
      from = 0;
    }
    const bytes = tail.subarray(from);
    if (this.name === "stdout") this.sinks.stdout(bytes);
    else this.sinks.stderr(bytes);
    this.printed = total;
  }
}

/** The run being followed. */
interface RunCursor {
  attempt: number;
  /** The claim of the run, once its live output has been seen. */
  claimToken?: string;
  stdout: StreamCursor;
  stderr: StreamCursor;
}

/**
 * Prints a job's output as it is produced until the job has finished
 * (completed or dead), following it through retries, and resolves with the
 * finished job; resolves with undefined when `options.signal` aborts first.
 *
 * A job that has already finished gets its latest run's output printed
 * whole, as `logs` prints it. Otherwise output starts with the run under way
 * (from the start of what its live output still holds) or the next one.
 *
 * @throws {QueueError} when the job does not exist or is deleted meanwhile
 */
export async function followJob(
  store: Store,
  id: string,
  options: FollowOptions = {},
): Promise<Job | undefined> {
  const sinks = options.sinks ?? DEFAULT_SINKS;
  const signal = options.signal;
  // Runs are counted before the job is read: a run that ends between the two
  // reads is then news below, not lost in the baseline.
  let finishedRuns = (await store.listAttempts(id)).length;
  const first = await store.getJob(id);
  if (!first) throw new QueueError(`no job with id '${id}'`);
  if (isFinished(first)) {
    const output = await store.latestOutput(id);
    if (output) printFinishedOutput(output, sinks);
    return first;
  }

  let current: RunCursor | undefined;
  const startRun = (attempt: number, claimToken?: string): RunCursor => ({
    attempt,
    claimToken,
    stdout: new StreamCursor("stdout", sinks),
    stderr: new StreamCursor("stderr", sinks),
  });
  const lostRun = () => sinks.note(`the run of job '${id}' stopped unfinished; it will run again`);

  for (let check = true; !signal?.aborted; check = await store.notifier.changed()) {
    if (check) {
      // Read order matters: the job first, then its finished runs, then the
      // live row. A job seen finished then has every run of it counted.
      const job = await store.getJob(id);
      if (!job) throw new QueueError(`job '${id}' was deleted`);
      const runs = (await store.listAttempts(id)).length;
      if (runs > finishedRuns) {
        if (runs > finishedRuns + 1) {
          const unseen = runs - finishedRuns - 1;
          sinks.note(`${unseen} run${unseen === 1 ? "" : "s"} of job '${id}' ended unseen`);
        }
        finishedRuns = runs;
        const output = await store.latestOutput(id);
        if (output) {
          // A run too short to store live output is new here.
          const run = current?.attempt === output.attempt ? current : startRun(output.attempt);
          run.stdout.advance(output.stdout, output.stdoutDropped + output.stdout.length);
          run.stderr.advance(output.stderr, output.stderrDropped + output.stderr.length);
        }
        current = undefined;
        if (!isFinished(job) && output) {
          const wait = Math.max(0, Math.ceil((job.runAt - store.now()) / 1000));
          sinks.note(
            `attempt ${output.attempt} of ${job.maxRetries + 1} failed (${
              job.lastError ?? "no reason recorded"
            }); next attempt in ${wait}s`,
          );
        }
      } else if (current && job.state !== "processing") {
        // It left processing with no record of the run: its worker stopped it
        // unfinished (a forced shutdown), and the job waits to run again.
        lostRun();
        current = undefined;
      }
      if (isFinished(job)) return job;
      const live = job.state === "processing" ? await store.liveOutput(id) : undefined;
      if (live) {
        if (current?.claimToken !== undefined && current.claimToken !== live.claimToken) {
          lostRun();
          current = undefined;
        }
        current ??= startRun(live.attempt, live.claimToken);
        current.claimToken = live.claimToken;
        current.stdout.advance(live.stdout, live.stdoutTotal);
        current.stderr.advance(live.stderr, live.stderrTotal);
      }
    }
    await sleep(FOLLOW_POLL_MS, signal);
  }
  return undefined;
}
