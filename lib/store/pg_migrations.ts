/**
 * The PostgreSQL schema, as numbered migrations in step with SQLite's
 * (lib/store/sqlite_migrations.ts): version N means the same tables and
 * rules on both. PostgreSQL support began when SQLite's schema was at
 * version 5, so its first migration makes version 5 at once; a later change
 * is migration 6 on both. Never edit a migration that has shipped; add the
 * next one. Like SQLite's, each is literal SQL that reads no constant of
 * today's code (the state lists are spelled out), and the tests pin its text.
 *
 * The tables live in the queue's own schema (`queuectl` unless the URL's
 * `?schema=` names another), found through the connection's search path.
 * Times are epoch ms in `bigint` columns, as in SQLite.
 * Counts a job spec sets (`max_retries`, `priority`) and the attempt
 * numbers that follow them are `bigint` too: SQLite's integers are 64-bit,
 * and a spec may ask for any whole number up to 2^53 - 1.
 *
 * Choices that keep tables healthy under churn, where every job is
 * inserted, updated three or four times and deleted by retention:
 * - `jobs` has fillfactor 80, so that most updates find room in their page
 *   and stay heap-only (no new index entries) when no indexed column
 *   changes; autovacuum is made more eager on it (scale factor 0.05) than
 *   the default 0.2, so dead rows are reclaimed before pages bloat.
 * - Counts by queue and state are rows of deltas written by statement
 *   triggers (`job_count_deltas`): inserts only, so concurrent claims never
 *   wait on one counter row nor deadlock on two, and a bulk enqueue adds one
 *   row per queue and state, not one per job. The leader folds them
 *   together during upkeep.
 * - `live_output` is rewritten about once a second per running job: its
 *   rows are small and deleted when the run ends.
 *
 * @module
 */

/** The schema version PostgreSQL's first migration makes (SQLite's at the time). */
export const FIRST_PG_VERSION = 5;

