/**
 * The concerns of the SQLite store that `enqueue` never calls, imported
 * together on their first use (lib/store/sqlite_store.ts says why not with
 * the store). One module rather than one import each: Deno reads every
 * module a literal dynamic import names when the program starts, and each
 * file costs that start about 0.05 ms (measured on `enqueue`: nine files
 * instead of one took 0.4 ms more).
 *
 * @module
 */

export * as claims from "./sqlite_claim.ts";
export * as limits from "./sqlite_limits.ts";
export * as maintenance from "./sqlite_maintenance.ts";
export * as metrics from "./sqlite_metrics.ts";
export * as outcomes from "./sqlite_outcomes.ts";
export * as outputs from "./sqlite_outputs.ts";
export * as queries from "./sqlite_queries.ts";
export * as schedules from "./sqlite_schedules.ts";
export * as search from "./sqlite_search.ts";
