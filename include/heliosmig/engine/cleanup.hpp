// Removing what a migration created: its ghost table and its replication slot.
#pragma once

#include "heliosmig/pg/postgres.hpp"

#include <string>

namespace heliosmig::engine {

// The names a migration's artifacts get, here so that creator and remover agree.
std::string ghost_table_name(Oid table_oid);            // heliosmig.ghost_<oid>
std::string slot_name(const std::string& migration_id); // heliosmig_<uuid hex>

// Drops the ghost table and the replication slot if they exist. The ghost is
// dropped in the caller's transaction (ACCESS EXCLUSIVE on the ghost only,
// which no application uses); the slot is dropped only once no process is
// using it.
void remove_migration_artifacts(const std::string& migration_id, Oid table_oid);

} // namespace heliosmig::engine
