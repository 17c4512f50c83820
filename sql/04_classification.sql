-- heliosmig.explain(): the class of each statement is PostgreSQL's own answer
-- (the probe runs the ALTER on an empty copy of the table and rolls it back),
-- and explain changes nothing.
SET heliosmig.intercept = off;
CREATE TABLE accounts (
    aid      int PRIMARY KEY,
    bid      int,
    abalance int,
    filler   varchar(84),
    note     text CHECK (length(note) < 100)
);
CREATE INDEX accounts_bid ON accounts (bid);
CREATE TABLE branches (bid int PRIMARY KEY);
CREATE TABLE parted (id int, v int) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
CREATE TABLE parted_2 (id int, v int);
RESET heliosmig.intercept;
SELECT relfilenode AS storage FROM pg_class WHERE relname = 'accounts' \gset

CREATE FUNCTION explain_brief(ddl text)
RETURNS TABLE (operation_class text, runs_online boolean, copies_data boolean, lock_mode text, reason text)
LANGUAGE sql AS $$
    SELECT operation_class, runs_online, copies_data, lock_mode, reason FROM heliosmig.explain(ddl)
$$;

-- Metadata-only in PostgreSQL.
SELECT * FROM explain_brief('ALTER TABLE accounts ADD COLUMN phone varchar(20)');
SELECT * FROM explain_brief('ALTER TABLE accounts ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()');
SELECT * FROM explain_brief('ALTER TABLE accounts MODIFY COLUMN filler varchar(200)');
SELECT * FROM explain_brief('ALTER TABLE accounts ALTER COLUMN filler TYPE text');
SELECT * FROM explain_brief('ALTER TABLE accounts DROP COLUMN filler');
SELECT * FROM explain_brief('ALTER TABLE accounts RENAME COLUMN filler TO pad');
SELECT * FROM explain_brief('ALTER TABLE accounts ADD CONSTRAINT positive CHECK (abalance > -1000000) NOT VALID');
SELECT * FROM explain_brief('ALTER TABLE accounts VALIDATE CONSTRAINT accounts_note_check');
SELECT * FROM explain_brief('DROP INDEX accounts_bid');
SELECT * FROM explain_brief('ALTER TABLE parted ADD COLUMN w int DEFAULT 7');

-- Rewrites: PostgreSQL would copy the whole table under ACCESS EXCLUSIVE.
SELECT * FROM explain_brief('ALTER TABLE accounts MODIFY COLUMN aid BIGINT');
SELECT * FROM explain_brief('ALTER TABLE accounts ALTER COLUMN abalance TYPE text');
SELECT * FROM explain_brief('ALTER TABLE accounts ALTER COLUMN abalance TYPE bigint USING abalance::bigint * 100');
-- What PostgreSQL would refuse is refused while planning, in PostgreSQL's words
-- (here the CHECK constraint on note cannot be re-added for an int column).
SELECT * FROM explain_brief('ALTER TABLE accounts ALTER COLUMN note TYPE int USING length(note)');
SELECT * FROM explain_brief('ALTER TABLE accounts ALTER COLUMN filler TYPE varchar(10)');
SELECT * FROM explain_brief('ALTER TABLE accounts ADD COLUMN created_at timestamptz NOT NULL DEFAULT clock_timestamp()');
SELECT * FROM explain_brief('ALTER TABLE accounts ADD COLUMN token uuid DEFAULT gen_random_uuid()');
SELECT * FROM explain_brief('ALTER TABLE accounts ADD COLUMN seq serial');
SELECT * FROM explain_brief('ALTER TABLE accounts ADD COLUMN total int GENERATED ALWAYS AS (abalance * 2) STORED');
SELECT * FROM explain_brief('ALTER TABLE accounts SET UNLOGGED');
SELECT * FROM explain_brief('ALTER TABLE accounts ADD COLUMN x int, ALTER COLUMN bid TYPE bigint');

-- Native-concurrent: PostgreSQL would scan or build an index while writes wait.
SELECT * FROM explain_brief('CREATE INDEX accounts_abalance ON accounts (abalance)');
SELECT * FROM explain_brief('CREATE UNIQUE INDEX CONCURRENTLY accounts_filler ON accounts (filler)');
SELECT * FROM explain_brief('ALTER TABLE accounts ADD CONSTRAINT uk_filler UNIQUE (filler)');
SELECT * FROM explain_brief('ALTER TABLE accounts ADD CONSTRAINT positive CHECK (abalance > -1000000)');
SELECT * FROM explain_brief('ALTER TABLE accounts ADD CONSTRAINT fk_bid FOREIGN KEY (bid) REFERENCES branches');
SELECT * FROM explain_brief('ALTER TABLE accounts ALTER COLUMN bid SET NOT NULL');
SELECT * FROM explain_brief('ALTER TABLE accounts ADD COLUMN branch int REFERENCES branches');
SELECT * FROM explain_brief('ALTER TABLE accounts ADD COLUMN code int UNIQUE');
SELECT * FROM explain_brief('ALTER TABLE accounts ADD COLUMN score int DEFAULT 0 CHECK (score >= 0)');
-- A binary-coercible change that keeps the storage but makes PostgreSQL
-- re-check the column's CHECK constraint by scanning the table.
SELECT * FROM explain_brief('ALTER TABLE accounts ALTER COLUMN note TYPE varchar');
-- Not classified by heliosmig: run only with lock safety, never tracked online.
SELECT * FROM explain_brief('ALTER TABLE parted ATTACH PARTITION parted_2 FOR VALUES FROM (100) TO (200)');

-- The full plan for one statement.
SELECT table_name, operation, operation_class, runs_online, copies_data, lock_mode,
       array_length(steps, 1) AS nsteps, steps[1] LIKE 'take AccessExclusiveLock on public.accounts%' AS first_step_takes_lock
  FROM heliosmig.explain('ALTER TABLE accounts DROP COLUMN note');
SELECT steps FROM heliosmig.explain('ALTER TABLE accounts ALTER COLUMN aid TYPE bigint');

-- explain and classification changed nothing: same storage, columns, no temp tables, nothing recorded.
SELECT relfilenode = :storage AS storage_unchanged FROM pg_class WHERE relname = 'accounts';
SELECT string_agg(attname, ', ' ORDER BY attnum) AS columns FROM pg_attribute
 WHERE attrelid = 'accounts'::regclass AND attnum > 0 AND NOT attisdropped;
SELECT count(*) AS temp_tables FROM pg_class WHERE relpersistence = 't';
SELECT count(*) AS recorded FROM heliosmig.helios_migrations WHERE table_oid = 'accounts'::regclass;

-- Statements that need an engine not built yet are refused, never run offline
-- behind the user's back; nothing is recorded.
-- (Rewrites run online: sql/08_rewrites.sql.)
SELECT heliosmig.start('ALTER TABLE accounts ALTER COLUMN bid SET NOT NULL, ALTER COLUMN abalance SET NOT NULL');
ALTER TABLE accounts ADD CONSTRAINT positive CHECK (abalance > -1000000), ADD CHECK (bid > 0);
SELECT count(*) AS recorded FROM heliosmig.helios_migrations WHERE table_oid = 'accounts'::regclass;
SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'aid';

DROP TABLE accounts, branches, parted, parted_2;
DROP FUNCTION explain_brief(text);
