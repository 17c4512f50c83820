-- Statements PostgreSQL runs by rewriting the table become online rewrites:
-- a ghost table with the new layout, a chunked copy, changes captured by
-- logical decoding, validation, and a cutover that keeps the table's OID.
-- heliosmig.wait = on makes plain DDL wait for the worker; start() is waited
-- for with rw_wait. Migration ids, OIDs and WAL positions vary, so outputs
-- avoid them.
SET heliosmig.intercept = off;
CREATE TABLE rw_parent (id int PRIMARY KEY, label text);
INSERT INTO rw_parent SELECT g, 'parent ' || g FROM generate_series(1, 10) g;
-- A table with history: a dropped column, a column added with a constant
-- default before rows existed (a "missing" value), values stored out of
-- line, a serial key.
CREATE TABLE rw_accounts (
    id serial PRIMARY KEY,
    parent_id int REFERENCES rw_parent,
    gone int,
    balance int NOT NULL,
    note text);
ALTER TABLE rw_accounts DROP COLUMN gone;
INSERT INTO rw_accounts (parent_id, balance, note)
SELECT g % 10 + 1, g, CASE WHEN g % 500 = 0
                           THEN (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 150) i)
                           ELSE 'note ' || g END
  FROM generate_series(1, 20000) g;
ALTER TABLE rw_accounts ADD COLUMN region text NOT NULL DEFAULT 'eu';
CREATE INDEX rw_accounts_balance ON rw_accounts (balance);
CREATE INDEX rw_accounts_note_prefix ON rw_accounts (left(note, 8)) WHERE balance > 100;
CREATE TABLE rw_transfers (id int PRIMARY KEY, account_id int REFERENCES rw_accounts (id));
INSERT INTO rw_transfers SELECT g, g * 2 FROM generate_series(1, 100) g;
CREATE VIEW rw_rich AS SELECT id, note FROM rw_accounts WHERE id > 19990;
COMMENT ON TABLE rw_accounts IS 'accounts under migration';
CREATE ROLE rw_reader;
GRANT SELECT ON rw_accounts TO rw_reader;
ALTER TABLE rw_accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY rw_eu ON rw_accounts USING (region = 'eu');
CREATE TABLE rw_audit (account_id int, balance bigint);
CREATE FUNCTION rw_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO rw_audit VALUES (NEW.id, NEW.balance); RETURN NEW; END $$;
CREATE TRIGGER rw_audit AFTER UPDATE ON rw_accounts FOR EACH ROW EXECUTE FUNCTION rw_audit();
-- What the table must hold afterwards, computed the ordinary way.
CREATE TABLE rw_expected AS SELECT id, parent_id, balance::bigint AS balance, note, region FROM rw_accounts;
RESET heliosmig.intercept;

CREATE PROCEDURE rw_wait(id uuid, INOUT state text DEFAULT NULL) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 1200 LOOP
        SELECT m.state INTO state FROM heliosmig.helios_migrations m WHERE m.migration_id = id;
        EXIT WHEN state IN ('COMPLETED', 'FAILED', 'ROLLED_BACK');
        COMMIT;
        PERFORM pg_sleep(0.1);
    END LOOP;
END;
$$;
CREATE PROCEDURE rw_wait_for(id uuid, wanted text, INOUT state text DEFAULT NULL) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 1200 LOOP
        SELECT m.state INTO state FROM heliosmig.helios_migrations m WHERE m.migration_id = id;
        EXIT WHEN state IN (wanted, 'COMPLETED', 'FAILED', 'ROLLED_BACK');
        COMMIT;
        PERFORM pg_sleep(0.05);
    END LOOP;
END;
$$;
CREATE VIEW rw_leftovers AS
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'heliosmig'::regnamespace
                                        AND relname LIKE 'ghost\_%') AS ghosts,
       (SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'heliosmig%') AS slots,
       (SELECT count(*) FROM pg_replication_origin WHERE roname LIKE 'heliosmig%') AS origins;
SELECT 'rw_accounts'::regclass::oid AS accounts_oid \gset

-- int -> bigint through plain DDL, waited for.
SET heliosmig.wait = on;
SET client_min_messages = warning;
ALTER TABLE rw_accounts ALTER COLUMN balance TYPE bigint;
RESET client_min_messages;
SELECT operation_class, state, rows_copied, rollback_feasibility, error
  FROM heliosmig.helios_migrations WHERE table_oid = :accounts_oid ORDER BY created_at;
SELECT string_agg(coalesce(to_state, event), ' > ' ORDER BY log_id) AS history
  FROM heliosmig.helios_migration_logs
 WHERE migration_id = (SELECT migration_id FROM heliosmig.helios_migrations WHERE table_oid = :accounts_oid);
-- Same table (OID), new type, same rows.
SELECT 'rw_accounts'::regclass::oid = :accounts_oid AS same_oid,
       format_type(atttypid, atttypmod) AS balance_type
  FROM pg_attribute WHERE attrelid = 'rw_accounts'::regclass AND attname = 'balance';
