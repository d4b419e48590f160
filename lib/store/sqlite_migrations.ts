/**
 * The SQLite schema, as numbered migrations. Migration N takes a database
 * from `PRAGMA user_version` N-1 to N. Never edit a migration that has
 * shipped; add the next one.
 *
 * @module
 */

import { CLAIMABLE_STATES, JOB_STATES } from "../states.ts";

/** Marks a SQLite file as a queuectl database (`PRAGMA application_id`): "QCTL". */
export const APPLICATION_ID = 0x5143544c;

function sqlList(values: readonly string[]): string {
  return values.map((v) => `'${v}'`).join(", ");
}

/** The migrations in order; index 0 is migration 1. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    command TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN (${sqlList(JOB_STATES)})),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_retries INTEGER NOT NULL CHECK (max_retries >= 0),
    priority INTEGER NOT NULL DEFAULT 0,
    run_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    exit_code INTEGER,
    last_error TEXT,
    timeout_ms INTEGER CHECK (timeout_ms IS NULL OR timeout_ms > 0),
    cwd TEXT NOT NULL,
    claim_token TEXT,
    worker_id TEXT,
    CHECK ((state = 'processing') = (claim_token IS NOT NULL))
  );
  CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, seq)
    WHERE state IN (${sqlList(CLAIMABLE_STATES)});
  CREATE INDEX jobs_waiting_by_time ON jobs (run_at)
    WHERE state IN (${sqlList(CLAIMABLE_STATES)});
  CREATE INDEX jobs_by_state ON jobs (state, seq);

  CREATE TABLE job_attempts (
    seq INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE ON UPDATE CASCADE,
    attempt INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER NOT NULL,
    exit_code INTEGER,
    error TEXT,
    stdout BLOB NOT NULL,
    stderr BLOB NOT NULL,
    stdout_dropped INTEGER NOT NULL DEFAULT 0,
    stderr_dropped INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX job_attempts_by_job ON job_attempts (job_id, seq);

  CREATE TABLE config (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    threads INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    stop_requested INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  `,
  // 2: counts by state, so that `status` and `--drain` need not count a
  // million rows. Triggers count state changes and deletions; the store
  // counts inserts itself, once per enqueue, because a per-row trigger
  // tripled the cost of a bulk enqueue.
  `
  CREATE TABLE job_counts (
    state TEXT PRIMARY KEY CHECK (state IN (${sqlList(JOB_STATES)})),
    n INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO job_counts (state, n)
    SELECT column1, (SELECT count(*) FROM jobs WHERE state = column1)
    FROM (VALUES ${JOB_STATES.map((s) => `('${s}')`).join(", ")});
  CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE state = OLD.state;
  END;
  -- The worker process's start time as the OS tells it, so that a reused pid
  -- is not taken for a live worker.
  ALTER TABLE workers ADD COLUMN proc_start TEXT;
  CREATE INDEX jobs_by_worker ON jobs (worker_id) WHERE state = 'processing';
  CREATE TRIGGER jobs_count_update AFTER UPDATE OF state ON jobs
    WHEN OLD.state <> NEW.state BEGIN
    UPDATE job_counts SET n = n - 1 WHERE state = OLD.state;
    UPDATE job_counts SET n = n + 1 WHERE state = NEW.state;
  END;
  `,
];

/** The schema version a fully migrated database has. */
export const SCHEMA_VERSION = MIGRATIONS.length;
