/**
 * The job lifecycle: every state a job can be in and every move between
 * states. This module is the single source of truth; the SQLite schema
 * mirrors {@linkcode JOB_STATES} in a CHECK constraint and the store guards
 * each update with the state it leaves.
 *
 * @module
 */

/** Every job state, in lifecycle order. */
export const JOB_STATES = ["pending", "processing", "completed", "failed", "dead"] as const;

/** A job state. `failed` is a failed attempt waiting for its retry; `dead` is the DLQ. */
export type JobState = typeof JOB_STATES[number];

/** States from which a worker may claim a job once its `run_at` has come. */
export const CLAIMABLE_STATES: readonly JobState[] = ["pending", "failed"];

/** States a job never leaves on its own: it has finished for good. */
export const FINAL_STATES: readonly JobState[] = ["completed", "dead"];

/** States whose jobs `purge` and retention may delete: only finished ones. */
export const PURGEABLE_STATES: readonly JobState[] = FINAL_STATES;

/** States that still need a worker: waiting to run (now or later) or running. */
export const UNFINISHED_STATES: readonly JobState[] = ["pending", "failed", "processing"];

/** A named move between two states. */
export interface Transition {
  readonly from: readonly JobState[];
  readonly to: JobState;
}

/** Every allowed move, by the event that causes it. */
export const TRANSITIONS = {
  /** A worker takes a job that is due. */
  claim: { from: CLAIMABLE_STATES, to: "processing" },
  /** The command exited 0. */
  complete: { from: ["processing"], to: "completed" },
  /** The command failed and retries remain: wait out the backoff. */
  scheduleRetry: { from: ["processing"], to: "failed" },
  /** The command failed and no retry remains: into the DLQ. */
  bury: { from: ["processing"], to: "dead" },
  /** A forced shutdown gave the job back without counting the attempt. */
  release: { from: ["processing"], to: "pending" },
  /** `dlq retry`: a dead job starts over. */
  revive: { from: ["dead"], to: "pending" },
} as const satisfies Record<string, Transition>;

/** The name of an allowed move. */
export type TransitionName = keyof typeof TRANSITIONS;

/** Whether `value` names a job state. */
export function isJobState(value: string): value is JobState {
  return (JOB_STATES as readonly string[]).includes(value);
}

/** Whether a job may move directly from `from` to `to`. */
export function canTransition(from: JobState, to: JobState): boolean {
  return Object.values(TRANSITIONS).some((t) =>
    t.to === to && (t.from as readonly JobState[]).includes(from)
  );
}

/**
 * The state a failed attempt leads to: `failed` (retry later) while the job
 * has runs left, else `dead`. `attempts` counts runs started, including the
 * one that just failed; `maxRetries` counts re-runs after the first run.
 */
export function stateAfterFailure(attempts: number, maxRetries: number): "failed" | "dead" {
  return attempts <= maxRetries ? "failed" : "dead";
}
