// Removing a migration's artifacts (see include/heliosmig/engine/cleanup.hpp).
#include "heliosmig/engine/cleanup.hpp"
#include "heliosmig/pg/spi.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace heliosmig::engine {

std::string ghost_table_name(Oid table_oid) {
    return fmt::format("heliosmig.ghost_{}", table_oid);
}

std::string slot_name(const std::string& migration_id) {
    std::string hex = migration_id;
    hex.erase(std::remove(hex.begin(), hex.end(), '-'), hex.end());
    return "heliosmig_" + hex;
}

void remove_migration_artifacts(const std::string& migration_id, Oid table_oid) {
    pg::Spi spi;
    const std::string ghost = ghost_table_name(table_oid);
    if (spi.scalar("SELECT pg_catalog.to_regclass($1)::text", {ghost}))
        spi.query(fmt::format("DROP TABLE {}", ghost));
    spi.query("SELECT pg_catalog.pg_drop_replication_slot(slot_name)"
              "  FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
              {slot_name(migration_id)});
}

} // namespace heliosmig::engine
