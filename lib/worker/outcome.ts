/**
 * What a finished run means for its job: completed, a retry after backoff,
 * or the DLQ.
 *
 * @module
 */

import { retryDelayMs } from "../backoff.ts";
import type { QueueConfig } from "../config.ts";
import { formatDuration } from "../duration.ts";
import type { Job } from "../job.ts";
import { stateAfterFailure } from "../states.ts";
import type { AttemptOutcome, KillMode } from "../store/store.ts";
import type { CommandResult } from "./executor.ts";

const MAX_ERROR_DETAIL = 300;

/** The last non-empty line of a job's stderr, shortened: the likeliest explanation of a failure. */
function lastLine(bytes: Uint8Array): string | undefined {
  const text = new TextDecoder().decode(bytes.subarray(Math.max(0, bytes.length - 4096)));
  const line = text.split("\n").map((l) => l.trim()).filter((l) => l !== "").at(-1);
  if (line === undefined) return undefined;
  return line.length > MAX_ERROR_DETAIL ? `${line.slice(0, MAX_ERROR_DETAIL)}…` : line;
}

/** Why a run failed, in words; null when it succeeded. */
export function describeFailure(
  job: Job,
  result: CommandResult,
  killed?: KillMode,
): string | null {
  if (result.startError !== null) return `could not start: ${result.startError}`;
  // Asked to die while it ran: killed, even if it caught the SIGTERM and exited 0.
  if (killed !== undefined) {
    return `killed by 'queuectl kill'${killed === "dead" ? " --no-retry" : ""}`;
  }
  if (result.timedOut) return `timed out after ${formatDuration(job.timeoutMs ?? 0)}`;
  if (result.signal !== null) return `killed by ${result.signal}`;
  if (result.exitCode === 0) return null;
  const detail = lastLine(result.stderr);
  return `exited with code ${result.exitCode}${detail ? `: ${detail}` : ""}`;
}

/**
 * Decides a claimed job's next state from its run: `completed` on exit 0
 * unless it was killed, else `failed` with a backoff while retries remain,
 * else `dead`.
 *
 * @param job the job as claimed (its `attempts` counts the run that just ended)
 * @param result how the command ended
 * @param config the queue's backoff settings
 * @param now when the run ended, epoch ms
 * @param killed what `queuectl kill` asked for, if it asked while the run
 *   was still going: the run failed, whatever its exit code, and `dead`
 *   sends it to the DLQ whatever retries remain
 */
export function decideOutcome(
  job: Job,
  result: CommandResult,
  config: QueueConfig,
  now: number,
  killed?: KillMode,
): AttemptOutcome {
  const error = describeFailure(job, result, killed);
  const output = {
    stdout: result.stdout,
    stderr: result.stderr,
    stdoutDropped: result.stdoutDropped,
    stderrDropped: result.stderrDropped,
  };
  if (error === null) {
    return { state: "completed", exitCode: result.exitCode, error, finishedAt: now, output };
  }
  const failure = { exitCode: result.exitCode, error, output };
  if (killed === "dead") return { ...failure, state: "dead", finishedAt: now };
  return failureOutcome(job, failure, config, now);
}

/** The output of a run that left none behind. */
export const NO_OUTPUT: AttemptOutcome["output"] = {
  stdout: new Uint8Array(),
  stderr: new Uint8Array(),
  stdoutDropped: 0,
  stderrDropped: 0,
};

/**
 * The outcome of a failed run: a retry after backoff while runs remain, else
 * the DLQ. Shared by runs that failed and runs whose worker was lost.
 */
export function failureOutcome(
  job: Job,
  failure: Pick<AttemptOutcome, "exitCode" | "error" | "output">,
  config: QueueConfig,
  now: number,
): AttemptOutcome {
  const base = { ...failure, finishedAt: now };
  const state = stateAfterFailure(job.attempts, job.maxRetries);
  if (state === "dead") return { ...base, state };
  const retryAt = now + retryDelayMs(config.backoffBase, job.attempts, config.backoffMaxMs);
  return { ...base, state, retryAt };
}
