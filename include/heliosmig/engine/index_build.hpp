// Native-concurrent index builds (DESIGN.md section 2): CREATE [UNIQUE] INDEX
// run as CREATE INDEX CONCURRENTLY by the migration's worker, so writes are
// never blocked; a failed or rolled-back build leaves no INVALID index.
//
// States: PLANNING -> PREPARING (the build; progress from PostgreSQL's
// pg_stat_progress_create_index) -> VALIDATING (the index is valid and
// ready) -> COMPLETED.
#pragma once

#include "heliosmig/catalog/store.hpp"

namespace heliosmig::engine {

// Runs the step for the migration's current state and moves it on.
void index_build_step(const catalog::Task& task, catalog::State state);

// Drops the index the build created, if any (DROP INDEX CONCURRENTLY).
void index_build_undo(const catalog::Task& task);

} // namespace heliosmig::engine
