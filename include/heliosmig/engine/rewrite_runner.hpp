// The rewrite engine's state steps (DESIGN.md section 3): PREPARING creates
// the ghost and the slot, COPYING copies one chunk and applies what was
// captured meanwhile, SYNCHRONIZING catches up, VALIDATING compares the
// ghost with the table, READY waits for the cutover request, CUTOVER swaps.
#pragma once

#include "heliosmig/catalog/store.hpp"

namespace heliosmig::engine {

// Runs one step of a rewrite migration in `state` (the worker's loop calls
// it again until the migration ends, pauses or is rolled back).
void run_rewrite_step(const catalog::Task& task, catalog::State state);

// Removes everything the migration created (ghost, slot, origin, chunk
// rows; the retained table only if the cutover never happened). Returns
// whether everything went.
bool undo_rewrite(const catalog::Task& task);

} // namespace heliosmig::engine
