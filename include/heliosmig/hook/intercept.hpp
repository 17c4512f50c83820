// Deciding what the ProcessUtility hook does with a statement, and doing the
// C++ part of it. Called under pg::run_guarded.
#pragma once

#include "heliosmig/pg/postgres.hpp"

extern "C" {
#include "nodes/nodes.h"
}

#include <string>

namespace heliosmig::hook {

enum class Action {
    PassThrough, // hand the original statement to PostgreSQL
    Handled,     // heliosmig ran it (tracked or with lock safety)
};

struct Outcome {
    Action action = Action::PassThrough;
    std::string notice; // for the client, when not empty
};

// Examines the statement (at location/length in source); runs it itself when
// heliosmig handles it.
// top_level: the statement is the client's own (PROCESS_UTILITY_TOPLEVEL).
Outcome intercept(Node* statement, const char* source, int location, int length, bool top_level);

} // namespace heliosmig::hook
