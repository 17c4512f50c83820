// Running a utility statement (a DDL parse tree) from C++.
#pragma once

#include "heliosmig/pg/postgres.hpp"

extern "C" {
#include "nodes/nodes.h"
}

#include <string>

namespace heliosmig::pg {

// Runs the statement through ProcessUtility, as a statement of the current
// transaction (it takes whatever locks PostgreSQL takes for it, held until
// the transaction or subtransaction ends), then makes its effects visible with
// CommandCounterIncrement. The tree is not modified (readOnlyTree).
// heliosmig's own hook lets it through unexamined.
void execute_utility(Node* statement, const std::string& source);

// In a background worker, between transactions: runs the statement as a
// top-level command in its own transaction, the way the server runs a client's
// statement (so that CREATE/DROP INDEX CONCURRENTLY, which commit and start
// transactions themselves, can run). heliosmig's hook lets it through.
void run_toplevel_utility(Node* statement, const std::string& source);

// True while heliosmig itself is running a statement through execute_utility.
bool executing_internally();

} // namespace heliosmig::pg
