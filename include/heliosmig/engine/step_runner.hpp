// Running the planned steps of a native-concurrent migration in its worker
// (the steps: include/heliosmig/plan/concurrent_steps.hpp).
//
// Each call runs at most one step and records it, so the worker re-reads the
// migration's state (pause, rollback) between steps. Steps are idempotent: a
// worker restarted after a crash repeats the step it was in.
#pragma once

#include "heliosmig/catalog/store.hpp"

namespace heliosmig::engine {

// Runs the next step for the migration's current state, or moves the state on
// when the steps of this state are done (to COMPLETED after the last).
void run_next_step(const catalog::Task& task, catalog::State state);

// Undoes, in reverse order, every step that started: drops the indexes and
// constraints they created (CONCURRENTLY where that exists), restores NOT NULL.
// Query cancels are held off meanwhile: a rollback() arriving during a
// failure's undo must not leave it half done. Returns false if a step could
// not be undone (logged with the reason).
bool undo_steps(const catalog::Task& task);

} // namespace heliosmig::engine
