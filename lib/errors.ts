/**
 * Errors that the CLI turns into a one-line message and an exit code.
 *
 * @module
 */

/** Bad usage or invalid input: the command line or a job spec is wrong. Exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A failure at run time: missing job, duplicate id, unusable database. Exit code 1. */
export class QueueError extends Error {
  override name = "QueueError";
}

/** A job id that the store does not hold. */
export class JobNotFoundError extends QueueError {
  override name = "JobNotFoundError";
  /** @param id the id that was looked up */
  constructor(readonly id: string) {
    super(`no job with id '${id}'`);
  }
}

/** An enqueue whose id is already taken. */
export class DuplicateJobError extends QueueError {
  override name = "DuplicateJobError";
  /** @param id the id that is already taken */
  constructor(readonly id: string) {
    super(`a job with id '${id}' already exists`);
  }
}

/** A `schedule add` whose name is taken (without `--replace`), or a schedule that is missing. */
export class ScheduleError extends QueueError {
  override name = "ScheduleError";
}

/** The database file cannot be used: unreadable, not SQLite, not ours, or too new. */
export class DatabaseError extends QueueError {
  override name = "DatabaseError";
}
