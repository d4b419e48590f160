/**
 * The SQLite schema, as numbered migrations. Migration N takes a database
 * from `PRAGMA user_version` N-1 to N. Never edit a migration that has
 * shipped; add the next one.
 *
 * Each migration is literal SQL, frozen as it shipped: it reads no
 * constant of today's code (such as `JOB_STATES` in lib/states.ts), which
 * would change an old migration when the code moves on, and upgrade a
 * version-1 database to something else than a new one gets. So the state
 * lists below are spelled out, some lines are longer than the usual 100
 * columns (wrapping them would change the schema text stored in every
 * database), and a new state or index is a new migration. The tests pin
 * each migration's text (tests/sqlite_migrations_test.ts) and check that
 * the schema's CHECK and partial indexes agree with lib/states.ts, and that
 * there are as many as `SCHEMA_VERSION` in sqlite_open.ts says.
 *
 * @module
 */

/** The migrations in order; index 0 is migration 1. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    command TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'processing', 'completed', 'failed', 'dead')),
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
    WHERE state IN ('pending', 'failed');
  CREATE INDEX jobs_waiting_by_time ON jobs (run_at)
    WHERE state IN ('pending', 'failed');
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
    state TEXT PRIMARY KEY CHECK (state IN ('pending', 'processing', 'completed', 'failed', 'dead')),
    n INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO job_counts (state, n)
    SELECT column1, (SELECT count(*) FROM jobs WHERE state = column1)
    FROM (VALUES ('pending'), ('processing'), ('completed'), ('failed'), ('dead'));
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
  // 3: named queues (paused or not), jobs that run after others (the
  // `blocked` state), kill requests, output readable while a job runs, and
  // an index for metrics by time. A new state needs a new CHECK, and SQLite
  // cannot alter one: the jobs table is rebuilt (see migrate() in sqlite_open.ts,
  // which turns foreign keys off around migrations so the rebuild keeps attempts).
  `
  CREATE TABLE jobs_v3 (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL DEFAULT 'default',
    command TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('blocked', 'pending', 'processing', 'completed', 'failed', 'dead')),
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
    kill_request TEXT CHECK (kill_request IN ('retry', 'dead')),
    CHECK ((state = 'processing') = (claim_token IS NOT NULL))
  );
  INSERT INTO jobs_v3 (seq, id, command, state, attempts, max_retries, priority, run_at,
      created_at, updated_at, started_at, finished_at, exit_code, last_error, timeout_ms, cwd,
      claim_token, worker_id)
    SELECT seq, id, command, state, attempts, max_retries, priority, run_at,
      created_at, updated_at, started_at, finished_at, exit_code, last_error, timeout_ms, cwd,
      claim_token, worker_id
    FROM jobs;
  DROP TABLE jobs;
  DROP TABLE job_counts;
  ALTER TABLE jobs_v3 RENAME TO jobs;
  CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed');
  CREATE INDEX jobs_waiting_by_time ON jobs (queue, run_at)
    WHERE state IN ('pending', 'failed');
  CREATE INDEX jobs_by_state ON jobs (state, seq);
  CREATE INDEX jobs_by_queue ON jobs (queue, seq);
  CREATE INDEX jobs_by_worker ON jobs (worker_id) WHERE state = 'processing';

  -- Every queue a job was ever enqueued to or that was paused; paused_at is
  -- set while it is paused.
  CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    paused_at INTEGER
  ) WITHOUT ROWID;
  INSERT INTO queues (name) VALUES ('default');

  -- Counts by queue and state: status and --drain read these, never the rows.
  CREATE TABLE queue_counts (
    queue TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('blocked', 'pending', 'processing', 'completed', 'failed', 'dead')),
    n INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
  ) WITHOUT ROWID;
  INSERT INTO queue_counts (queue, state, n)
    SELECT queue, state, count(*) FROM jobs GROUP BY queue, state;
  CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
  END;
  CREATE TRIGGER jobs_count_update AFTER UPDATE OF state ON jobs
    WHEN OLD.state <> NEW.state BEGIN
    UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
    INSERT INTO queue_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
      ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
  END;

  -- The jobs a job runs after. depends_on is no foreign key: a completed
  -- dependency may be purged later without touching its dependents.
  CREATE TABLE job_dependencies (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE ON UPDATE CASCADE,
    depends_on TEXT NOT NULL,
    PRIMARY KEY (job_id, depends_on)
  ) WITHOUT ROWID;
  CREATE INDEX job_dependencies_by_dependency ON job_dependencies (depends_on);

  -- The latest output of a running job, rewritten while it runs so that
  -- logs --follow can show it; gone once the run ends.
  CREATE TABLE live_output (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE ON UPDATE CASCADE,
    claim_token TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    stdout BLOB NOT NULL,
    stderr BLOB NOT NULL,
    stdout_total INTEGER NOT NULL,
    stderr_total INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TRIGGER jobs_live_output_end AFTER UPDATE OF state ON jobs
    WHEN OLD.state = 'processing' BEGIN
    DELETE FROM live_output WHERE job_id = OLD.id;
  END;

  CREATE INDEX job_attempts_by_finish ON job_attempts (finished_at);
  -- The latest failures (top) without reading every successful run.
  CREATE INDEX job_attempts_failed ON job_attempts (seq) WHERE error IS NOT NULL;
  `,
  // 4: a dependency on a job that is deleted or purged is marked gone, so
  // that a later job that reuses its id is not taken for it (by retry, say),
  // while `show` can still say that the job ran after one since deleted.
  `
  ALTER TABLE job_dependencies ADD COLUMN gone INTEGER NOT NULL DEFAULT 0;
  CREATE TRIGGER jobs_gone_as_dependency AFTER DELETE ON jobs BEGIN
    UPDATE job_dependencies SET gone = 1 WHERE depends_on = OLD.id AND gone = 0;
  END;
  UPDATE job_dependencies SET gone = 1
    WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_dependencies.depends_on);
  `,
  // 5: leases on the database's clock. lease_clock keeps the latest
  // heartbeat commit and the time during which no heartbeat committed (a
  // stall); live_at is a worker's latest beat on that clock, stalls left
  // out. leader names the one worker process that does the upkeep.
  `
  ALTER TABLE workers ADD COLUMN live_at INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE lease_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    beat_at INTEGER NOT NULL,
    stalled_ms INTEGER NOT NULL
  );
  INSERT INTO lease_clock (id, beat_at, stalled_ms) VALUES (1, 0, 0);
  CREATE TABLE leader (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    worker_id TEXT NOT NULL
  );
  `,
  // 6: a tally of finished runs that outlives them, for the metrics' counters, which
  // must never go down when retention, purge or delete remove runs: by queue, success,
  // first run or retry, and duration bucket, kept by a trigger as each run is recorded
  // (in the transaction that records it), and started from the runs stored at the
  // upgrade. Bucket k holds the runs that lasted at most the k-th of 50, 100, 250, 500,
  // 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000, 3600000 ms; 13, longer ones;
  // -1, runs that never started. duration_ms sums the durations of the row's runs.
  `
  CREATE TABLE run_tally (
    queue TEXT NOT NULL,
    succeeded INTEGER NOT NULL,
    retry INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, succeeded, retry, bucket)
  ) WITHOUT ROWID;
  INSERT INTO run_tally (queue, succeeded, retry, bucket, n, duration_ms)
    SELECT j.queue, a.error IS NULL, a.attempt > 1,
      CASE WHEN a.started_at IS NULL THEN -1
      WHEN a.finished_at - a.started_at <= 50 THEN 0 WHEN a.finished_at - a.started_at <= 100 THEN 1
      WHEN a.finished_at - a.started_at <= 250 THEN 2 WHEN a.finished_at - a.started_at <= 500 THEN 3
      WHEN a.finished_at - a.started_at <= 1000 THEN 4 WHEN a.finished_at - a.started_at <= 2500 THEN 5
      WHEN a.finished_at - a.started_at <= 5000 THEN 6 WHEN a.finished_at - a.started_at <= 10000 THEN 7
      WHEN a.finished_at - a.started_at <= 30000 THEN 8 WHEN a.finished_at - a.started_at <= 60000 THEN 9
      WHEN a.finished_at - a.started_at <= 300000 THEN 10 WHEN a.finished_at - a.started_at <= 900000 THEN 11
      WHEN a.finished_at - a.started_at <= 3600000 THEN 12 ELSE 13 END,
      count(*), coalesce(sum(a.finished_at - a.started_at), 0)
    FROM job_attempts a JOIN jobs j ON j.id = a.job_id
    GROUP BY 1, 2, 3, 4;
  CREATE TRIGGER job_attempts_tally AFTER INSERT ON job_attempts BEGIN
    INSERT INTO run_tally (queue, succeeded, retry, bucket, n, duration_ms)
    VALUES ((SELECT queue FROM jobs WHERE id = NEW.job_id), NEW.error IS NULL, NEW.attempt > 1,
      CASE WHEN NEW.started_at IS NULL THEN -1
      WHEN NEW.finished_at - NEW.started_at <= 50 THEN 0 WHEN NEW.finished_at - NEW.started_at <= 100 THEN 1
      WHEN NEW.finished_at - NEW.started_at <= 250 THEN 2 WHEN NEW.finished_at - NEW.started_at <= 500 THEN 3
      WHEN NEW.finished_at - NEW.started_at <= 1000 THEN 4 WHEN NEW.finished_at - NEW.started_at <= 2500 THEN 5
      WHEN NEW.finished_at - NEW.started_at <= 5000 THEN 6 WHEN NEW.finished_at - NEW.started_at <= 10000 THEN 7
      WHEN NEW.finished_at - NEW.started_at <= 30000 THEN 8 WHEN NEW.finished_at - NEW.started_at <= 60000 THEN 9
      WHEN NEW.finished_at - NEW.started_at <= 300000 THEN 10 WHEN NEW.finished_at - NEW.started_at <= 900000 THEN 11
      WHEN NEW.finished_at - NEW.started_at <= 3600000 THEN 12 ELSE 13 END,
      1, coalesce(NEW.finished_at - NEW.started_at, 0))
    ON CONFLICT (queue, succeeded, retry, bucket)
      DO UPDATE SET n = n + 1, duration_ms = duration_ms + excluded.duration_ms;
  END;
  `,
  // 7: job environments and unique jobs. env is the JSON object of the
  // variables a job sets (NULL: none). unique_key: at most one job of a queue
  // with a key is waiting or running (the unique index, over the unfinished
  // states of lib/states.ts); jobs_by_unique_key finds a key's holders,
  // finished ones by finish time (lib/store/rules.ts holdsUniqueKey).
  `
  ALTER TABLE jobs ADD COLUMN env TEXT;
  ALTER TABLE jobs ADD COLUMN unique_key TEXT;
  CREATE UNIQUE INDEX jobs_unique_unfinished ON jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('blocked', 'pending', 'failed', 'processing');
  CREATE INDEX jobs_by_unique_key ON jobs (queue, unique_key, finished_at)
    WHERE unique_key IS NOT NULL;
  `,
  // 8: text search in job ids and commands (the dashboard's jobs page): an FTS5 index of
  // their trigrams, case as written, holding no copy of the text (contentless; rows
  // deleted by rowid). It is filled after jobs are stored, not as they are, so that an
  // enqueue pays nothing for it (indexing cost a bulk enqueue four fifths of its speed):
  // job_text_indexed.seq says through which seq every job is in it; the jobs above are
  // indexed by the leader's upkeep and by a search that finds many, and read one by one
  // until then. A deleted job leaves the index at once; deleting the job at that mark
  // moves it down to the newest job below, so that a new job (whose seq is the largest
  // stored plus one) is always above it.
  `
  CREATE VIRTUAL TABLE job_text USING fts5(id, command, tokenize = 'trigram case_sensitive 1', content = '', contentless_delete = 1);
  CREATE TABLE job_text_indexed (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
  );
  INSERT INTO job_text_indexed (id, seq) VALUES (1, 0);
  CREATE TRIGGER jobs_text_forget AFTER DELETE ON jobs
    WHEN OLD.seq <= (SELECT seq FROM job_text_indexed WHERE id = 1) BEGIN
    DELETE FROM job_text WHERE rowid = OLD.seq;
    UPDATE job_text_indexed SET seq = coalesce((SELECT max(seq) FROM jobs WHERE seq < OLD.seq), 0)
      WHERE id = 1 AND seq = OLD.seq;
  END;
  `,
  // 9: recurring schedules (lib/schedules.ts). A firing moves next_fire_at by a
  // conditional UPDATE in the transaction that enqueues its job, so that one firer
  // applies it; created_at tells a schedule from one replaced under the same name.
  `
  CREATE TABLE schedules (
    name TEXT PRIMARY KEY,
    cron TEXT,
    time_zone TEXT,
    every_ms INTEGER CHECK (every_ms IS NULL OR every_ms > 0),
    overlap TEXT NOT NULL CHECK (overlap IN ('skip', 'allow')),
    catch_up TEXT NOT NULL CHECK (catch_up IN ('latest', 'none')),
    job TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    paused_at INTEGER,
    next_fire_at INTEGER,
    last_fire_at INTEGER,
    last_job_id TEXT,
    skipped INTEGER NOT NULL DEFAULT 0,
    last_skip_at INTEGER,
    CHECK ((cron IS NULL) = (every_ms IS NOT NULL) AND (cron IS NULL) = (time_zone IS NULL))
  ) WITHOUT ROWID;
  `,
  // 10: queue limits. concurrency caps the queue's jobs running at once (counted from
  // queue_counts inside the claim's write transaction); rate_limit starts at most per
  // rate_period_ms, over a sliding window: queue_starts is a ring of the queue's latest
  // rate_limit starts, rate_starts how many it has taken, so the slot the next start
  // overwrites holds the start rate_limit starts ago.
  `
  ALTER TABLE queues ADD COLUMN concurrency INTEGER CHECK (concurrency IS NULL OR concurrency > 0);
  ALTER TABLE queues ADD COLUMN rate_limit INTEGER CHECK (rate_limit IS NULL OR rate_limit > 0);
  ALTER TABLE queues ADD COLUMN rate_period_ms INTEGER CHECK (rate_period_ms IS NULL OR rate_period_ms > 0);
  ALTER TABLE queues ADD COLUMN rate_starts INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE queue_starts (
    queue TEXT NOT NULL,
    slot INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    PRIMARY KEY (queue, slot)
  ) WITHOUT ROWID;
  `,
];
