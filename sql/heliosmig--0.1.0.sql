-- heliosmig 0.1.0: catalog, state machine guard and SQL API.
\echo Use "CREATE EXTENSION heliosmig" to load this file. \quit

------------------------------------------------------------------------------
-- Catalog
------------------------------------------------------------------------------

-- One row per migration. Written only by heliosmig's functions (as the
-- extension's owner); readable by everyone, filtered by row security to the
-- migrations of tables a role owns (superusers and pg_monitor see all).
CREATE TABLE heliosmig.helios_migrations (
    migration_id         uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    state                text NOT NULL DEFAULT 'CREATED'
        CHECK (state IN ('CREATED', 'PLANNING', 'PREPARING', 'COPYING', 'SYNCHRONIZING',
                         'VALIDATING', 'READY', 'CUTOVER', 'COMPLETED', 'PAUSED',
                         'ROLLING_BACK', 'ROLLED_BACK', 'FAILED')),
    paused_from          text,
    table_oid            oid NOT NULL,
    table_name           text NOT NULL,
    operation            text NOT NULL,
    operation_class      text NOT NULL
        CHECK (operation_class IN ('metadata', 'native_concurrent', 'rewrite', 'offline')),
    ddl                  text NOT NULL,
    statement            text NOT NULL,
    search_path          text NOT NULL,
    mode                 text NOT NULL CHECK (mode IN ('online', 'offline')),
    chunk_size           integer NOT NULL CHECK (chunk_size BETWEEN 1 AND 1000000),
    throttle_io          integer NOT NULL CHECK (throttle_io BETWEEN 1 AND 100),
    shadow_traffic       boolean NOT NULL,
    auto_cutover         boolean NOT NULL,
    cutover_requested    boolean NOT NULL DEFAULT false,
    cutover_force        boolean NOT NULL DEFAULT false,
    lock_mode            text NOT NULL,
    lock_attempts        integer NOT NULL DEFAULT 0,
    lock_wait            interval NOT NULL DEFAULT '0',
    rows_total           bigint,
    rows_copied          bigint NOT NULL DEFAULT 0,
    phase                text,
    object_name          text,
    -- rewrite migrations: the replication slot that captures the table's
    -- changes, the WAL position up to which they are applied to the ghost
    -- (written in the same transaction as the ghost rows), and the table that
    -- keeps the old storage after cutover
    slot_name            text,
    applied_lsn          pg_lsn,
    retained_table       text,
    -- the ghost's indexes, built after the copy: the primary key's CREATE
    -- UNIQUE INDEX and ADD CONSTRAINT ... USING INDEX first, then the others
    ghost_indexes        text[],
    worker_pid           integer,
    error                text,
    rollback_feasibility text NOT NULL DEFAULT 'SAFE'
        CHECK (rollback_feasibility IN ('SAFE', 'RISKY', 'IMPOSSIBLE')),
    started_by           regrole NOT NULL,
    -- the role that logged in (started_by may be a NOLOGIN role reached
    -- with SET ROLE): workers connect as it, then act as started_by
    login_role           regrole NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    updated_at           timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at          timestamptz,
    -- when each state was (last) entered: {"PLANNING": "2026-...", ...}
    state_entered_at     jsonb NOT NULL DEFAULT '{}'
);

-- One migration per table at a time, enforced even against concurrent starts.
CREATE UNIQUE INDEX helios_migrations_one_active_per_table
    ON heliosmig.helios_migrations (table_oid)
    WHERE state NOT IN ('COMPLETED', 'ROLLED_BACK', 'FAILED');

CREATE INDEX helios_migrations_created_at ON heliosmig.helios_migrations (created_at);

-- Every transition and notable event, in order.
CREATE TABLE heliosmig.helios_migration_logs (
    log_id       bigserial PRIMARY KEY,
    migration_id uuid NOT NULL REFERENCES heliosmig.helios_migrations ON DELETE CASCADE,
    logged_at    timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    level        text NOT NULL CHECK (level IN ('INFO', 'WARNING', 'ERROR')),
    event        text NOT NULL,
    from_state   text,
    to_state     text,
    message      text NOT NULL,
    details      jsonb
);

CREATE INDEX helios_migration_logs_migration ON heliosmig.helios_migration_logs (migration_id, log_id);

