-- The spec's fast (metadata-only) operations run for real, through
-- heliosmig.start() and as plain DDL, and leave the table as PostgreSQL's own
-- DDL would.
-- Setup DDL the ordinary way.
SET heliosmig.intercept = off;
CREATE TABLE users (
    user_id      int PRIMARY KEY,
    email        varchar(20),
    legacy_field text,
    age          int
);
CREATE INDEX idx_users_email ON users (email);
CREATE TABLE orders (
    order_id int PRIMARY KEY,
    user_id  int CONSTRAINT fk_user_id REFERENCES users,
    amount   numeric
);
INSERT INTO users SELECT g, 'u' || g || '@x.org', 'old', 20 + g % 50 FROM generate_series(1, 500) g;
INSERT INTO orders SELECT g, 1 + g % 500, g FROM generate_series(1, 1000) g;
RESET heliosmig.intercept;

CREATE FUNCTION table_shape(t regclass) RETURNS TABLE (col text, type text, notnull bool, dflt text)
LANGUAGE sql AS $$
    SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
           pg_get_expr(d.adbin, d.adrelid)
      FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attrelid = t AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
$$;
CREATE FUNCTION last_migration(OUT operation text, OUT operation_class text, OUT state text,
                               OUT mode text, OUT chunk_size int, OUT throttle_io int,
                               OUT lock_mode text, OUT lock_attempts int, OUT rollback_feasibility text)
LANGUAGE sql AS $$
    SELECT operation, operation_class, state, mode, chunk_size, throttle_io, lock_mode,
           lock_attempts, rollback_feasibility
      FROM heliosmig.helios_migrations ORDER BY created_at DESC LIMIT 1
$$;
-- The storage must not change: metadata-only means no rewrite.
SELECT relfilenode AS users_storage FROM pg_class WHERE relname = 'users' \gset

-- ADD COLUMN (nullable)
SELECT heliosmig.start('ALTER TABLE users ADD COLUMN phone VARCHAR(20)') IS NOT NULL AS started;
SELECT * FROM last_migration();
-- ADD COLUMN with a non-volatile default (PostgreSQL stores it once: no rewrite)
SELECT heliosmig.start('ALTER TABLE users ADD COLUMN status text NOT NULL DEFAULT ''active''') IS NOT NULL AS started;
SELECT * FROM last_migration();
SELECT count(*) FILTER (WHERE status = 'active') AS active_rows FROM users;
-- DROP COLUMN, with the spec's trailing WITH (...) options
SELECT heliosmig.start('ALTER TABLE users DROP COLUMN legacy_field WITH (MIGRATION_MODE = ''ONLINE'', CHUNK_SIZE = 5000, THROTTLE_IO = 50, ENABLE_SHADOW_TRAFFIC = true)') IS NOT NULL AS started;
SELECT * FROM last_migration();
-- RENAME COLUMN
SELECT heliosmig.start('ALTER TABLE users RENAME COLUMN email TO email_address') IS NOT NULL AS started;
SELECT * FROM last_migration();
-- Binary-coercible type change, in the spec's MODIFY COLUMN spelling
SELECT heliosmig.start('ALTER TABLE users MODIFY COLUMN email_address VARCHAR(50)') IS NOT NULL AS started;
SELECT * FROM last_migration();
-- DROP INDEX
SELECT heliosmig.start('DROP INDEX idx_users_email') IS NOT NULL AS started;
SELECT * FROM last_migration();
-- DROP CONSTRAINT (a foreign key), and the spec's DROP FOREIGN KEY spelling
SELECT heliosmig.start('ALTER TABLE orders DROP CONSTRAINT fk_user_id') IS NOT NULL AS started;
SELECT * FROM last_migration();
ALTER TABLE orders ADD CONSTRAINT fk_user_id2 FOREIGN KEY (user_id) REFERENCES users NOT VALID;
SELECT heliosmig.start('ALTER TABLE orders DROP FOREIGN KEY fk_user_id2') IS NOT NULL AS started;
-- DROP PRIMARY KEY (spec spelling): the primary key's constraint is found by heliosmig
SELECT heliosmig.start('ALTER TABLE orders DROP PRIMARY KEY') IS NOT NULL AS started;
SELECT * FROM last_migration();

