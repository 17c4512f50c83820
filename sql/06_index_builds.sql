-- CREATE INDEX becomes an online migration: a background worker builds the
-- index with CREATE INDEX CONCURRENTLY; failures and rollbacks leave no
-- INVALID index behind. heliosmig.wait = on makes the statement wait for the
-- worker, so the outcome is checked right after it (migration ids vary, so
-- their NOTICEs are silenced).
SET heliosmig.intercept = off;
CREATE TABLE ib_items (id int PRIMARY KEY, sku text, bucket int, note text);
INSERT INTO ib_items SELECT g, 'sku-' || g, g % 100, repeat('x', g % 50) FROM generate_series(1, 20000) g;
RESET heliosmig.intercept;

-- Waits until the worker has ended a migration (bounded: 2 minutes). A
-- procedure that commits between polls: a concurrent index build waits for
-- every older transaction, so the wait must not be one long transaction.
CREATE PROCEDURE ib_wait(id uuid, INOUT state text DEFAULT NULL) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 1200 LOOP
        SELECT m.state INTO state FROM heliosmig.helios_migrations m WHERE m.migration_id = id;
        EXIT WHEN state IN ('COMPLETED', 'FAILED', 'ROLLED_BACK');
        COMMIT;
        PERFORM pg_sleep(0.1);
    END LOOP;
END;
$$;
CREATE VIEW ib_indexes AS
SELECT c.relname AS index, i.indisvalid AS valid, i.indisunique AS is_unique
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'ib_items'::regclass ORDER BY 1;

-- Plain CREATE INDEX, waited for.
SET heliosmig.wait = on;
SET client_min_messages = warning;
CREATE INDEX ib_items_sku ON ib_items (sku);
-- No name: heliosmig chooses it the way PostgreSQL would.
CREATE INDEX ON ib_items (bucket);
RESET client_min_messages;
SELECT * FROM ib_indexes;
SELECT operation, operation_class, state, object_name, lock_mode, progress, rollback_feasibility
  FROM heliosmig.helios_migrations m CROSS JOIN LATERAL (SELECT heliosmig.format_progress(m) AS progress) p
 WHERE table_oid = 'ib_items'::regclass ORDER BY created_at;
SELECT string_agg(coalesce(to_state, event), ' > ' ORDER BY log_id) AS history
  FROM heliosmig.helios_migration_logs
 WHERE migration_id = (SELECT migration_id FROM heliosmig.helios_migrations
                        WHERE object_name = 'ib_items_sku');

-- A unique index over duplicate values fails: the statement reports it, the
-- migration is FAILED with PostgreSQL's reason, and no INVALID index remains.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE UNIQUE INDEX ib_items_bucket_uniq ON ib_items (bucket) WHERE id <= 101;
RESET client_min_messages;
\set VERBOSITY default
SELECT state, error FROM heliosmig.helios_migrations WHERE object_name = 'ib_items_bucket_uniq';
SELECT * FROM ib_indexes;

-- Through heliosmig.start(): asynchronous; the worker starts after commit.
SELECT heliosmig.start('CREATE UNIQUE INDEX ib_items_sku_uniq ON ib_items (sku) WITH (migration_mode = ''online'')') AS build_id \gset
CALL ib_wait(:'build_id');
SELECT * FROM ib_indexes;

-- Started in a transaction that rolls back: the worker finds nothing to do.
BEGIN;
SELECT heliosmig.start('CREATE INDEX ib_items_note ON ib_items (note)') IS NOT NULL AS started;
ROLLBACK;
SELECT count(*) AS note_migrations FROM heliosmig.helios_migrations WHERE object_name = 'ib_items_note';

-- The name is checked up front.
SELECT heliosmig.start('CREATE INDEX ib_items_sku ON ib_items (note)');
-- Inside a transaction block the statement cannot start a worker.
BEGIN;
CREATE INDEX ib_items_note ON ib_items (note);
ROLLBACK;
-- explain shows the plan and the lock the build takes.
SELECT operation_class, runs_online, copies_data, lock_mode, array_length(steps, 1) AS steps
  FROM heliosmig.explain('CREATE INDEX ib_items_note ON ib_items (note)');

-- pg_restore gets PostgreSQL's own behaviour: its statements depend on each
-- other in order, on tables it filled itself.
SET application_name = 'pg_restore';
CREATE INDEX ib_items_restored ON ib_items (note);
RESET application_name;
SELECT count(*) AS restored_tracked FROM heliosmig.helios_migrations
 WHERE object_name = 'ib_items_restored';
SELECT indisvalid FROM pg_index WHERE indexrelid = 'ib_items_restored'::regclass;

-- No INVALID index anywhere, no migration left running.
SELECT count(*) AS invalid_indexes FROM pg_index WHERE NOT indisvalid;
SELECT count(*) AS active FROM heliosmig.helios_migrations
 WHERE state NOT IN ('COMPLETED', 'FAILED', 'ROLLED_BACK');

RESET heliosmig.wait;
DROP VIEW ib_indexes;
DROP TABLE ib_items;
DROP PROCEDURE ib_wait(uuid, text);
