-- Bad input gets a clear error with a hint, and changes nothing.
SET heliosmig.intercept = off;
CREATE TABLE bi_t (id int PRIMARY KEY, v text);
CREATE VIEW bi_view AS SELECT id FROM bi_t;
CREATE TABLE bi_nopk (a int);
RESET heliosmig.intercept;

-- Unknown objects: PostgreSQL's own errors.
SELECT heliosmig.start('ALTER TABLE bi_missing ADD COLUMN x int');
SELECT heliosmig.start('ALTER TABLE bi_t DROP COLUMN missing');
SELECT heliosmig.start('ALTER TABLE bi_t RENAME COLUMN missing TO other');
SELECT heliosmig.start('ALTER TABLE bi_t ALTER COLUMN missing TYPE bigint');
SELECT heliosmig.start('DROP INDEX bi_missing_idx');
SELECT heliosmig.start('ALTER TABLE bi_t DROP CONSTRAINT missing');
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN v int');
-- Syntax errors inside the DDL string.
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN');
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN x int WITH (CHUNK_SIZE 10)');
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN x text DEFAULT ''unterminated');
SELECT heliosmig.start('');
-- One statement per migration, and only the statements heliosmig runs.
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN x int; DROP TABLE bi_t');
SELECT heliosmig.start('DROP TABLE bi_t');
SELECT heliosmig.start('ALTER VIEW bi_view RENAME TO bi_view2');
SELECT heliosmig.start('ALTER TABLE bi_view ADD COLUMN x int');
SELECT heliosmig.start('DROP INDEX bi_t_pkey, bi_t_pkey');
SELECT heliosmig.start('ALTER TABLE bi_nopk DROP PRIMARY KEY');
-- Unknown options and out-of-range values.
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN x int WITH (SPEED = 11)');
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN x int WITH (CHUNK_SIZE = ''many'')');
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN x int WITH (ENABLE_SHADOW_TRAFFIC = maybe)');
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN x int WITH (MIGRATION_MODE = ''HYBRID'')');
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN x int', mode => 'sideways');
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN x int', chunk_size => 2000000);
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN x int', throttle_io => 0);
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN x int', throttle_io => 101);
SELECT heliosmig.start(NULL) IS NULL AS null_in_null_out;
ALTER TABLE bi_t ADD COLUMN x int, SET (chunk_size = -5);
CREATE INDEX CONCURRENTLY bi_idx ON bi_t (v) WITH (throttle_io = 500);
-- Temporary tables are not migrated.
CREATE TEMP TABLE bi_temp (a int);
SELECT heliosmig.start('ALTER TABLE bi_temp ADD COLUMN x int');

-- Nothing above changed the table or the catalog.
SELECT string_agg(attname, ', ' ORDER BY attnum) AS columns FROM pg_attribute
 WHERE attrelid = 'bi_t'::regclass AND attnum > 0 AND NOT attisdropped;
SELECT count(*) AS recorded FROM heliosmig.helios_migrations
 WHERE table_oid IN ('bi_t'::regclass, 'bi_nopk'::regclass);

-- Security: only a table's owner (or a superuser) migrates it; each role sees
-- only the migrations of tables it owns; nobody writes the catalog directly.
CREATE ROLE regress_alice LOGIN;
CREATE ROLE regress_bob LOGIN;
GRANT CREATE ON SCHEMA public TO regress_alice, regress_bob;
SET ROLE regress_alice;
CREATE TABLE alice_t (id int PRIMARY KEY);
SELECT heliosmig.start('ALTER TABLE alice_t ADD COLUMN note text') IS NOT NULL AS alice_started;
SELECT table_name, status FROM heliosmig.show_migrations();
SELECT heliosmig.start('ALTER TABLE bi_t ADD COLUMN alice int');
INSERT INTO heliosmig.helios_migration_logs (migration_id, level, event, message)
SELECT migration_id, 'INFO', 'forged', 'x' FROM heliosmig.helios_migrations;
UPDATE heliosmig.helios_migrations SET state = 'FAILED';
SET ROLE regress_bob;
SELECT count(*) AS bob_sees FROM heliosmig.show_migrations();
SELECT count(*) AS bob_sees_logs FROM heliosmig.helios_migration_logs;
SELECT heliosmig.start('ALTER TABLE alice_t ADD COLUMN bob int');
SELECT heliosmig.explain('ALTER TABLE alice_t ADD COLUMN bob int');
ALTER TABLE alice_t ADD COLUMN bob int;
RESET ROLE;
-- Classifying an ADD COLUMN or ALTER TYPE needs the TEMPORARY privilege (the
-- probe is a temporary table); without it the error says so.
DO $$ BEGIN EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database()); END $$;
SET ROLE regress_alice;
ALTER TABLE alice_t ADD COLUMN no_temp int;
ALTER TABLE alice_t RENAME COLUMN note TO remark;
RESET ROLE;
DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database()); END $$;
-- pg_monitor members see everything.
GRANT pg_monitor TO regress_bob;
SET ROLE regress_bob;
SELECT table_name, status FROM heliosmig.show_migrations() WHERE table_name = 'public.alice_t';
RESET ROLE;
-- Migrations run the DDL as the caller: the new column belongs to alice's table,
-- and the catalog row says who started it.
SELECT started_by, operation FROM heliosmig.helios_migrations WHERE table_name = 'public.alice_t';

DROP TABLE alice_t;
REVOKE CREATE ON SCHEMA public FROM regress_alice, regress_bob;
DROP ROLE regress_alice, regress_bob;
DROP VIEW bi_view;
DROP TABLE bi_t, bi_nopk, bi_temp;