-- The steps of a native-concurrent migration, planned when it starts and run
-- in order by its worker; undo_sql removes what a step created (rollback,
-- failure). A step is idempotent, so a worker restarted after a crash
-- repeats the step it was in.
CREATE TABLE heliosmig.helios_migration_steps (
    migration_id uuid NOT NULL REFERENCES heliosmig.helios_migrations ON DELETE CASCADE,
    step_no      integer NOT NULL,
    state        text NOT NULL CHECK (state IN ('PREPARING', 'VALIDATING', 'CUTOVER')),
    kind         text NOT NULL
        CHECK (kind IN ('build_index', 'check_index', 'add_constraint', 'validate', 'ddl')),
    sql          text NOT NULL,
    object_name  text,
    lock_mode    text NOT NULL,
    undo_sql     text,
    undo_concurrently boolean NOT NULL DEFAULT false,
    description  text NOT NULL,
    started_at   timestamptz,
    done_at      timestamptz,
    PRIMARY KEY (migration_id, step_no)
);

-- The chunks a rewrite migration has copied, in key order: chunk n holds the
-- keys above chunk n-1's last key up to its own (the first is open below, the
-- final one, whose last_key is NULL, open above), read under the snapshot
-- recorded here. A captured change to a key is applied to the ghost only if
-- its transaction is not visible in that snapshot.
CREATE TABLE heliosmig.helios_migration_chunks (
    migration_id  uuid NOT NULL REFERENCES heliosmig.helios_migrations ON DELETE CASCADE,
    chunk_no      integer NOT NULL,
    last_key      text[],
    rows_copied   integer NOT NULL,
    snapshot_xmin bigint NOT NULL,
    snapshot_xmax bigint NOT NULL,
    snapshot_xip  bigint[] NOT NULL,
    -- a single key re-read under its own snapshot (last_key is that key)
    single_key    boolean NOT NULL DEFAULT false,
    copied_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (migration_id, chunk_no)
);

