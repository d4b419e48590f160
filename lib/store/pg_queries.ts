/**
 * The PostgreSQL backend: jobs, counts and queues (pause, resume).
 *
 * @module
 */

import type { AttemptRecord, Job } from "../job.ts";
import type { JobState } from "../states.ts";
import type { PgConnection } from "./pg_connection.ts";
import type { Dependency, JobFilter, QueueSelection, QueueSummary, StateCounts } from "./store.ts";

/** See `Store.getJob`. */
export function getJob(_conn: PgConnection, _id: string): Promise<Job | undefined> {
  return Promise.reject(new Error("getJob: not written yet"));
}

/** See `Store.listJobs`. */
export function listJobs(_conn: PgConnection, _filter: JobFilter): Promise<Job[]> {
  return Promise.reject(new Error("listJobs: not written yet"));
}

/** See `Store.getDependencies`. */
export function getDependencies(_conn: PgConnection, _id: string): Promise<Dependency[]> {
  return Promise.reject(new Error("getDependencies: not written yet"));
}

/** See `Store.listAttempts`. */
export function listAttempts(_conn: PgConnection, _id: string): Promise<AttemptRecord[]> {
  return Promise.reject(new Error("listAttempts: not written yet"));
}

/** See `Store.countByState`. */
export function countByState(_conn: PgConnection): Promise<StateCounts> {
  return Promise.reject(new Error("countByState: not written yet"));
}

/** See `Store.countJobs`. */
export function countJobs(
  _conn: PgConnection,
  _states: readonly JobState[],
  _changedBefore?: number,
): Promise<number> {
  return Promise.reject(new Error("countJobs: not written yet"));
}

/** See `Store.countUnfinished`. */
export function countUnfinished(_conn: PgConnection, _selection?: QueueSelection): Promise<number> {
  return Promise.reject(new Error("countUnfinished: not written yet"));
}

/** See `Store.listScheduled`. */
export function listScheduled(_conn: PgConnection, _now: number, _limit: number): Promise<Job[]> {
  return Promise.reject(new Error("listScheduled: not written yet"));
}

/** See `Store.listQueues`. */
export function listQueues(_conn: PgConnection): Promise<QueueSummary[]> {
  return Promise.reject(new Error("listQueues: not written yet"));
}

/** See `Store.pauseQueue`. */
export function pauseQueue(_conn: PgConnection, _name: string, _now: number): Promise<boolean> {
  return Promise.reject(new Error("pauseQueue: not written yet"));
}

/** See `Store.resumeQueue`; notifies `jobs` in the same transaction. */
export function resumeQueue(_conn: PgConnection, _name: string): Promise<boolean> {
  return Promise.reject(new Error("resumeQueue: not written yet"));
}
