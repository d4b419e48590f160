/**
 * The job lifecycle: every state a job can be in and every move between
 * states. This module is the single source of truth; the SQLite schema
 * mirrors {@linkcode JOB_STATES} in a CHECK constraint and the store guards
 * each update with the state it leaves.
 *
 * @module
 */

/** Every job state, in lifecycle order. */
export const JOB_STATES = [
  "blocked",
  "pending",
  "processing",
  "completed",
  "failed",
  "dead",
] as const;

/**
 * A job state. `blocked` waits for the jobs it runs after (`enqueue
 * --after`) to complete; `failed` is a failed attempt waiting for its retry;
 * `dead` is the DLQ.
 */
export type JobState = typeof JOB_STATES[number];

/** States from which a worker may claim a job once its `run_at` has come. */
export const CLAIMABLE_STATES: readonly JobState[] = ["pending", "failed"];

/** States a job never leaves on its own: it has finished for good. */
export const FINAL_STATES: readonly JobState[] = ["completed", "dead"];

/** States whose jobs `purge` and retention may delete: only finished ones. */
export const PURGEABLE_STATES: readonly JobState[] = FINAL_STATES;

/** States that still need a worker: waiting to run (now, later, or after other jobs) or running. */
export const UNFINISHED_STATES: readonly JobState[] = [
  "blocked",
  "pending",
  "failed",
  "processing",
];

/** States whose jobs `delete` may remove: all but a running one, which must be killed first. */
export const DELETABLE_STATES: readonly JobState[] = JOB_STATES.filter((s) => s !== "processing");

/** States a new job starts in: it runs after other jobs, or not at all when one of them is dead. */
export const INITIAL_STATES: readonly JobState[] = ["pending", "blocked", "dead"];

/** A named move between two states. */
export interface Transition {
  readonly from: readonly JobState[];
  readonly to: JobState;
}

/**
 * Every allowed move, by the event that causes it.
 *
 * Three words that sound alike name three distinct things:
 * - a **retry** is automatic: a failed run with runs left waits out its
 *   backoff in `failed` (`scheduleRetry`), then a worker claims it again; its
 *   attempts count on.
 * - a **rerun** is what the `retry` command does: a finished job (completed
 *   or dead) starts over, attempts 0, its earlier runs kept in its history;
 *   it waits again (`blocked`) for jobs it runs after that have not
 *   completed. Store: `rerunJobs`.
 * - a **revive** is what `dlq retry` does: a dead job, or the whole DLQ
 *   (`--all`), starts over the same way. Store: `reviveDead`.
 */
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
  /** `retry`: a finished job (completed or dead) starts over, its history kept. */
  rerun: { from: FINAL_STATES, to: "pending" },
  /** A job starting over waits again for a job it runs after that has not completed. */
  block: { from: ["pending"], to: "blocked" },
  /** Every job it runs after has completed. */
  unblock: { from: ["blocked"], to: "pending" },
  /** A job it runs after ended dead (or was deleted unfinished): it never will run. */
  abandon: { from: ["blocked"], to: "dead" },
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