SELECT * FROM table_shape('users');
SELECT * FROM table_shape('orders');
SELECT conname FROM pg_constraint WHERE conrelid IN ('users'::regclass, 'orders'::regclass) ORDER BY 1;
SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 'users'::regclass ORDER BY 1;
SELECT relfilenode = :users_storage AS storage_unchanged FROM pg_class WHERE relname = 'users';
SELECT count(*) AS users_rows, count(DISTINCT email_address) AS emails FROM users;

-- Every migration went CREATED -> PLANNING -> CUTOVER -> COMPLETED and logged its lock.
SELECT operation, string_agg(coalesce(to_state, event), ' > ' ORDER BY log_id) AS history
  FROM heliosmig.helios_migration_logs JOIN heliosmig.helios_migrations USING (migration_id)
 WHERE table_oid IN ('users'::regclass, 'orders'::regclass)
 GROUP BY operation, created_at ORDER BY created_at;
SELECT count(*) AS migrations, count(*) FILTER (WHERE state_entered_at ?& ARRAY['CREATED', 'PLANNING', 'CUTOVER', 'COMPLETED']) AS with_all_state_times,
       count(*) FILTER (WHERE finished_at IS NOT NULL) AS finished
  FROM heliosmig.helios_migrations WHERE table_oid IN ('users'::regclass, 'orders'::regclass);

-- The same operations as plain DDL. With heliosmig.intercept = rewrites (the
-- default) they run with lock safety but are not tracked ...
SELECT count(*) AS before FROM heliosmig.helios_migrations \gset
ALTER TABLE users ADD COLUMN nickname varchar(20);
ALTER TABLE users RENAME COLUMN nickname TO handle;
ALTER TABLE users ALTER COLUMN handle TYPE varchar(30);
ALTER TABLE users ALTER COLUMN handle TYPE varchar(40), ADD COLUMN created_at timestamptz DEFAULT now();
ALTER TABLE users DROP COLUMN handle;
ALTER TABLE users DROP COLUMN created_at;
SELECT count(*) - :before AS tracked FROM heliosmig.helios_migrations;
-- ... and with heliosmig.intercept = all every one is a tracked migration
-- (the NOTICE naming each migration id is silenced here).
SET heliosmig.intercept = 'all';
SET client_min_messages = warning;
SET heliosmig.wait = on;
CREATE INDEX CONCURRENTLY idx_orders_user ON orders (user_id);
RESET heliosmig.wait;
ALTER TABLE users ADD COLUMN nickname text, SET (migration_mode = 'online', chunk_size = 2000, throttle_io = 30);
SELECT * FROM last_migration();
ALTER TABLE users RENAME COLUMN nickname TO handle;
DROP INDEX idx_orders_user;
ALTER TABLE users DROP COLUMN handle;
ALTER TABLE users ALTER COLUMN email_address TYPE varchar(60);
-- Ordinary reloptions pass through; heliosmig's are taken out.
ALTER TABLE users SET (fillfactor = 90, chunk_size = 100);
RESET client_min_messages;
SELECT operation, state FROM heliosmig.helios_migrations ORDER BY created_at DESC LIMIT 6;
SELECT reloptions FROM pg_class WHERE relname = 'users';
-- Options only: nothing to do.
ALTER TABLE users SET (migration_mode = 'online');
RESET heliosmig.intercept;

SELECT * FROM table_shape('users');
SELECT relfilenode = :users_storage AS storage_unchanged FROM pg_class WHERE relname = 'users';

-- Inside a transaction block a metadata migration commits or rolls back with it.
BEGIN;
SELECT heliosmig.start('ALTER TABLE users ADD COLUMN in_tx int') IS NOT NULL AS started;
ROLLBACK;
SELECT count(*) AS in_tx_columns FROM table_shape('users') WHERE col = 'in_tx';
SELECT count(*) AS in_tx_migrations FROM heliosmig.helios_migrations WHERE operation LIKE '%in_tx%';

-- Statements no other session can be blocked by pass straight through:
-- temporary tables, and tables created in the same transaction.
SET heliosmig.intercept = 'all';
BEGIN;
CREATE TABLE fresh (a int);
ALTER TABLE fresh ALTER COLUMN a TYPE bigint;
CREATE INDEX ON fresh (a);
COMMIT;
CREATE TEMP TABLE scratch (a int);
ALTER TABLE scratch ALTER COLUMN a TYPE text;
RESET heliosmig.intercept;
SELECT count(*) AS tracked FROM heliosmig.helios_migrations
 WHERE table_oid IN ('fresh'::regclass, 'scratch'::regclass);
