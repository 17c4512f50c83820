-- Errors raised inside heliosmig's C++ code come back as ordinary PostgreSQL
-- errors: the SQLSTATE is kept, the transaction rolls back cleanly, and the
-- backend keeps serving.
CREATE TABLE boundary_t (id int PRIMARY KEY, v text);

-- An error raised by C++ code itself (option validation).
SELECT heliosmig.start('ALTER TABLE boundary_t ADD COLUMN x int', chunk_size => 0);

-- An error raised by PostgreSQL inside C++ code (the parser), converted to a
-- C++ exception and back: same message and SQLSTATE as PostgreSQL's own.
DO $$
BEGIN
    PERFORM heliosmig.start('ALTER TABLE no_such_table ADD COLUMN x int');
EXCEPTION WHEN undefined_table THEN
    RAISE NOTICE 'caught undefined_table: %', SQLERRM;
END;
$$;

-- An error from deep inside: PostgreSQL rejects the statement while heliosmig
-- probes it in a subtransaction it always rolls back.
DO $$
BEGIN
    PERFORM heliosmig.start('ALTER TABLE boundary_t ALTER COLUMN v TYPE no_such_type');
EXCEPTION WHEN undefined_object THEN
    RAISE NOTICE 'caught undefined_object: %', SQLERRM;
END;
$$;

-- A failed call rolls its transaction back whole and leaves it usable after
-- ROLLBACK TO SAVEPOINT; work before the savepoint survives.
BEGIN;
INSERT INTO boundary_t VALUES (1, 'kept');
SAVEPOINT before_bad_call;
SELECT heliosmig.start('ALTER TABLE boundary_t ADD COLUMN x nonsense_type');
ROLLBACK TO SAVEPOINT before_bad_call;
INSERT INTO boundary_t VALUES (2, 'also kept');
COMMIT;
SELECT * FROM boundary_t ORDER BY id;

-- An error inside the ProcessUtility hook (plain DDL) behaves the same way.
BEGIN;
SAVEPOINT s;
ALTER TABLE boundary_t ADD COLUMN x int, SET (migration_mode = 'sideways');
ROLLBACK TO SAVEPOINT s;
ALTER TABLE boundary_t ADD COLUMN w int;
COMMIT;
SELECT attname FROM pg_attribute
 WHERE attrelid = 'boundary_t'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;

-- Nothing was recorded by the failed calls, and no probe table is left.
SELECT count(*) AS migrations FROM heliosmig.helios_migrations
 WHERE table_oid = 'boundary_t'::regclass;
SELECT count(*) AS temp_tables FROM pg_class WHERE relpersistence = 't';

-- Many errors in a row neither leak nor break the session.
DO $$
BEGIN
    FOR i IN 1..200 LOOP
        BEGIN
            PERFORM heliosmig.start('ALTER TABLE boundary_t ALTER COLUMN v TYPE no_such_type');
        EXCEPTION WHEN undefined_object THEN
            NULL;
        END;
    END LOOP;
END;
$$;
SELECT 'backend alive' AS status;
DROP TABLE boundary_t;
