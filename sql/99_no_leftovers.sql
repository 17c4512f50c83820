-- After every other test: no migration still running, no INVALID index, no
-- NOT VALID constraint, no probe or ghost table, no replication slot left.
SELECT count(*) AS unfinished FROM heliosmig.helios_migrations
 WHERE state NOT IN ('COMPLETED', 'FAILED', 'ROLLED_BACK');
SELECT count(*) AS invalid_indexes FROM pg_index WHERE NOT indisvalid;
SELECT count(*) AS not_valid_constraints FROM pg_constraint WHERE NOT convalidated;
SELECT count(*) AS heliosmig_tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'heliosmig' AND c.relname ~ '^(ghost|old)_';
SELECT count(*) AS temp_tables FROM pg_class WHERE relpersistence = 't';
SELECT count(*) AS slots FROM pg_replication_slots WHERE slot_name LIKE 'heliosmig%';
SELECT count(*) AS origins FROM pg_replication_origin WHERE roname LIKE 'heliosmig%';
