// Driving an asynchronous migration through its states, in its worker.
//
// The catalog row is the single source of truth: the worker re-reads the
// state before every step (a DBA may have paused or rolled it back), moves it
// only with compare-and-set transitions, and each step is idempotent so that
// a worker restarted after a crash can repeat the step it was in.
#pragma once

#include "heliosmig/pg/postgres.hpp"

#include <string>

namespace heliosmig::engine {

// The worker's whole job. Waits for the starting transaction to end first.
void run_migration(const std::string& migration_id, TransactionId starter_xid);

// Called by the worker after an error aborted its transaction: records FAILED
// with the reason and removes what the migration created, or completes a
// rollback if the error was the cancel a rollback sent.
void fail_migration(const std::string& migration_id, const std::string& reason);

// In the current database: starts a worker for each migration that needs one
// and has none (after a server restart, or a worker that died).
void resume_orphaned_migrations();

} // namespace heliosmig::engine
