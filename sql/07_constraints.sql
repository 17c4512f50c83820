-- ADD CONSTRAINT / SET NOT NULL as online migrations: a worker adds the
-- constraint NOT VALID under a short lock, validates it without blocking
-- writes, and attaches what needs attaching. heliosmig.wait = on makes each
-- statement wait for its worker (migration ids vary: NOTICEs are silenced).
SET heliosmig.intercept = off;
CREATE TABLE cs_branch (bid int PRIMARY KEY);
INSERT INTO cs_branch SELECT generate_series(0, 9);
CREATE TABLE cs_acct (id int, bid int, bal int, code text, note text);
INSERT INTO cs_acct SELECT g, g % 10, g, 'c' || g, NULL FROM generate_series(1, 20000) g;
RESET heliosmig.intercept;

CREATE VIEW cs_shape AS
SELECT 'constraint' AS kind, conname::text AS name, contype::text AS type, convalidated AS valid
  FROM pg_constraint WHERE conrelid = 'cs_acct'::regclass
UNION ALL
SELECT 'index', c.relname::text, CASE WHEN i.indisunique THEN 'unique' ELSE 'plain' END, i.indisvalid
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'cs_acct'::regclass
UNION ALL
SELECT 'not null', attname::text, format_type(atttypid, atttypmod), true
  FROM pg_attribute WHERE attrelid = 'cs_acct'::regclass AND attnum > 0 AND attnotnull
ORDER BY 1, 2;
-- Waits (bounded), committing between polls, until a migration has ended.
CREATE PROCEDURE cs_wait(id uuid, INOUT state text DEFAULT NULL) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 1200 LOOP
        SELECT m.state INTO state FROM heliosmig.helios_migrations m WHERE m.migration_id = id;
        EXIT WHEN state IN ('COMPLETED', 'FAILED', 'ROLLED_BACK');
        COMMIT;
        PERFORM pg_sleep(0.1);
    END LOOP;
END;
$$;
CREATE FUNCTION cs_steps(op text) RETURNS TABLE (step int, state text, kind text, description text, done boolean)
LANGUAGE sql AS $$
    SELECT s.step_no, s.state, s.kind, s.description, s.done_at IS NOT NULL
      FROM heliosmig.helios_migration_steps s
      JOIN heliosmig.helios_migrations m USING (migration_id)
     WHERE m.operation = op ORDER BY s.step_no
$$;

SET heliosmig.wait = on;
SET client_min_messages = warning;
-- A primary key on a column that is not NOT NULL yet: NOT NULL through a
-- validated CHECK first, then a unique index built concurrently, attached.
ALTER TABLE cs_acct ADD PRIMARY KEY (id);
ALTER TABLE cs_acct ADD CONSTRAINT uk_code UNIQUE (code);
ALTER TABLE cs_acct ALTER COLUMN bid SET NOT NULL;
ALTER TABLE cs_acct ADD CONSTRAINT positive CHECK (bal > 0);
ALTER TABLE cs_acct ADD CONSTRAINT fk_bid FOREIGN KEY (bid) REFERENCES cs_branch;
ALTER TABLE cs_acct ADD CHECK (length(code) < 20);
RESET client_min_messages;
SELECT * FROM cs_shape;
SELECT * FROM cs_steps('ALTER TABLE cs_acct ADD PRIMARY KEY (id)');
SELECT * FROM cs_steps('ALTER TABLE cs_acct ALTER COLUMN bid SET NOT NULL');
SELECT * FROM cs_steps('ALTER TABLE cs_acct ADD CONSTRAINT fk_bid FOREIGN KEY (bid) REFERENCES cs_branch');
SELECT operation, state, lock_mode FROM heliosmig.helios_migrations
 WHERE table_oid = 'cs_acct'::regclass ORDER BY created_at;

-- The constraints work.
INSERT INTO cs_acct VALUES (1, 1, 5, 'dup', NULL);
INSERT INTO cs_acct VALUES (30001, NULL, 5, 'x', NULL);
INSERT INTO cs_acct VALUES (30001, 1, -5, 'x', NULL);
INSERT INTO cs_acct VALUES (30001, 42, 5, 'x', NULL);

