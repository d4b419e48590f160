/**
 * Builders for store tests: jobs to enqueue, outcomes of runs, worker
 * records, a fixed clock. Shared by the store conformance suite and the
 * SQLite store tests, so that every store test speaks of jobs the same way.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ClaimedJob, NewJob } from "../lib/job.ts";
import type { AttemptOutcome, Store, WorkerRecord } from "../lib/store/store.ts";
import { RUN_DURATION_BOUNDS_MS } from "../lib/store/rows.ts";

/** The fixed moment store tests start at, epoch ms: every time in them is known. */
export const T0 = 1_700_000_000_000;

/** One day in ms. */
export const DAY = 86_400_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A pending job of the default queue, due at {@linkcode T0}, changed by `fields`. */
export function newJob(id: string, fields: Partial<NewJob> = {}): NewJob {
  return {
    id,
    queue: "default",
    after: [],
    command: `echo ${id}`,
    maxRetries: 3,
    priority: 0,
    runAt: T0,
    timeoutMs: null,
    cwd: "/tmp",
    ...fields,
  };
}

/** The output of a run that printed nothing. */
export function noOutput(): AttemptOutcome["output"] {
  return {
    stdout: new Uint8Array(0),
    stderr: new Uint8Array(0),
    stdoutDropped: 0,
    stderrDropped: 0,
  };
}

/** An outcome ending at `T0 + 500` with empty output, changed by `fields`. */
export function outcome(
  state: AttemptOutcome["state"],
  fields: Partial<AttemptOutcome> = {},
): AttemptOutcome {
  return {
    state,
    exitCode: state === "completed" ? 0 : 1,
    error: state === "completed" ? null : "exit code 1",
    finishedAt: T0 + 500,
    output: noOutput(),
    ...fields,
  };
}

/**
 * An outcome ending at `at` that printed `out <state>`; a failed run may
 * retry 1 s after it ended.
 */
export function ended(
  state: AttemptOutcome["state"],
  at = T0 + 10,
  error?: string,
): AttemptOutcome {
  return {
    state,
    retryAt: state === "failed" ? at + 1_000 : undefined,
    exitCode: state === "completed" ? 0 : 1,
    error: state === "completed" ? null : error ?? "exited with code 1",
    finishedAt: at,
    output: { ...noOutput(), stdout: encoder.encode(`out ${state}`) },
  };
}

/** An outcome whose output is `stdout` (nothing on stderr); a failed one may retry at once. */
export function printed(
  state: AttemptOutcome["state"],
  stdout: string,
  finishedAt = T0 + 500,
): AttemptOutcome {
  return outcome(state, {
    finishedAt,
    retryAt: state === "failed" ? T0 : undefined,
    output: { ...noOutput(), stdout: encoder.encode(stdout) },
  });
}

/** Bytes as text, for comparing captured output. */
export function text(bytes: Uint8Array | undefined): string | undefined {
  return bytes && decoder.decode(bytes);
}

/** A registered `worker start` process on host-a, started and last heard of at T0. */
export function worker(id: string, fields: Partial<WorkerRecord> = {}): WorkerRecord {
  return {
    id,
    pid: 4242,
    host: "host-a",
    threads: 2,
    startedAt: T0,
    heartbeatAt: T0,
    stopRequested: false,
    procStart: null,
    ...fields,
  };
}

/** A clock that reads `at` every time, for the store methods that take one. */
export function fixedClock(at: number): () => number {
  return () => at;
}

/** Claims the next job due at `now`, failing the test when there is none. */
export async function claimOne(store: Store, now = T0, workerId = "w1"): Promise<ClaimedJob> {
  const job = await store.claim(workerId, now);
  assert.ok(job, "expected a job to claim");
  return job;
}

/**
 * The run totals migration 6 starts a database's tally from, on either
 * backend, when the version-5 database it upgrades holds the migration
 * tests' runs: job `done` (queue a) failed after 40 ms, then succeeded after
 * 4 s; job `gone` (queue b) could not start.
 */
export const UPGRADED_TALLY = [
  {
    queue: "a",
    succeeded: 1,
    failed: 1,
    retries: 1,
    timed: 2,
    durationSumMs: 4040,
    atMostMs: [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2],
  },
  {
    queue: "b",
    succeeded: 0,
    failed: 1,
    retries: 0,
    timed: 0,
    durationSumMs: 0,
    atMostMs: RUN_DURATION_BOUNDS_MS.map(() => 0),
  },
];
