/**
 * What the PostgreSQL backend's files share: the state lists of
 * lib/states.ts as query parameters, so that every statement guards its
 * updates with the states that module allows (rows to records:
 * lib/store/rows.ts, shared with SQLite).
 *
 * @module
 */

import { CLAIMABLE_STATES, type Transition, UNFINISHED_STATES } from "../states.ts";

/** The states a transition may leave, for `state = ANY(${leaving(t)})`. */
export function leaving(transition: Transition): string[] {
  return [...transition.from];
}

/** The states a worker may claim from (they match the partial indexes' WHERE). */
export const CLAIMABLE: string[] = [...CLAIMABLE_STATES];

/** The states of jobs that still need a worker. */
export const UNFINISHED: string[] = [...UNFINISHED_STATES];
