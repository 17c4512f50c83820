// The steps of a native-concurrent migration: what
// PostgreSQL would do by scanning or building an index under a blocking lock,
// done instead with its non-blocking equivalents, one step at a time:
//
//   CREATE [UNIQUE] INDEX      build CONCURRENTLY; check it is valid
//   ADD CHECK / FOREIGN KEY    add NOT VALID (short lock); VALIDATE (no write block)
//   SET NOT NULL               add CHECK (c IS NOT NULL) NOT VALID; VALIDATE;
//                              SET NOT NULL (no scan: the check proves it); drop the check
//   ADD UNIQUE / PRIMARY KEY   (NOT NULL first, as above, for key columns that
//                              lack it); unique index CONCURRENTLY; check it;
//                              ADD CONSTRAINT ... USING INDEX (short lock)
//
// Steps are ordered by the migration state they run in (PREPARING, then
// VALIDATING, then CUTOVER). Each carries the statement that undoes it, so a
// rollback or failure at any point leaves no INVALID index and no NOT VALID
// constraint behind. Names of what the steps create are chosen here, once.
#pragma once

#include "heliosmig/plan/statement.hpp"

#include <string>
#include <vector>

namespace heliosmig::plan {

struct Step {
    std::string state;       // PREPARING, VALIDATING or CUTOVER
    std::string kind;        // build_index, check_index, add_constraint, validate, ddl
    std::string sql;         // the statement the step runs
    std::string object_name; // the index or constraint it creates or checks
    std::string lock_mode;   // the lock PostgreSQL takes on the table for it
    std::string undo_sql;    // removes what the step created ("" = nothing)
    bool undo_concurrently = false;
    std::string description;
};

// Whether heliosmig can run this native-concurrent statement as steps; if not,
// why (for the "not supported yet" error).
bool steps_supported(const Statement& statement, std::string& why_not);

// Plans the steps for a resolved statement (the table must exist and be owned).
std::vector<Step> plan_steps(Statement& statement);

} // namespace heliosmig::plan
