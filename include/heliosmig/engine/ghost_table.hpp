// The ghost table of a rewrite migration, heliosmig.ghost_<table oid>: the
// table's exact physical layout with the statement applied to it, its
// indexes set aside during the copy and built once afterwards.
#pragma once

#include "heliosmig/engine/rewrite_session.hpp"

namespace heliosmig::engine {

// Creates the ghost (in the caller's transaction): layout clone, the
// table's indexes and CHECK constraints, the statement applied while it is
// empty, its key checked, the transform compiled once to refuse early what
// apply could not do, then its index definitions recorded and the indexes
// dropped (see set_aside_ghost_indexes).
void create_ghost(RewriteSession& s);

bool ghost_has_key(Oid ghost);

// Turns autovacuum off for one of the migration's own tables (the ghost, the
// retained table): a vacuum of the ghost, which takes millions of inserts,
// could otherwise hold a lock the cutover needs, and neither table is ever
// read by the application. Their settings are not the table's: reloptions
// stay with each pg_class row when storage is swapped.
void keep_autovacuum_away(const std::string& qualified_name);

// The ghost's primary key (needed to apply captured changes), then all its
// other indexes; each in its own transaction, repeatable after a restart.
void build_ghost_key(RewriteSession& s);
void build_ghost_indexes(RewriteSession& s);

} // namespace heliosmig::engine