-- Failures: the migration is FAILED with PostgreSQL's reason and leaves
-- nothing behind (no NOT VALID constraint, no INVALID index).
\set VERBOSITY terse
SET client_min_messages = warning;
ALTER TABLE cs_acct ADD CONSTRAINT small CHECK (bal < 100);
ALTER TABLE cs_acct ALTER COLUMN note SET NOT NULL;
ALTER TABLE cs_acct ADD CONSTRAINT uk_bid UNIQUE (bid);
RESET client_min_messages;
\set VERBOSITY default
SELECT operation, state, error FROM heliosmig.helios_migrations
 WHERE table_oid = 'cs_acct'::regclass AND state = 'FAILED' ORDER BY created_at;
SELECT * FROM cs_shape;
SELECT count(*) AS not_valid FROM pg_constraint WHERE NOT convalidated;
SELECT count(*) AS invalid_indexes FROM pg_index WHERE NOT indisvalid;

-- Rollback of each kind of migration, caught in flight: this session holds a
-- lock the worker's steps need, asks for the rollback, and commits; the
-- worker is interrupted, undoes what it did, and nothing is left.
SET heliosmig.intercept = off;
CREATE TABLE cs_rb (id int, bid int, code text, v int);
INSERT INTO cs_rb SELECT g, g % 10, 'c' || g, g FROM generate_series(1, 5000) g;
RESET heliosmig.intercept;
CREATE PROCEDURE cs_start_and_roll_back(ddl text, INOUT outcome text DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    id uuid;
BEGIN
    id := heliosmig.start(ddl);
    COMMIT;
    -- Conflicts with the first lock of every recipe (SHARE UPDATE EXCLUSIVE
    -- for index builds and validation, stronger for the rest).
    LOCK TABLE cs_rb IN SHARE UPDATE EXCLUSIVE MODE;
    PERFORM heliosmig.rollback(id);
    COMMIT;
    CALL cs_wait(id, outcome);
END;
$$;
CALL cs_start_and_roll_back('ALTER TABLE cs_rb ALTER COLUMN bid SET NOT NULL');
CALL cs_start_and_roll_back('ALTER TABLE cs_rb ADD PRIMARY KEY (id)');
CALL cs_start_and_roll_back('ALTER TABLE cs_rb ADD CONSTRAINT uk_rb UNIQUE (code)');
CALL cs_start_and_roll_back('ALTER TABLE cs_rb ADD CONSTRAINT pos_rb CHECK (v > 0)');
CALL cs_start_and_roll_back('ALTER TABLE cs_rb ADD CONSTRAINT fk_rb FOREIGN KEY (bid) REFERENCES cs_branch');
CALL cs_start_and_roll_back('CREATE INDEX cs_rb_v ON cs_rb (v)');
SELECT count(*) AS constraints FROM pg_constraint WHERE conrelid = 'cs_rb'::regclass;
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'cs_rb'::regclass;
SELECT count(*) AS not_null_columns FROM pg_attribute
 WHERE attrelid = 'cs_rb'::regclass AND attnum > 0 AND attnotnull;
SELECT state, count(*) FROM heliosmig.helios_migrations
 WHERE table_oid = 'cs_rb'::regclass GROUP BY state;
DROP TABLE cs_rb;
DROP PROCEDURE cs_start_and_roll_back(text, text);

-- Through heliosmig.start(), with the spec's own spelling of the options.
SELECT heliosmig.start('ALTER TABLE cs_acct ADD CONSTRAINT uk_note UNIQUE (note) WITH (MIGRATION_MODE = ''ONLINE'')') AS note_id \gset
CALL cs_wait(:'note_id');
SELECT * FROM cs_shape WHERE name = 'uk_note';
-- Only table rewrites have a cutover to request.
SELECT heliosmig.cutover(:'note_id', force => true);

-- Not supported yet: several constraints in one statement, and index options.
SELECT heliosmig.start('ALTER TABLE cs_acct ADD CHECK (bal > 1), ADD CHECK (bal > 2)');
SELECT heliosmig.start('ALTER TABLE cs_acct ADD CONSTRAINT uk2 UNIQUE (bal) WITH (fillfactor = 70)');

-- explain lays out the steps with the lock each takes.
SELECT operation_class, runs_online, lock_mode, steps
  FROM heliosmig.explain('ALTER TABLE cs_acct ALTER COLUMN bal SET NOT NULL');

RESET heliosmig.wait;

DROP VIEW cs_shape;
DROP TABLE cs_acct, cs_branch;
DROP FUNCTION cs_steps(text);

-- Names the user gives are checked before anything runs: an existing
-- constraint or index is never mistaken for the migration's own.
SET heliosmig.intercept = off;
CREATE TABLE cs_names (id int, code text, CONSTRAINT taken CHECK (id > 0));
CREATE INDEX taken_idx ON cs_names (code);
CREATE TABLE cs_parted (id int, v int) PARTITION BY RANGE (id);
RESET heliosmig.intercept;
SELECT heliosmig.start('ALTER TABLE cs_names ADD CONSTRAINT taken CHECK (id < 100)');
SELECT heliosmig.start('ALTER TABLE cs_names ADD CONSTRAINT taken_idx UNIQUE (code)');
SELECT heliosmig.start('CREATE INDEX taken_idx ON cs_names (id)');
-- CREATE INDEX IF NOT EXISTS of an existing index: PostgreSQL's own skip.
CREATE INDEX IF NOT EXISTS taken_idx ON cs_names (id);
-- A deferrable unique constraint stays deferrable.
SET heliosmig.wait = on;
SET client_min_messages = warning;
ALTER TABLE cs_names ADD CONSTRAINT uk_deferred UNIQUE (id) DEFERRABLE INITIALLY DEFERRED;
RESET client_min_messages;
SELECT conname, condeferrable, condeferred FROM pg_constraint WHERE conname = 'uk_deferred';
-- PostgreSQL 15 builds no index concurrently on a partitioned table.
SELECT heliosmig.start('CREATE INDEX ON cs_parted (v)');

-- A migration started under SET ROLE (a NOLOGIN role owning the table): the
-- worker logs in as the session's user and acts as the role.
CREATE ROLE regress_owners NOLOGIN;
CREATE ROLE regress_dev LOGIN SUPERUSER IN ROLE regress_owners;
GRANT CREATE ON SCHEMA public TO regress_owners;
SET SESSION AUTHORIZATION regress_dev;
SET ROLE regress_owners;
SELECT current_user, session_user;
CREATE TABLE cs_owned (id int, v int);
INSERT INTO cs_owned SELECT g, g FROM generate_series(1, 100) g;
SET client_min_messages = warning;
CREATE INDEX cs_owned_v ON cs_owned (v);
RESET client_min_messages;
SELECT pg_get_userbyid(relowner) AS owner, relname FROM pg_class WHERE relname = 'cs_owned_v';
SELECT started_by, login_role, state FROM heliosmig.helios_migrations WHERE object_name = 'cs_owned_v';
-- The worker acts as that role inside a security-restricted operation:
-- user code a step evaluates (here a CHECK validated by the worker, which
-- logged in as the superuser session user) cannot SET ROLE back.
-- (Only the worker evaluates it: VALIDATE runs there, and no row is written.)
CREATE FUNCTION cs_escalate(v int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('role', 'none', true);
    RETURN true;
END;
$$;
\set VERBOSITY terse
SET client_min_messages = warning;
ALTER TABLE cs_owned ADD CONSTRAINT no_escape CHECK (cs_escalate(v));
RESET client_min_messages;
\set VERBOSITY default
SELECT count(*) AS no_escape_constraints FROM pg_constraint WHERE conname = 'no_escape';
DROP TABLE cs_owned;
DROP FUNCTION cs_escalate(int);
RESET ROLE;
RESET SESSION AUTHORIZATION;
REVOKE CREATE ON SCHEMA public FROM regress_owners;
DROP ROLE regress_dev, regress_owners;
RESET heliosmig.wait;
DROP TABLE cs_names, cs_parted;

-- A rollback() whose transaction rolls back to a savepoint is forgotten: the
-- worker is not interrupted and the migration completes.
SET heliosmig.intercept = off;
CREATE TABLE cs_sp (id int, v int);
INSERT INTO cs_sp SELECT g, g FROM generate_series(1, 1000) g;
RESET heliosmig.intercept;
CREATE PROCEDURE cs_start_then(ddl text, INOUT id uuid DEFAULT NULL) LANGUAGE plpgsql AS $$
BEGIN
    id := heliosmig.start(ddl);
    COMMIT;
END;
$$;
CALL cs_start_then('CREATE INDEX cs_sp_v ON cs_sp (v)') \gset sp_
BEGIN;
LOCK TABLE cs_sp IN SHARE UPDATE EXCLUSIVE MODE;
SAVEPOINT s;
SELECT heliosmig.rollback(:'sp_id');
ROLLBACK TO SAVEPOINT s;
COMMIT;
CALL cs_wait(:'sp_id');
SELECT indexrelid::regclass, indisvalid FROM pg_index WHERE indrelid = 'cs_sp'::regclass ORDER BY 1;
DROP TABLE cs_sp;
DROP PROCEDURE cs_start_then(text, uuid);
DROP PROCEDURE cs_wait(uuid, text);
