// The ProcessUtility hook: plain DDL in, migrations out.
//
// For ALTER TABLE, CREATE INDEX, DROP INDEX and table renames on ordinary and
// partitioned tables (heliosmig.intercept decides how much):
//  - DDL on a table with an active migration is refused (its schema is locked);
//  - statements that need a rewrite or a blocking scan become migrations
//    (refused as "not supported yet" until those engines exist);
//  - other statements run with lock safety, tracked as migrations when
//    heliosmig.intercept = all.
// Everything else, heliosmig's own statements, extension scripts, temporary
// tables and tables created in the current transaction pass straight through.
#pragma once

namespace heliosmig::hook {

// Installs the hook, chaining to any previous one.
void Init();

} // namespace heliosmig::hook