-- Keep migration history across pg_dump / restore.
SELECT pg_catalog.pg_extension_config_dump('heliosmig.helios_migrations', '');
SELECT pg_catalog.pg_extension_config_dump('heliosmig.helios_migration_logs', '');
SELECT pg_catalog.pg_extension_config_dump('heliosmig.helios_migration_logs_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('heliosmig.helios_migration_steps', '');

------------------------------------------------------------------------------
-- State machine guard: only legal transitions, whoever writes the row.
------------------------------------------------------------------------------

CREATE FUNCTION heliosmig.is_legal_transition(from_state text, to_state text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'heliosmig_is_legal_transition'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION heliosmig.enforce_transition()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state <> 'CREATED' THEN
            RAISE EXCEPTION 'a migration must start in state CREATED, not %', NEW.state
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.state IS DISTINCT FROM OLD.state THEN
        IF NOT heliosmig.is_legal_transition(OLD.state, NEW.state)
           OR (OLD.state = 'PAUSED' AND NEW.state NOT IN ('ROLLING_BACK', 'FAILED')
               AND NEW.state IS DISTINCT FROM OLD.paused_from) THEN
            RAISE EXCEPTION 'illegal migration state transition % -> %', OLD.state, NEW.state
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('migration %s', OLD.migration_id);
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER enforce_transition
    BEFORE INSERT OR UPDATE ON heliosmig.helios_migrations
    FOR EACH ROW EXECUTE FUNCTION heliosmig.enforce_transition();

------------------------------------------------------------------------------
-- Who sees what
------------------------------------------------------------------------------

REVOKE ALL ON heliosmig.helios_migrations, heliosmig.helios_migration_logs,
              heliosmig.helios_migration_steps, heliosmig.helios_migration_chunks FROM PUBLIC;
GRANT SELECT ON heliosmig.helios_migrations, heliosmig.helios_migration_logs,
                heliosmig.helios_migration_steps, heliosmig.helios_migration_chunks TO PUBLIC;
GRANT USAGE ON SCHEMA heliosmig TO PUBLIC;

-- A migration is visible to the owner of its table, pg_monitor and superusers.
CREATE FUNCTION heliosmig.can_see_table(table_oid oid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.pg_has_role(current_user, 'pg_monitor', 'USAGE')
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                    WHERE c.oid = table_oid
                      AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE'))
$$;

ALTER TABLE heliosmig.helios_migrations ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_table_owner ON heliosmig.helios_migrations
    FOR SELECT USING (heliosmig.can_see_table(table_oid));

ALTER TABLE heliosmig.helios_migration_steps ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_table_owner ON heliosmig.helios_migration_steps
    FOR SELECT USING (EXISTS (SELECT 1 FROM heliosmig.helios_migrations m
                               WHERE m.migration_id = helios_migration_steps.migration_id));

ALTER TABLE heliosmig.helios_migration_chunks ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_table_owner ON heliosmig.helios_migration_chunks
    FOR SELECT USING (EXISTS (SELECT 1 FROM heliosmig.helios_migrations m
                               WHERE m.migration_id = helios_migration_chunks.migration_id));

ALTER TABLE heliosmig.helios_migration_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_table_owner ON heliosmig.helios_migration_logs
    FOR SELECT USING (EXISTS (SELECT 1 FROM heliosmig.helios_migrations m
                               WHERE m.migration_id = helios_migration_logs.migration_id));

------------------------------------------------------------------------------
-- API: start, control, explain
------------------------------------------------------------------------------

CREATE FUNCTION heliosmig.start(
    ddl            text,
    mode           text    DEFAULT 'online',
    chunk_size     integer DEFAULT 10000,
    throttle_io    integer DEFAULT 100,
    shadow_traffic boolean DEFAULT false,
    auto_cutover   boolean DEFAULT true)
RETURNS uuid
AS 'MODULE_PATHNAME', 'heliosmig_start'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION heliosmig.pause(migration_id uuid)
RETURNS text
AS 'MODULE_PATHNAME', 'heliosmig_pause'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION heliosmig.resume(migration_id uuid)
RETURNS text
AS 'MODULE_PATHNAME', 'heliosmig_resume'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION heliosmig.rollback(migration_id uuid)
RETURNS text
AS 'MODULE_PATHNAME', 'heliosmig_rollback'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION heliosmig.cutover(migration_id uuid, force boolean DEFAULT false)
RETURNS text
AS 'MODULE_PATHNAME', 'heliosmig_cutover'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION heliosmig.explain(
    ddl text,
    OUT table_name      text,
    OUT operation       text,
    OUT operation_class text,
    OUT runs_online     boolean,
    OUT copies_data     boolean,
    OUT lock_mode       text,
    OUT reason          text,
    OUT steps           text[])
RETURNS record
AS 'MODULE_PATHNAME', 'heliosmig_explain'
LANGUAGE C STRICT VOLATILE;

------------------------------------------------------------------------------
-- Monitoring: the spec's SHOW MIGRATIONS / SHOW MIGRATION
------------------------------------------------------------------------------

CREATE FUNCTION heliosmig.format_progress(m heliosmig.helios_migrations)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN m.operation_class = 'metadata' THEN
            CASE WHEN m.state = 'COMPLETED' THEN '100% (no data copy)' ELSE '0% (no data copy)' END
        WHEN m.operation_class = 'offline' THEN
            CASE WHEN m.state = 'COMPLETED' THEN '100% (ran offline)' ELSE '0% (runs offline)' END
        WHEN m.operation_class = 'native_concurrent' AND m.state NOT IN ('COMPLETED', 'ROLLED_BACK', 'FAILED') THEN
            coalesce((SELECT CASE
                          WHEN p.tuples_total > 0 THEN
                              format('%s%% (%s/%s rows, %s)',
                                     least(100, floor(100.0 * p.tuples_done / p.tuples_total))::int,
                                     p.tuples_done, p.tuples_total, p.phase)
                          WHEN p.blocks_total > 0 THEN
                              format('%s%% (%s/%s blocks, %s)',
                                     least(100, floor(100.0 * p.blocks_done / p.blocks_total))::int,
                                     p.blocks_done, p.blocks_total, p.phase)
                          ELSE format('0%% (%s)', p.phase)
                      END
                        FROM pg_catalog.pg_stat_progress_create_index p
                       WHERE p.pid = m.worker_pid),
                     format('0%% (%s)', coalesce(m.phase, lower(m.state))))
        WHEN m.rows_total IS NULL OR m.rows_total = 0 THEN
            CASE WHEN m.state = 'COMPLETED' THEN '100%'
                 WHEN m.operation_class = 'rewrite' THEN format('? (%s rows copied)', m.rows_copied)
                 ELSE '0%' END
        ELSE format('%s%% (%s/%s rows%s%s)',
                    least(100, floor(100.0 * m.rows_copied / m.rows_total))::int,
                    m.rows_copied, m.rows_total,
                    -- copy rate while copying
                    CASE WHEN m.state = 'COPYING' AND m.state_entered_at ? 'COPYING' THEN
                        format(', %s rows/s', round(m.rows_copied / greatest(0.001, extract(epoch FROM
                            clock_timestamp() - (m.state_entered_at->>'COPYING')::timestamptz)))::bigint)
                    ELSE '' END,
                    -- a paused rewrite still holds its slot, which keeps WAL
                    CASE WHEN m.state = 'PAUSED' AND m.slot_name IS NOT NULL THEN
                        coalesce((SELECT format(', paused: replication slot %s keeps %s of WAL',
                                                r.slot_name,
                                                pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(),
                                                                               r.restart_lsn)))
                                    FROM pg_catalog.pg_replication_slots r
                                   WHERE r.slot_name = m.slot_name), '')
                    ELSE '' END)
    END
$$;

CREATE FUNCTION heliosmig.format_rollback(m heliosmig.helios_migrations)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN m.state = 'ROLLED_BACK' THEN 'Done (rolled back)'
        WHEN m.state = 'FAILED' THEN 'Not needed (the table was left unchanged)'
        ELSE CASE m.rollback_feasibility
        WHEN 'SAFE' THEN 'Available'
        WHEN 'RISKY' THEN 'Risky (within cutover window)'
        ELSE 'Not available (create an inverse migration)'
        END
    END
$$;

CREATE FUNCTION heliosmig.show_migrations(only_active boolean DEFAULT false)
RETURNS TABLE (
    migration_id uuid,
    table_name   text,
    operation    text,
    status       text,
    progress     text,
    elapsed      interval,
    remaining    interval,
    rollback     text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.migration_id, m.table_name, m.operation, m.state,
           heliosmig.format_progress(m),
           date_trunc('second', coalesce(m.finished_at, clock_timestamp()) - m.created_at),
           CASE
               WHEN m.state IN ('COMPLETED', 'ROLLED_BACK', 'FAILED') THEN interval '0'
               WHEN m.rows_total > 0 AND m.rows_copied > 0 THEN
                   date_trunc('second', (clock_timestamp() - m.created_at)
                              * ((m.rows_total - least(m.rows_copied, m.rows_total))::float8
                                 / m.rows_copied))
           END,
           heliosmig.format_rollback(m)
      FROM heliosmig.helios_migrations m
     WHERE NOT only_active OR m.state NOT IN ('COMPLETED', 'ROLLED_BACK', 'FAILED')
     ORDER BY m.state IN ('COMPLETED', 'ROLLED_BACK', 'FAILED'), m.created_at DESC
$$;

CREATE FUNCTION heliosmig.show_migration(id uuid)
RETURNS TABLE (
    migration_id         uuid,
    table_name           text,
    operation            text,
    status               text,
    progress             text,
    elapsed              interval,
    remaining            interval,
    rollback             text,
    operation_class      text,
    mode                 text,
    chunk_size           integer,
    throttle_io          integer,
    shadow_traffic       boolean,
    auto_cutover         boolean,
    lock_mode            text,
    lock_attempts        integer,
    lock_wait            interval,
    rollback_feasibility text,
    error                text,
    created_at           timestamptz,
    finished_at          timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT s.migration_id, s.table_name, s.operation, s.status, s.progress, s.elapsed,
           s.remaining, s.rollback, m.operation_class, m.mode, m.chunk_size, m.throttle_io,
           m.shadow_traffic, m.auto_cutover, m.lock_mode, m.lock_attempts, m.lock_wait,
           m.rollback_feasibility, m.error, m.created_at, m.finished_at
      FROM heliosmig.show_migrations() s
      JOIN heliosmig.helios_migrations m USING (migration_id)
     WHERE s.migration_id = id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'migration % does not exist', id
            USING ERRCODE = 'undefined_object',
                  HINT = 'heliosmig.show_migrations() lists the migrations you can see.';
    END IF;
END;
$$;
