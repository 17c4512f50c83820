// heliosmig's configuration parameters (GUCs), registered at load.
#pragma once

namespace heliosmig::settings {

// Which DDL the ProcessUtility hook turns into migrations (heliosmig.intercept).
enum class Intercept {
    Off,      // leave DDL alone
    Rewrites, // rewrites and blocking scans become migrations; other ALTERs get lock safety
    All,      // every ALTER TABLE / CREATE INDEX / DROP INDEX becomes a tracked migration
};

Intercept intercept();
bool wait_for_completion();

// Lock safety: each attempt waits at most lock_timeout_ms for its locks, then
// sleeps a jittered, growing delay (capped at lock_retry_max_delay_ms) and
// tries again, up to lock_retries retries.
int lock_timeout_ms();
int lock_retries();
int lock_retry_max_delay_ms();

// How long a rewrite's old storage is kept after cutover (seconds), before
// the launcher drops it (heliosmig.retention).
int retention_seconds();

// Registers the GUCs; called first from _PG_init.
void Init();

} // namespace heliosmig::settings
