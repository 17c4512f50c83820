-- The extension installs its schema, catalog and API.
CREATE EXTENSION heliosmig;
SELECT extname, extversion, nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'heliosmig';
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS arguments
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'heliosmig' ORDER BY 1, 2;
SELECT c.relname, c.relkind, c.relrowsecurity
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'heliosmig' AND c.relkind IN ('r', 'v') ORDER BY 1;
SHOW heliosmig.intercept;
SHOW heliosmig.lock_timeout;
SHOW heliosmig.lock_retries;
SHOW heliosmig.wait;
-- Settings outside heliosmig's list are refused (the prefix is reserved).
SET heliosmig.no_such_setting = 1;
