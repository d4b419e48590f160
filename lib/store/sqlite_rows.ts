/**
 * What the SQLite backend's files share: SQL fragments generated from
 * lib/states.ts, so that every statement guards its updates with the states
 * that module allows (rows to records: lib/store/rows.ts, shared with
 * PostgreSQL).
 *
 * @module
 */

import { CLAIMABLE_STATES, type JobState, type Transition, UNFINISHED_STATES } from "../states.ts";
import type { QueueSelection } from "./store.ts";

/** States as a SQL list: `'pending', 'failed'`. */
export function sqlList(states: readonly JobState[]): string {
  return states.map((s) => `'${s}'`).join(", ");
}

/** The `state IN (…)` guard for a transition: an update only applies to a job in a state it may leave. */
export function leaving(transition: Transition): string {
  return `state IN (${sqlList(transition.from)})`;
}

/** The states a worker may claim from, as a SQL list (they match the partial indexes' WHERE). */
export const CLAIMABLE = sqlList(CLAIMABLE_STATES);

/** The states of jobs that still need a worker, as a SQL list. */
export const UNFINISHED = sqlList(UNFINISHED_STATES);

/** The served, unpaused queues of a selection, as SQL over the queues table aliased `q`. */
export const SELECTED_QUEUES = `q.paused_at IS NULL
  AND (:queues IS NULL OR q.name IN (SELECT value FROM json_each(:queues)))`;

/** A queue selection as the JSON text that SQL reads with json_each, or null for every queue. */
export function queuesParam(selection: QueueSelection | undefined): string | null {
  return selection?.queues === undefined ? null : JSON.stringify(selection.queues);
}
