// Asking PostgreSQL what an ALTER TABLE would do to the table's storage.
//
// The subcommands that may rewrite (ADD COLUMN, ALTER COLUMN TYPE) are run
// against an empty temporary copy of the table's layout (LIKE ... INCLUDING
// ALL, same name, so PostgreSQL's own error messages read right), inside a
// subtransaction that is always rolled back. What changed on the copy is
// PostgreSQL's own answer: a new heap relfilenode is a rewrite, a new index
// relfilenode an index build, a new validated CHECK constraint a validating scan.
#pragma once

#include "heliosmig/pg/postgres.hpp"

extern "C" {
#include "nodes/parsenodes.h"
}

#include <string>

namespace heliosmig::plan {

struct ProbeResult {
    bool rewrites_table = false;
    bool builds_index = false;
    bool validates_constraint = false;
};

// Whether the probe has anything to learn from this subcommand.
bool needs_probe(const AlterTableCmd* cmd);

// Probes the subcommands of stmt that needs_probe() selects. Holds only
// AccessShareLock on the table (taken by LIKE) until the subtransaction ends.
ProbeResult probe_alter_table(Oid relid, const AlterTableStmt* stmt, const std::string& source);

} // namespace heliosmig::plan
