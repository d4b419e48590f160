/**
 * The PostgreSQL backend: the worker registry, heartbeats, stop and kill requests.
 *
 * @module
 */

import type { PgConnection } from "./pg_connection.ts";
import type { Heartbeat, KillMode, KillRequest, WorkerRecord } from "./store.ts";

/** See `Store.registerWorker`. */
export function registerWorker(
  _conn: PgConnection,
  _worker: WorkerRecord,
  _leaseTimeoutMs: number,
): Promise<void> {
  return Promise.reject(new Error("registerWorker: not written yet"));
}

/** See `Store.heartbeatWorker`; stamped with the server clock unless `clock` is given. */
export function heartbeatWorker(
  _conn: PgConnection,
  _worker: WorkerRecord,
  _clock: (() => number) | undefined,
  _leaseTimeoutMs: number,
): Promise<Heartbeat> {
  return Promise.reject(new Error("heartbeatWorker: not written yet"));
}

/** See `Store.removeWorkers`. */
export function removeWorkers(_conn: PgConnection, _ids: string[]): Promise<void> {
  return Promise.reject(new Error("removeWorkers: not written yet"));
}

/** See `Store.pruneWorkers`. */
export function pruneWorkers(
  _conn: PgConnection,
  _workers: Pick<WorkerRecord, "id" | "heartbeatAt">[],
): Promise<string[]> {
  return Promise.reject(new Error("pruneWorkers: not written yet"));
}

/** See `Store.listWorkers`. */
export function listWorkers(_conn: PgConnection): Promise<WorkerRecord[]> {
  return Promise.reject(new Error("listWorkers: not written yet"));
}

/** See `Store.requestWorkerStop`. */
export function requestWorkerStop(_conn: PgConnection, _ids: string[]): Promise<void> {
  return Promise.reject(new Error("requestWorkerStop: not written yet"));
}

/** See `Store.requestKill`; notifies `kill` in the same transaction. */
export function requestKill(
  _conn: PgConnection,
  _id: string,
  _mode: KillMode,
): Promise<KillRequest> {
  return Promise.reject(new Error("requestKill: not written yet"));
}

/** See `Store.listKillRequests`. */
export function listKillRequests(_conn: PgConnection, _workerId: string): Promise<KillRequest[]> {
  return Promise.reject(new Error("listKillRequests: not written yet"));
}
