// What must hold before an online rewrite starts, checked synchronously in
// start() (and shown by explain()) so that nothing fails later that could
// have been seen now: the server can decode (wal_level, the output plugin
// allowlist, a free slot and origin), the table can be copied by key and
// its changes captured, and the statement is one the engine runs.
#pragma once

#include "heliosmig/plan/statement.hpp"

#include <string>

namespace heliosmig::plan {

// Why the statement cannot run as an online rewrite now; empty if it can.
std::string rewrite_blocker(const Statement& statement);

} // namespace heliosmig::plan
