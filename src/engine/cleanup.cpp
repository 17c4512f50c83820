// Removing a migration's artifacts (see include/heliosmig/engine/cleanup.hpp).
#include "heliosmig/engine/cleanup.hpp"
#include "heliosmig/decode/change_stream.hpp"
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

std::string retained_table_name(Oid table_oid, const std::string& migration_id) {
    return fmt::format("heliosmig.old_{}_{}", table_oid, migration_id.substr(0, 8));
}

void remove_migration_artifacts(const std::string& migration_id, Oid table_oid) {
    pg::Spi spi;
    const std::string ghost = ghost_table_name(table_oid);
    if (spi.scalar("SELECT pg_catalog.to_regclass($1)::text", {ghost}))
        spi.query(fmt::format("DROP TABLE {}", ghost));
    // Only a migration that never completed comes here: its retained table
    // (created just before a cutover that failed) holds nothing.
    const std::string retained = retained_table_name(table_oid, migration_id);
    if (spi.scalar("SELECT pg_catalog.to_regclass($1)::text", {retained}))
        spi.query(fmt::format("DROP TABLE {}", retained));
    decode::drop_slot_and_origin(slot_name(migration_id));
}

} // namespace heliosmig::engine