-- ... and statements already online by PostgreSQL's own means. (CREATE
-- INDEX CONCURRENTLY is not one of them: it becomes a tracked migration.)
SET heliosmig.intercept = off;
CREATE INDEX CONCURRENTLY idx_fresh_a2 ON fresh (a);
RESET heliosmig.intercept;
DROP INDEX CONCURRENTLY idx_fresh_a2;
-- Tracked, CONCURRENTLY cannot run inside heliosmig's transaction: a dropped
-- index takes its short lock with lock safety instead, and an offline build is
-- the ordinary blocking one.
SELECT heliosmig.start('CREATE INDEX CONCURRENTLY idx_fresh_a3 ON fresh (a)', mode => 'offline') IS NOT NULL AS started;
SELECT heliosmig.start('DROP INDEX CONCURRENTLY idx_fresh_a3') IS NOT NULL AS started;
SET client_min_messages = warning;
CREATE INDEX CONCURRENTLY idx_fresh_a4 ON fresh (a) WITH (migration_mode = 'offline');
DROP INDEX CONCURRENTLY idx_fresh_a4;
RESET client_min_messages;
SELECT operation, operation_class, state FROM heliosmig.helios_migrations
 WHERE table_oid = 'fresh'::regclass ORDER BY created_at;
SELECT count(*) AS fresh_indexes FROM pg_index WHERE indrelid = 'fresh'::regclass;
CREATE TABLE parted (id int) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
ALTER TABLE parted DETACH PARTITION parted_1 CONCURRENTLY;
SELECT count(*) AS partitions FROM pg_inherits WHERE inhparent = 'parted'::regclass;
DROP TABLE fresh, scratch, parted, parted_1;

-- An explicitly offline migration runs a rewrite the blocking way, tracked.
SELECT heliosmig.start('ALTER TABLE orders ALTER COLUMN amount TYPE bigint', mode => 'offline') IS NOT NULL AS started;
SELECT * FROM last_migration();
SELECT progress FROM heliosmig.show_migrations() LIMIT 1;
SELECT * FROM table_shape('orders');
SELECT sum(amount) AS amount_total FROM orders;

-- The statement resolves names with the user's search_path, in the probe
-- as in the real run: types and functions of the user's own schemas work.
CREATE DOMAIN score AS int CHECK (VALUE >= 0);
CREATE TYPE tier AS ENUM ('free', 'paid');
CREATE FUNCTION default_score() RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT 7';
SELECT heliosmig.start('ALTER TABLE users ADD COLUMN plan tier') IS NOT NULL AS started;
SELECT heliosmig.start('ALTER TABLE users ADD COLUMN points int DEFAULT default_score()') IS NOT NULL AS started;
CREATE DOMAIN label AS text;
ALTER TABLE users ADD COLUMN badge label;
-- (A domain with a CHECK is verified against every row: PostgreSQL rewrites.)
SELECT operation_class FROM heliosmig.explain('ALTER TABLE users ADD COLUMN bonus score DEFAULT 1');
SELECT * FROM table_shape('users') WHERE col IN ('plan', 'points', 'badge');
SELECT DISTINCT points FROM users;

-- Probing leaves no mark on the transaction: it can still be prepared.
BEGIN;
ALTER TABLE users ADD COLUMN prepared_col int;
PREPARE TRANSACTION 'heliosmig_probe_test';
COMMIT PREPARED 'heliosmig_probe_test';
SELECT count(*) AS prepared_col FROM table_shape('users') WHERE col = 'prepared_col';

-- A read-only transaction: PostgreSQL refuses the DDL in its own words, and
-- explain says why it cannot classify.
BEGIN READ ONLY;
ALTER TABLE users ADD COLUMN ro int;
ROLLBACK;
BEGIN READ ONLY;
SELECT operation_class FROM heliosmig.explain('ALTER TABLE users ADD COLUMN ro int');
ROLLBACK;

DROP TABLE orders, users;
DROP FUNCTION table_shape(regclass), last_migration(), default_score();
DROP DOMAIN score, label;
DROP TYPE tier;
