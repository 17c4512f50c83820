// Removing what a migration created: its ghost table and its replication slot.
#pragma once

#include "heliosmig/pg/postgres.hpp"

#include <string>

namespace heliosmig::engine {

// The names a migration's artifacts get, here so that creator and remover agree.
std::string ghost_table_name(Oid table_oid);            // heliosmig.ghost_<oid>
std::string slot_name(const std::string& migration_id); // heliosmig_<uuid hex>
// heliosmig.old_<oid>_<first 8 hex digits of the id>: the storage a rewrite's
// cutover retires (one per migration, so later migrations of the table
// never collide with one still retained).
std::string retained_table_name(Oid table_oid, const std::string& migration_id);

// Drops the ghost table, the retained table of a cutover that did not
// happen, the replication slot and its origin if they exist. The ghost is
// dropped in the caller's transaction (ACCESS EXCLUSIVE on the ghost only,
// which no application uses); the slot is dropped only once no process is
// using it.
void remove_migration_artifacts(const std::string& migration_id, Oid table_oid);

// Drops the replication slots and origins of this database named like a
// migration's that no unfinished migration owns and no process uses: those
// of a worker that died after its cutover committed but before it dropped
// them, or of a migration whose catalog row is gone. They would keep WAL
// and catalog rows forever. Run by the launcher; its own transactions.
void drop_orphaned_streams();

} // namespace heliosmig::engine
