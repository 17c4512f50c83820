-- The migration state machine: only legal transitions, whoever writes the row.
SELECT f.s AS from_state, array_agg(t.s ORDER BY t.n) AS legal_next_states
  FROM unnest(ARRAY['CREATED', 'PLANNING', 'PREPARING', 'COPYING', 'SYNCHRONIZING',
                    'VALIDATING', 'READY', 'CUTOVER', 'COMPLETED', 'PAUSED',
                    'ROLLING_BACK', 'ROLLED_BACK', 'FAILED']) WITH ORDINALITY AS f(s, n)
 CROSS JOIN unnest(ARRAY['CREATED', 'PLANNING', 'PREPARING', 'COPYING', 'SYNCHRONIZING',
                         'VALIDATING', 'READY', 'CUTOVER', 'COMPLETED', 'PAUSED',
                         'ROLLING_BACK', 'ROLLED_BACK', 'FAILED']) WITH ORDINALITY AS t(s, n)
 WHERE heliosmig.is_legal_transition(f.s, t.s)
 GROUP BY f.s, f.n ORDER BY f.n;
SELECT heliosmig.is_legal_transition('COPYING', 'DANCING');

-- A migration row as the online engine leaves it while it copies. (The engine
-- itself arrives with the rewrite issue; here the row is walked there by hand,
-- through legal transitions only, to exercise the control API.)
CREATE TABLE sm_t (id int PRIMARY KEY, v text);
INSERT INTO sm_t SELECT g, 'v' || g FROM generate_series(1, 10) g;
-- Must start in CREATED.
INSERT INTO heliosmig.helios_migrations
       (state, table_oid, table_name, operation, operation_class, ddl, statement, search_path,
        mode, chunk_size, throttle_io, shadow_traffic, auto_cutover, lock_mode, started_by,
        login_role)
VALUES ('COPYING', 'sm_t'::regclass, 'public.sm_t', 'ALTER TABLE sm_t ALTER COLUMN id TYPE bigint',
        'rewrite', 'x', 'x', 'public', 'online', 10000, 100, false, false,
        'AccessExclusiveLock', current_user::regrole, current_user::regrole);
INSERT INTO heliosmig.helios_migrations
       (migration_id, table_oid, table_name, operation, operation_class, ddl, statement,
        search_path, mode, chunk_size, throttle_io, shadow_traffic, auto_cutover, lock_mode,
        started_by, login_role, rows_total, rows_copied)
VALUES ('00000000-0000-0000-0000-00000000000a', 'sm_t'::regclass, 'public.sm_t',
        'ALTER TABLE sm_t ALTER COLUMN id TYPE bigint', 'rewrite',
        'ALTER TABLE sm_t ALTER COLUMN id TYPE bigint',
        'ALTER TABLE sm_t ALTER COLUMN id TYPE bigint', 'public', 'online', 10000, 100, false,
        false, 'AccessExclusiveLock', current_user::regrole, current_user::regrole, 100, 67);
-- Skipping states is refused.
UPDATE heliosmig.helios_migrations SET state = 'COPYING'
 WHERE migration_id = '00000000-0000-0000-0000-00000000000a';
UPDATE heliosmig.helios_migrations SET state = 'PLANNING'
 WHERE migration_id = '00000000-0000-0000-0000-00000000000a';
UPDATE heliosmig.helios_migrations SET state = 'PREPARING'
 WHERE migration_id = '00000000-0000-0000-0000-00000000000a';
UPDATE heliosmig.helios_migrations SET state = 'COPYING'
 WHERE migration_id = '00000000-0000-0000-0000-00000000000a';
UPDATE heliosmig.helios_migrations SET state = 'COMPLETED'
 WHERE migration_id = '00000000-0000-0000-0000-00000000000a';

SELECT migration_id, table_name, operation, status, progress, rollback
  FROM heliosmig.show_migrations(only_active => true);

