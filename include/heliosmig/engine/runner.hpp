// Running a migration from start to end state.
//
// Metadata-only migrations (and explicitly offline ones) run synchronously in
// the caller's transaction: CREATED -> PLANNING -> CUTOVER -> COMPLETED, the
// statement itself run with lock safety (engine/lock_retry.hpp).
// Native-concurrent migrations are planned as steps and handed to a
// background worker that starts when the caller commits. Ghost-table
// rewrites are refused with a clear "not supported yet" error, before
// anything is recorded.
#pragma once

#include "heliosmig/plan/options.hpp"
#include "heliosmig/plan/statement.hpp"

#include <string>

namespace heliosmig::engine {

struct StartResult {
    std::string migration_id;
    std::string operation_class; // as recorded: metadata, offline, ...
    std::string final_state;
};

// Plans, records and runs the statement. The statement must be resolved
// (plan::resolve_target). Errors leave nothing behind: the caller's
// transaction (or the hook's statement) rolls back with them.
StartResult start_migration(plan::Statement& statement, const plan::MigrationOptions& options);

// For an intercepted statement at top level with heliosmig.wait = on: commits
// the statement's transaction (so the worker can start; no lock on the table
// is held from then on, as with CREATE INDEX CONCURRENTLY), then waits in
// fresh transactions until the migration ends. A FAILED or ROLLED_BACK end is
// an error carrying the migration's reason.
void wait_for_migration(const std::string& migration_id);

// Runs a statement with lock safety but without tracking it (heliosmig.intercept
// = rewrites for statements that need no migration).
void run_untracked(const plan::Statement& statement);

} // namespace heliosmig::engine