/** The migrations in order; index 0 makes version {@linkcode FIRST_PG_VERSION}. */
export const PG_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE schema_version (
    id integer PRIMARY KEY CHECK (id = 1),
    version integer NOT NULL
  );

  CREATE TABLE jobs (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    queue text NOT NULL DEFAULT 'default',
    command text NOT NULL,
    state text NOT NULL CHECK (state IN ('blocked', 'pending', 'processing', 'completed', 'failed', 'dead')),
    attempts bigint NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_retries bigint NOT NULL CHECK (max_retries >= 0),
    priority bigint NOT NULL DEFAULT 0,
    run_at bigint NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    started_at bigint,
    finished_at bigint,
    exit_code integer,
    last_error text,
    timeout_ms bigint CHECK (timeout_ms IS NULL OR timeout_ms > 0),
    cwd text NOT NULL,
    claim_token text,
    worker_id text,
    kill_request text CHECK (kill_request IN ('retry', 'dead')),
    CHECK ((state = 'processing') = (claim_token IS NOT NULL))
  ) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05);
  CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed');
  CREATE INDEX jobs_waiting_by_time ON jobs (queue, run_at)
    WHERE state IN ('pending', 'failed');
  CREATE INDEX jobs_by_state ON jobs (state, seq);
  CREATE INDEX jobs_by_queue ON jobs (queue, seq);
  CREATE INDEX jobs_by_worker ON jobs (worker_id) WHERE state = 'processing';

  CREATE TABLE job_attempts (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE ON UPDATE CASCADE,
    attempt bigint NOT NULL,
    started_at bigint,
    finished_at bigint NOT NULL,
    exit_code integer,
    error text,
    stdout bytea NOT NULL,
    stderr bytea NOT NULL,
    stdout_dropped bigint NOT NULL DEFAULT 0,
    stderr_dropped bigint NOT NULL DEFAULT 0
  );
  CREATE INDEX job_attempts_by_job ON job_attempts (job_id, seq);
  CREATE INDEX job_attempts_by_finish ON job_attempts (finished_at);
  CREATE INDEX job_attempts_failed ON job_attempts (seq) WHERE error IS NOT NULL;

  CREATE TABLE config (
    key text PRIMARY KEY,
    value text NOT NULL
  );

  CREATE TABLE workers (
    id text PRIMARY KEY,
    pid integer NOT NULL,
    host text NOT NULL,
    threads integer NOT NULL,
    started_at bigint NOT NULL,
    heartbeat_at bigint NOT NULL,
    stop_requested boolean NOT NULL DEFAULT false,
    proc_start text,
    live_at bigint NOT NULL DEFAULT 0
  );

  CREATE TABLE queues (
    name text PRIMARY KEY,
    paused_at bigint
  );
  INSERT INTO queues (name) VALUES ('default');

  CREATE TABLE job_count_deltas (
    queue text NOT NULL,
    state text NOT NULL,
    n bigint NOT NULL
  );
  CREATE FUNCTION count_inserted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO job_count_deltas (queue, state, n)
      SELECT queue, state, count(*) FROM new_jobs GROUP BY queue, state;
    RETURN NULL;
  END $$;
  CREATE FUNCTION count_updated_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO job_count_deltas (queue, state, n)
      SELECT queue, state, sum(n) FROM (
        SELECT o.queue, o.state, -1 AS n FROM old_jobs o JOIN new_jobs j ON j.seq = o.seq
          WHERE o.state <> j.state
        UNION ALL
        SELECT j.queue, j.state, 1 FROM old_jobs o JOIN new_jobs j ON j.seq = o.seq
          WHERE o.state <> j.state
      ) moves GROUP BY queue, state;
    RETURN NULL;
  END $$;
  CREATE FUNCTION count_deleted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO job_count_deltas (queue, state, n)
      SELECT queue, state, -count(*) FROM old_jobs GROUP BY queue, state;
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_jobs();
  CREATE TRIGGER jobs_count_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION count_updated_jobs();
  CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_jobs FOR EACH STATEMENT EXECUTE FUNCTION count_deleted_jobs();

  CREATE TABLE job_dependencies (
    job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE ON UPDATE CASCADE,
    depends_on text NOT NULL,
    gone boolean NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, depends_on)
  );
  CREATE INDEX job_dependencies_by_dependency ON job_dependencies (depends_on);
  CREATE FUNCTION mark_gone_dependencies() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    UPDATE job_dependencies d SET gone = true
      FROM old_jobs o WHERE d.depends_on = o.id AND NOT d.gone;
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_gone_as_dependency AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_jobs FOR EACH STATEMENT EXECUTE FUNCTION mark_gone_dependencies();

  CREATE TABLE live_output (
    job_id text PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE ON UPDATE CASCADE,
    claim_token text NOT NULL,
    attempt bigint NOT NULL,
    stdout bytea NOT NULL,
    stderr bytea NOT NULL,
    stdout_total bigint NOT NULL,
    stderr_total bigint NOT NULL,
    updated_at bigint NOT NULL
  );
  CREATE FUNCTION end_live_output() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    DELETE FROM live_output WHERE job_id = OLD.id;
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_live_output_end AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN (OLD.state = 'processing') EXECUTE FUNCTION end_live_output();

  CREATE TABLE lease_clock (
    id integer PRIMARY KEY CHECK (id = 1),
    beat_at bigint NOT NULL,
    stalled_ms bigint NOT NULL
  );
  INSERT INTO lease_clock (id, beat_at, stalled_ms) VALUES (1, 0, 0);
  CREATE TABLE leader (
    id integer PRIMARY KEY CHECK (id = 1),
    worker_id text NOT NULL
  );

  -- Waiters (wait, logs --follow, top) learn that something changed from a
  -- notice on the queue's change channel, sent at commit by any write to
  -- these tables (one per transaction: the server folds identical notices).
  CREATE FUNCTION announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    -- A statement that changed no row (an empty claim, say) is no news.
    IF EXISTS (SELECT 1 FROM changed_rows) THEN
      PERFORM pg_notify('queuectl.' || current_schema() || '.changes', '');
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION announce_change();
  CREATE TRIGGER jobs_updated AFTER UPDATE ON jobs
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION announce_change();
  CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION announce_change();
  CREATE TRIGGER live_output_inserted AFTER INSERT ON live_output
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION announce_change();
  CREATE TRIGGER live_output_updated AFTER UPDATE ON live_output
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION announce_change();
  CREATE TRIGGER live_output_deleted AFTER DELETE ON live_output
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION announce_change();
  CREATE TRIGGER queues_inserted AFTER INSERT ON queues
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION announce_change();
  CREATE TRIGGER queues_updated AFTER UPDATE ON queues
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION announce_change();
  CREATE TRIGGER queues_deleted AFTER DELETE ON queues
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION announce_change();
  CREATE TRIGGER config_inserted AFTER INSERT ON config
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION announce_change();
  CREATE TRIGGER config_updated AFTER UPDATE ON config
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION announce_change();
  CREATE TRIGGER config_deleted AFTER DELETE ON config
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION announce_change();

  CREATE FUNCTION now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint
  $$;
  `,
  // 6 (as SQLite's 6): a tally of finished runs that outlives them, for the metrics'
  // counters, by queue, success, first run or retry, and duration bucket. Rows of deltas,
  // like job_count_deltas: a statement trigger adds one row per group of the runs a
  // statement records, so concurrent outcomes never wait on one row; the leader folds them
  // during upkeep. width_bucket over d - 1 counts the bounds below a duration of d whole
  // ms: bucket k holds the runs that lasted at most the k-th bound; -1, runs never started.
  `
  CREATE TABLE run_tally (
    queue text NOT NULL,
    succeeded boolean NOT NULL,
    retry boolean NOT NULL,
    bucket integer NOT NULL,
    n bigint NOT NULL,
    duration_ms bigint NOT NULL
  );
  INSERT INTO run_tally (queue, succeeded, retry, bucket, n, duration_ms)
    SELECT j.queue, a.error IS NULL, a.attempt > 1,
      coalesce(width_bucket(a.finished_at - a.started_at - 1, ARRAY[50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000, 3600000]::bigint[]), -1),
      count(*), coalesce(sum(a.finished_at - a.started_at), 0)
    FROM job_attempts a JOIN jobs j ON j.id = a.job_id
    GROUP BY 1, 2, 3, 4;
  CREATE FUNCTION tally_runs() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO run_tally (queue, succeeded, retry, bucket, n, duration_ms)
      SELECT j.queue, a.error IS NULL, a.attempt > 1,
        coalesce(width_bucket(a.finished_at - a.started_at - 1, ARRAY[50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000, 3600000]::bigint[]), -1),
        count(*), coalesce(sum(a.finished_at - a.started_at), 0)
      FROM new_attempts a JOIN jobs j ON j.id = a.job_id
      GROUP BY 1, 2, 3, 4;
    RETURN NULL;
  END $$;
  CREATE TRIGGER job_attempts_tally AFTER INSERT ON job_attempts
    REFERENCING NEW TABLE AS new_attempts FOR EACH STATEMENT EXECUTE FUNCTION tally_runs();
  `,
  // 7 (as SQLite's 7): job environments (env, JSON text of the variables a job
  // sets; NULL: none) and unique jobs: at most one job of a queue with a key is
  // waiting or running (the unique index, over the unfinished states of
  // lib/states.ts); jobs_by_unique_key finds a key's holders, finished ones by
  // finish time. Enqueues of one key are serialized by an advisory lock on the
  // key (pg_enqueue.ts), which no table needs.
  `
  ALTER TABLE jobs ADD COLUMN env text;
  ALTER TABLE jobs ADD COLUMN unique_key text;
  CREATE UNIQUE INDEX jobs_unique_unfinished ON jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('blocked', 'pending', 'failed', 'processing');
  CREATE INDEX jobs_by_unique_key ON jobs (queue, unique_key, finished_at)
    WHERE unique_key IS NOT NULL;
  `,
  // 8 (as SQLite's 8): text search in job ids and commands, through pg_trgm's trigram
  // operator class in a GIN index, which answers LIKE '%text%' (case as written: the
  // index narrows, the row decides). pg_trgm is a trusted extension (PostgreSQL 13+): a
  // user who may create objects in the database may install it. It goes to the schema
  // public, shared by every queue of the database, so that dropping one queue's schema
  // never drops it under another's index. Where it cannot be installed (not shipped, or
  // no right to), the migration makes no index and searches read jobs one by one.
  `
  DO $migration$
  DECLARE
    trgm_schema text;
  BEGIN
    SELECT n.nspname INTO trgm_schema FROM pg_extension e
      JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NULL THEN
      BEGIN
        CREATE EXTENSION pg_trgm SCHEMA public;
      EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm not installed (%): text search reads jobs one by one', SQLERRM;
      END;
      SELECT n.nspname INTO trgm_schema FROM pg_extension e
        JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    END IF;
    IF trgm_schema IS NOT NULL THEN
      EXECUTE format('CREATE INDEX jobs_text ON jobs USING gin (id %1$I.gin_trgm_ops, command %1$I.gin_trgm_ops)', trgm_schema);
    END IF;
  END $migration$;
  `,
  // 9 (as SQLite's 9): recurring schedules (lib/schedules.ts). A firing moves
  // next_fire_at by a conditional UPDATE in the transaction that enqueues its job, so
  // that one firer applies it; created_at tells a schedule from one replaced since.
  `
  CREATE TABLE schedules (
    name text PRIMARY KEY,
    cron text,
    time_zone text,
    every_ms bigint CHECK (every_ms IS NULL OR every_ms > 0),
    overlap text NOT NULL CHECK (overlap IN ('skip', 'allow')),
    catch_up text NOT NULL CHECK (catch_up IN ('latest', 'none')),
    job text NOT NULL,
    created_at bigint NOT NULL,
    paused_at bigint,
    next_fire_at bigint,
    last_fire_at bigint,
    last_job_id text,
    skipped bigint NOT NULL DEFAULT 0,
    last_skip_at bigint,
    CHECK ((cron IS NULL) = (every_ms IS NOT NULL) AND (cron IS NULL) = (time_zone IS NULL))
  );
  `,
  // 10 (as SQLite's 10): queue limits. concurrency caps the queue's jobs running at once
  // (counted through jobs_running by a claim that holds the queue's row, see queue_has_room);
  // rate_limit starts at most per rate_period_ms, over a sliding window: queue_starts is a
  // ring of the queue's latest rate_limit starts, rate_starts how many it has taken.
  `
  ALTER TABLE queues ADD COLUMN concurrency integer CHECK (concurrency IS NULL OR concurrency > 0);
  ALTER TABLE queues ADD COLUMN rate_limit integer CHECK (rate_limit IS NULL OR rate_limit > 0);
  ALTER TABLE queues ADD COLUMN rate_period_ms bigint CHECK (rate_period_ms IS NULL OR rate_period_ms > 0);
  ALTER TABLE queues ADD COLUMN rate_starts bigint NOT NULL DEFAULT 0;
  CREATE TABLE queue_starts (
    queue text NOT NULL,
    slot integer NOT NULL,
    started_at bigint NOT NULL,
    PRIMARY KEY (queue, slot)
  );
  CREATE INDEX jobs_running ON jobs (queue) WHERE state = 'processing';
  -- Whether a queue is within its limits at "at". VOLATILE plpgsql: its query takes a snapshot
  -- of its own, so a claim that calls it once it holds the queue's row sees every claim and
  -- outcome committed by the row's previous holders, which its own snapshot may not.
  CREATE FUNCTION queue_has_room(queue_name text, at bigint) RETURNS boolean
    LANGUAGE plpgsql VOLATILE AS $$
  BEGIN
    RETURN (
      SELECT (q.concurrency IS NULL OR (
          SELECT count(*) FROM jobs j WHERE j.queue = q.name AND j.state = 'processing'
        ) < q.concurrency)
        AND (q.rate_limit IS NULL OR NOT EXISTS (
          SELECT 1 FROM queue_starts s
          WHERE s.queue = q.name AND s.slot = q.rate_starts % q.rate_limit
            AND s.started_at > at - q.rate_period_ms
        ))
      FROM queues q WHERE q.name = queue_name
    );
  END $$;
  `,
];

/** The schema version a fully migrated PostgreSQL schema has. */
export const PG_SCHEMA_VERSION = FIRST_PG_VERSION + PG_MIGRATIONS.length - 1;