-- One active migration per table.
SELECT heliosmig.start('ALTER TABLE sm_t ADD COLUMN w int');
-- The table's schema is locked while it is migrated, whatever the DDL.
ALTER TABLE sm_t ADD COLUMN w int;
SET heliosmig.intercept = off;
ALTER TABLE sm_t RENAME COLUMN v TO w;
RESET heliosmig.intercept;
CREATE INDEX ON sm_t (v);
-- Other tables are not affected.
CREATE TABLE sm_other (id int PRIMARY KEY);
ALTER TABLE sm_other ADD COLUMN w int;

-- pause / resume
SELECT heliosmig.pause('00000000-0000-0000-0000-00000000000a');
SELECT status FROM heliosmig.show_migration('00000000-0000-0000-0000-00000000000a');
SELECT heliosmig.pause('00000000-0000-0000-0000-00000000000a');
-- A paused migration resumes only where it stopped.
UPDATE heliosmig.helios_migrations SET state = 'READY'
 WHERE migration_id = '00000000-0000-0000-0000-00000000000a';
SELECT heliosmig.cutover('00000000-0000-0000-0000-00000000000a');
SELECT heliosmig.resume('00000000-0000-0000-0000-00000000000a');
SELECT heliosmig.resume('00000000-0000-0000-0000-00000000000a');

-- cutover is for READY migrations; force skips validation, not copying.
SELECT heliosmig.cutover('00000000-0000-0000-0000-00000000000a');
SELECT heliosmig.cutover('00000000-0000-0000-0000-00000000000a', force => true);
UPDATE heliosmig.helios_migrations SET state = 'SYNCHRONIZING'
 WHERE migration_id = '00000000-0000-0000-0000-00000000000a';
SELECT heliosmig.cutover('00000000-0000-0000-0000-00000000000a');
SELECT heliosmig.cutover('00000000-0000-0000-0000-00000000000a', force => true);
SELECT cutover_requested, cutover_force FROM heliosmig.helios_migrations
 WHERE migration_id = '00000000-0000-0000-0000-00000000000a';

-- rollback before cutover ends the migration and frees the table.
SELECT heliosmig.rollback('00000000-0000-0000-0000-00000000000a');
SELECT status, rollback FROM heliosmig.show_migration('00000000-0000-0000-0000-00000000000a');
SELECT heliosmig.rollback('00000000-0000-0000-0000-00000000000a');
SELECT heliosmig.pause('00000000-0000-0000-0000-00000000000a');
SELECT heliosmig.resume('00000000-0000-0000-0000-00000000000a');
SELECT from_state, to_state, event, message FROM heliosmig.helios_migration_logs
 WHERE migration_id = '00000000-0000-0000-0000-00000000000a' ORDER BY log_id;
-- Terminal states are final.
UPDATE heliosmig.helios_migrations SET state = 'COPYING'
 WHERE migration_id = '00000000-0000-0000-0000-00000000000a';
-- The table takes DDL again.
ALTER TABLE sm_t ADD COLUMN w int;

-- Unknown migrations.
SELECT heliosmig.pause('00000000-0000-0000-0000-0000000000ff');
SELECT heliosmig.resume('00000000-0000-0000-0000-0000000000ff');
SELECT heliosmig.rollback('00000000-0000-0000-0000-0000000000ff');
SELECT heliosmig.cutover('00000000-0000-0000-0000-0000000000ff');
SELECT * FROM heliosmig.show_migration('00000000-0000-0000-0000-0000000000ff');
SELECT heliosmig.pause('not-a-uuid');

-- A completed metadata-only migration cannot be rolled back.
SELECT heliosmig.start('ALTER TABLE sm_t ADD COLUMN z int') AS done_id \gset
SELECT status, rollback FROM heliosmig.show_migration(:'done_id');
SELECT rollback_feasibility FROM heliosmig.helios_migrations WHERE migration_id = :'done_id';
DO $$
DECLARE
    id uuid := (SELECT migration_id FROM heliosmig.helios_migrations
                 WHERE operation LIKE '%ADD COLUMN z int');
    hint text;
BEGIN
    PERFORM heliosmig.rollback(id);
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RAISE NOTICE 'refused: % / %', replace(SQLERRM, id::text, '<id>'), hint;
END;
$$;

DROP TABLE sm_t, sm_other;
