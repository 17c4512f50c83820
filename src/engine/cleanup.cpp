// Removing a migration's artifacts (see include/heliosmig/engine/cleanup.hpp).
#include "heliosmig/engine/cleanup.hpp"
#include "heliosmig/catalog/rewrite_store.hpp"
#include "heliosmig/decode/change_stream.hpp"
#include "heliosmig/pg/spi.hpp"
#include "heliosmig/pg/subtransaction.hpp"
#include "heliosmig/pg/transaction.hpp"

extern "C" {
#include "commands/extension.h"
}

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
    catalog::forget_chunks(migration_id);
}

void drop_orphaned_streams() {
    std::vector<std::string> orphans = pg::in_worker_transaction([] {
        std::vector<std::string> names;
        if (!pg::call([] { return OidIsValid(get_extension_oid("heliosmig", true)); }))
            return names;
        pg::Spi spi;
        pg::Rows rows = spi.query(
            "SELECT s.slot_name::text FROM pg_catalog.pg_replication_slots s"
            " WHERE s.slot_name LIKE 'heliosmig\\_%' AND NOT s.active"
            "   AND s.database = pg_catalog.current_database()"
            "   AND NOT EXISTS (SELECT 1 FROM heliosmig.helios_migrations m"
            "                    WHERE m.state NOT IN ('COMPLETED', 'FAILED', 'ROLLED_BACK')"
            "                      AND s.slot_name = 'heliosmig_' ||"
            "                          pg_catalog.replace(m.migration_id::text, '-', ''))"
            " UNION "
            "SELECT o.roname FROM pg_catalog.pg_replication_origin o"
            " WHERE o.roname LIKE 'heliosmig\\_%'"
            "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s"
            "                    WHERE s.slot_name = o.roname AND s.active)"
            "   AND NOT EXISTS (SELECT 1 FROM heliosmig.helios_migrations m"
            "                    WHERE m.state NOT IN ('COMPLETED', 'FAILED', 'ROLLED_BACK')"
            "                      AND o.roname = 'heliosmig_' ||"
            "                          pg_catalog.replace(m.migration_id::text, '-', ''))");
        for (const pg::Row& row : rows.rows)
            names.push_back(*row[0]);
        return names;
    });
    // One that cannot be dropped now (a process took it meanwhile) waits
    // for the next round; it must not keep the others.
    for (const std::string& name : orphans)
        pg::in_worker_transaction([&] {
            if (auto failed = pg::in_subtransaction([&] { decode::drop_slot_and_origin(name); }))
                pg::call([&] {
                    ereport(LOG, (errmsg("heliosmig: could not drop leftover replication slot or "
                                         "origin \"%s\": %s",
                                         name.c_str(), failed->message().c_str())));
                });
        });
}

} // namespace heliosmig::engine
