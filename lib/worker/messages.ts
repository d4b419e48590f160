import type { DbLocation } from "../db_location.ts";
import type { KillMode } from "../store/store.ts";

/**
 * Messages between the supervisor (main thread) and its Web Workers.
 *
 * @module
 */

/** Supervisor to worker. */
export type ToWorker =
  | {
    type: "start";
    /** Where the database is; each worker opens its own connection. */
    location: DbLocation;
    /** The registry id of the `worker start` process, recorded on claimed jobs. */
    processId: string;
    /** This worker's number within the process, from 1. */
    index: number;
    /** Run one job, then stop. */
    once: boolean;
    /** Whether enqueues on this host wake the workers (see wake.ts), so that polling can be slow. */
    wakeable: boolean;
    /** The folder where runs leave their exit status (runs_folder.ts); none where unsupported. */
    runsDir: string | null;
    /** Where each run gets a cgroup of its own (see containment.ts); null where runs cannot. */
    cgroups: string | null;
    /** The queues to take jobs from; undefined for all. */
    queues?: string[];
    /** Write turns shared by the process's workers (SQLite; see WriteTurns in sqlite_connection.ts). */
    writeTurns: SharedArrayBuffer;
  }
  /** A job may have been added: an idle worker should look now. */
  | { type: "wake" }
  /** Finish the current job, claim nothing more, then stop. */
  | { type: "stop" }
  /** Kill every process of the current job, give the job back uncounted, then stop. */
  | { type: "kill" }
  /** `queuectl kill`: stop the run under this claim, if it is this worker's, as a failed attempt. */
  | { type: "killJob"; claimToken: string; mode: KillMode };

/** Worker to supervisor. */
export type FromWorker =
  /** A `once` worker has finished its job. */
  | { type: "done" }
  /** The worker has released everything and is about to close. */
  | { type: "stopped" }
  /** The worker cannot go on (e.g. its database connection failed to open). */
  | { type: "fatal"; message: string };
