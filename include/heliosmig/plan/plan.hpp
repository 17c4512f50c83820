// What running a statement involves: its operation class, the
// lock PostgreSQL takes for it, whether data is copied, and the steps
// heliosmig will take. Classification asks PostgreSQL (the probe), it does not
// guess from a list, for everything that may rewrite.
#pragma once

#include "heliosmig/plan/options.hpp"
#include "heliosmig/plan/statement.hpp"

#include <string>
#include <vector>

namespace heliosmig::plan {

enum class OperationClass {
    Metadata,         // catalog-only change under a short lock
    NativeConcurrent, // PostgreSQL would scan or build an index under a blocking lock
    Rewrite,          // PostgreSQL would rewrite the table under ACCESS EXCLUSIVE
    Other,            // a subcommand heliosmig does not classify (e.g. ATTACH PARTITION)
};

std::string_view class_name(OperationClass cls);

struct Plan {
    OperationClass cls = OperationClass::Metadata;
    std::string reason;        // why this class, in the user's terms
    int lock_mode = 0;         // LOCKMODE PostgreSQL takes on the table
    std::string lock_name;     // e.g. "AccessExclusiveLock"
    bool copies_data = false;  // the statement reads or rewrites the whole table
    bool runs_online = false;  // heliosmig can run it without blocking the application
    bool supported = false;    // heliosmig can run it now (online, or offline on request)
    bool asynchronous = false; // a background worker runs it after the caller commits (online only)
    std::string unsupported_why; // when !supported
    std::vector<std::string> steps;
};

// Classifies a resolved statement and lays out the steps for the given
// options. Runs the probe (a discarded subtransaction) when needed; changes
// nothing.
Plan make_plan(const Statement& statement, const MigrationOptions& options);

} // namespace heliosmig::plan