SELECT (SELECT count(*) FROM (SELECT id, parent_id, balance, note, region FROM rw_accounts
                              EXCEPT SELECT * FROM rw_expected) x) AS unexpected,
       (SELECT count(*) FROM (SELECT * FROM rw_expected
                              EXCEPT SELECT id, parent_id, balance, note, region FROM rw_accounts) y) AS missing;
-- Dependants still work: view, index scans, foreign keys both ways,
-- comment, grant, policy, trigger, the serial default.
SELECT count(*), sum(length(note)) FROM rw_rich;
SET enable_seqscan = off;
SELECT id, balance FROM rw_accounts WHERE balance = 12345;
SELECT count(*) FROM rw_accounts WHERE left(note, 8) = 'note 150' AND balance > 100;
RESET enable_seqscan;
INSERT INTO rw_transfers VALUES (1000, 999999);
INSERT INTO rw_accounts (parent_id, balance) VALUES (99, 1);
DELETE FROM rw_accounts WHERE id = 2;
SELECT obj_description('rw_accounts'::regclass, 'pg_class') AS comment,
       has_table_privilege('rw_reader', 'rw_accounts', 'SELECT') AS reader_can_select,
       (SELECT count(*) FROM pg_policy WHERE polrelid = 'rw_accounts'::regclass) AS policies;
UPDATE rw_accounts SET balance = balance + 1 WHERE id = 7;
SELECT * FROM rw_audit;
INSERT INTO rw_accounts (parent_id, balance) VALUES (1, 5) RETURNING id > 20000 AS new_serial_id;
SELECT * FROM rw_leftovers;
-- The old storage is kept in schema heliosmig, readable, with its missing values.
SELECT count(*) AS retained, sum((SELECT count(*) FROM pg_index WHERE indrelid = c.oid)) AS indexes
  FROM pg_class c
 WHERE relnamespace = 'heliosmig'::regnamespace AND relkind = 'r'
   AND relname LIKE 'old\_' || :accounts_oid || '\_%';
SELECT retained_table AS retained FROM heliosmig.helios_migrations WHERE table_oid = :accounts_oid \gset
SELECT count(*) AS old_rows, count(*) FILTER (WHERE region = 'eu') AS with_missing_value,
       sum(balance) = (SELECT sum(balance) FROM rw_expected) AS same_balances,
       pg_typeof(min(balance)) AS old_type
  FROM :retained;

-- Other rewriting statements, through start() and the spec's spellings.
SET heliosmig.intercept = off;
CREATE TABLE rw_kinds (id int PRIMARY KEY, code text, amount numeric(10, 2), qty int);
INSERT INTO rw_kinds SELECT g, (g * 7)::text, g / 3.0, g FROM generate_series(1, 5000) g;
RESET heliosmig.intercept;
SELECT heliosmig.start('ALTER TABLE rw_kinds ALTER COLUMN code TYPE int USING code::int, '
                       'ALTER COLUMN amount TYPE numeric(12, 4)', chunk_size => 700) AS id \gset
CALL rw_wait(:'id');
SELECT heliosmig.start('ALTER TABLE rw_kinds MODIFY COLUMN qty text', chunk_size => 700) AS id \gset
CALL rw_wait(:'id');
SELECT heliosmig.start('ALTER TABLE rw_kinds ADD COLUMN added_at timestamptz NOT NULL '
                       'DEFAULT clock_timestamp()', chunk_size => 700) AS id \gset
CALL rw_wait(:'id');
SELECT operation, state FROM heliosmig.helios_migrations
 WHERE table_oid = 'rw_kinds'::regclass ORDER BY created_at;
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'rw_kinds'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT count(*), sum(code), sum(amount), count(DISTINCT qty), count(added_at) FROM rw_kinds;

-- auto_cutover => false waits in READY for cutover(); pause and resume.
SELECT heliosmig.start('ALTER TABLE rw_kinds ALTER COLUMN code TYPE bigint',
                       auto_cutover => false) AS id \gset
CALL rw_wait_for(:'id', 'READY');
SELECT heliosmig.pause(:'id');
SELECT status, progress LIKE '%paused: replication slot % keeps % of WAL)' AS says_slot_keeps_wal
  FROM heliosmig.show_migration(:'id');
SELECT heliosmig.resume(:'id');
SELECT heliosmig.cutover(:'id');
CALL rw_wait(:'id');
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'rw_kinds'::regclass AND attname = 'code';

-- Rollback before cutover removes the ghost, the slot and its origin; the
-- table is exactly as it was.
SELECT heliosmig.start('ALTER TABLE rw_kinds ALTER COLUMN code TYPE text',
                       auto_cutover => false) AS id \gset
CALL rw_wait_for(:'id', 'READY');
SELECT heliosmig.rollback(:'id');
CALL rw_wait(:'id');
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'rw_kinds'::regclass AND attname = 'code';
SELECT * FROM rw_leftovers;

-- A row the USING expression fails on: FAILED with PostgreSQL's reason, the
-- table untouched, nothing left behind.
SET heliosmig.intercept = off;
UPDATE rw_kinds SET qty = 'many' WHERE id = 4000;
RESET heliosmig.intercept;
SELECT heliosmig.start('ALTER TABLE rw_kinds ALTER COLUMN qty TYPE int USING qty::int',
                       chunk_size => 500) AS id \gset
CALL rw_wait(:'id');
SELECT state, error FROM heliosmig.helios_migrations WHERE migration_id = :'id';
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'rw_kinds'::regclass AND attname = 'qty';
SELECT * FROM rw_leftovers;

-- A table keyed by a replica identity index instead of a primary key.
SET heliosmig.intercept = off;
CREATE TABLE rw_coded (code text NOT NULL, n int);
CREATE UNIQUE INDEX rw_coded_code ON rw_coded (code);
ALTER TABLE rw_coded REPLICA IDENTITY USING INDEX rw_coded_code;
INSERT INTO rw_coded SELECT 'c' || g, g FROM generate_series(1, 3000) g;
RESET heliosmig.intercept;
SELECT heliosmig.start('ALTER TABLE rw_coded ALTER COLUMN n TYPE bigint', chunk_size => 1000) AS id \gset
CALL rw_wait(:'id');
SELECT count(*), sum(n), pg_typeof(min(n)) FROM rw_coded;
SELECT indisreplident, indisunique, indisprimary FROM pg_index WHERE indrelid = 'rw_coded'::regclass;

-- A composite primary key: chunks end at (a, b) pairs.
SET heliosmig.intercept = off;
CREATE TABLE rw_pairs (a int, b text, v int, PRIMARY KEY (a, b));
INSERT INTO rw_pairs SELECT g % 100, 'k' || (g / 100), g FROM generate_series(1, 20000) g;
CREATE TABLE rw_pairs_expected AS SELECT a, b, v::bigint AS v FROM rw_pairs;
RESET heliosmig.intercept;
SELECT heliosmig.start('ALTER TABLE rw_pairs ALTER COLUMN v TYPE bigint', chunk_size => 777) AS id \gset
CALL rw_wait(:'id');
SELECT (SELECT count(*) FROM (SELECT * FROM rw_pairs EXCEPT SELECT * FROM rw_pairs_expected) x) AS unexpected,
       (SELECT count(*) FROM (SELECT * FROM rw_pairs_expected EXCEPT SELECT * FROM rw_pairs) y) AS missing,
       (SELECT rows_copied FROM heliosmig.helios_migrations WHERE migration_id = :'id') AS rows_copied;

-- Refused up front, with the reason.
\set VERBOSITY terse
SET heliosmig.intercept = off;
CREATE TABLE rw_nokey (a int, b int);
CREATE TABLE rw_parted (id int PRIMARY KEY, v int) PARTITION BY RANGE (id);
CREATE TABLE rw_viewed (id int PRIMARY KEY, v int);
CREATE VIEW rw_viewed_v AS SELECT v FROM rw_viewed;
RESET heliosmig.intercept;
SELECT heliosmig.start('ALTER TABLE rw_nokey ALTER COLUMN b TYPE bigint');
SELECT heliosmig.start('ALTER TABLE rw_parted ALTER COLUMN v TYPE bigint');
SELECT heliosmig.start('ALTER TABLE rw_viewed ALTER COLUMN v TYPE bigint');
SELECT heliosmig.start('ALTER TABLE rw_kinds ADD COLUMN serial_no bigserial');
BEGIN;
ALTER TABLE rw_kinds ALTER COLUMN qty TYPE varchar(10);
ROLLBACK;
-- DDL on a table under migration is refused while it runs.
SELECT heliosmig.start('ALTER TABLE rw_kinds ALTER COLUMN code TYPE text',
                       auto_cutover => false) AS id \gset
CALL rw_wait_for(:'id', 'READY');
ALTER TABLE rw_kinds ADD COLUMN extra int;
SELECT heliosmig.rollback(:'id');
CALL rw_wait(:'id');
\set VERBOSITY default

SELECT * FROM rw_leftovers;
DROP TABLE rw_transfers, rw_accounts, rw_parent, rw_expected, rw_audit, rw_kinds, rw_nokey,
           rw_parted, rw_viewed, rw_coded, rw_pairs, rw_pairs_expected CASCADE;
DROP FUNCTION rw_audit();
DROP ROLE rw_reader;
DROP PROCEDURE rw_wait, rw_wait_for;
DROP VIEW rw_leftovers;
-- Retained storage is the DBA's to drop early (the launcher drops it after
-- heliosmig.retention).
DO $$
DECLARE r text;
BEGIN
    FOR r IN SELECT retained_table FROM heliosmig.helios_migrations
              WHERE retained_table IS NOT NULL AND pg_catalog.to_regclass(retained_table) IS NOT NULL LOOP
        EXECUTE 'DROP TABLE ' || r;
    END LOOP;
END $$;
