// Preconditions of an online rewrite (see include/heliosmig/plan/rewrite_checks.hpp).
#include "heliosmig/plan/rewrite_checks.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/spi.hpp"

extern "C" {
#include "access/xlog.h"
#include "replication/slot.h"
#include "utils/guc.h"
#include "utils/varlena.h"
}

#include <fmt/format.h>

namespace heliosmig::plan {

namespace {

bool plugin_allowed() {
    return pg::call([] {
        // PostgreSQL 15.19+ loads only the output plugins listed here; older
        // servers have no such setting and load any.
        const char* value = GetConfigOption("output_plugin_libraries", true, false);
        if (value == nullptr)
            return true;
        char* copy = pstrdup(value);
        List* names = NIL;
        if (!SplitGUCList(copy, ',', &names))
            return false;
        ListCell* cell;
        foreach (cell, names)
            if (strcmp(static_cast<const char*>(lfirst(cell)), "heliosmig") == 0)
                return true;
        return false;
    });
}

std::string subcommand_blocker(const Statement& st) {
    if (st.kind != StatementKind::AlterTable)
        return "only ALTER TABLE statements run as online rewrites";
    auto* alter = reinterpret_cast<AlterTableStmt*>(st.tree);
    ListCell* cell;
    foreach (cell, alter->cmds) {
        auto* cmd = static_cast<AlterTableCmd*>(lfirst(cell));
        if (cmd->subtype == AT_AddColumn) {
            auto* def = reinterpret_cast<ColumnDef*>(cmd->def);
            if (def->identity != 0)
                return "adding an identity column in an online rewrite is not supported yet";
            ListCell* c;
            foreach (c, def->constraints) {
                auto* con = static_cast<Constraint*>(lfirst(c));
                if (con->contype == CONSTR_IDENTITY)
                    return "adding an identity column in an online rewrite is not supported yet";
                if (con->contype == CONSTR_FOREIGN || con->contype == CONSTR_UNIQUE ||
                    con->contype == CONSTR_PRIMARY || con->contype == CONSTR_EXCLUSION)
                    return "adding a column with an inline key or reference in an online rewrite "
                           "is not supported yet";
            }
            if (def->typeName != nullptr && list_length(def->typeName->names) == 1) {
                const char* type = strVal(llast(def->typeName->names));
                for (const char* serial :
                     {"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"})
                    if (strcmp(type, serial) == 0)
                        return "adding a serial column in an online rewrite is not supported yet";
            }
        }
        if (cmd->subtype == AT_SetLogged || cmd->subtype == AT_SetUnLogged ||
            cmd->subtype == AT_SetAccessMethod)
            return "changing a table's persistence or access method online is not supported yet";
        if (cmd->subtype == AT_AddConstraint) {
            auto* con = reinterpret_cast<Constraint*>(cmd->def);
            if (con->contype == CONSTR_FOREIGN || con->contype == CONSTR_EXCLUSION)
                return "adding a foreign key or exclusion constraint in an online rewrite is not "
                       "supported yet";
        }
    }
    return {};
}

} // namespace

std::string rewrite_blocker(const Statement& st) {
    if (pg::call([] { return wal_level < WAL_LEVEL_LOGICAL; }))
        return "online rewrites capture changes by logical decoding, which needs wal_level = "
               "logical (set it in postgresql.conf and restart the server)";
    if (!plugin_allowed())
        return "the server does not load heliosmig's output plugin: add heliosmig to "
               "output_plugin_libraries (e.g. output_plugin_libraries = 'pgoutput, "
               "test_decoding, heliosmig') and reload";
    if (std::string why = subcommand_blocker(st); !why.empty())
        return why;

    pg::Spi spi;
    const std::string relid = std::to_string(st.relid);
    pg::Row table = spi.query("SELECT c.relkind::text, c.relpersistence::text,"
                              "       EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i"
                              "                WHERE i.inhparent = c.oid)::text,"
                              "       EXISTS (SELECT 1 FROM pg_catalog.pg_index x"
                              "                WHERE x.indrelid = c.oid"
                              "                  AND (x.indisprimary OR x.indisreplident))::text,"
                              "       c.relreplident::text,"
                              "       EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k"
                              "                WHERE k.conrelid = c.oid AND k.contype = 'x')::text,"
                              "       (c.relreplident = 'i' AND EXISTS ("
                              "            SELECT 1 FROM pg_catalog.pg_index p"
                              "             WHERE p.indrelid = c.oid AND p.indisprimary"
                              "               AND NOT p.indisreplident))::text"
                              "  FROM pg_catalog.pg_class c WHERE c.oid = $1::oid",
                              {relid})
                        .rows.at(0);
    if (*table[0] == "p")
        return "online rewrites of partitioned tables are not supported yet";
    if (*table[1] != "p")
        return "online rewrites need a permanent table: unlogged tables are not logically decoded";
    if (*table[2] == "true")
        return "online rewrites of tables with inheritance children are not supported yet";
    if (*table[3] != "true")
        return fmt::format("table {} has no primary key or replica identity index: an online "
                           "rewrite copies the table in key order and matches captured changes by "
                           "key (add a primary key first)",
                           st.table_name);
    if (*table[4] == "n")
        return fmt::format("table {} has REPLICA IDENTITY NOTHING: deletes would not say which "
                           "row they removed",
                           st.table_name);
    if (*table[5] == "true")
        return "online rewrites of tables with exclusion constraints are not supported yet";
    // Captured old rows carry the replica identity's columns, and the copy
    // is keyed by the primary key: they must be the same columns.
    if (*table[6] == "true")
        return fmt::format("table {} has a primary key and a different replica identity index: "
                           "online rewrites of such tables are not supported yet",
                           st.table_name);

    // PostgreSQL refuses to change the type of a column that a view, rule,
    // trigger or policy uses; it would say so only at cutover.
    auto* alter = reinterpret_cast<AlterTableStmt*>(st.tree);
    ListCell* cell;
    foreach (cell, alter->cmds) {
        auto* cmd = static_cast<AlterTableCmd*>(lfirst(cell));
        if (cmd->subtype != AT_AlterColumnType)
            continue;
        pg::Value user =
            spi.scalar("SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)"
                       "  FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attribute a"
                       "    ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
                       " WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
                       "   AND d.refobjid = $1::oid AND a.attname = $2 AND d.deptype IN ('n', 'a')"
                       "   AND d.classid IN ('pg_catalog.pg_rewrite'::pg_catalog.regclass,"
                       "                     'pg_catalog.pg_trigger'::pg_catalog.regclass,"
                       "                     'pg_catalog.pg_policy'::pg_catalog.regclass)"
                       " ORDER BY 1 LIMIT 1",
                       {relid, std::string(cmd->name)});
        if (user)
            return fmt::format("cannot alter type of a column used by a view, rule, trigger or "
                               "policy: column \"{}\" is used by {} (ALTER TABLE would refuse "
                               "too; drop it first)",
                               cmd->name, *user);
    }

    pg::Row slots =
        spi.query("SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_replication_slots)::int,"
                  "       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_replication_origin)::int,"
                  "       pg_catalog.current_setting('max_replication_slots')::int")
            .rows.at(0);
    const int max_slots = std::stoi(*slots[2]);
    if (std::stoi(*slots[0]) >= max_slots || std::stoi(*slots[1]) >= max_slots)
        return fmt::format("no free replication slot or origin (max_replication_slots = {}): an "
                           "online rewrite needs one of each; raise max_replication_slots or "
                           "drop unused slots",
                           max_slots);
    return {};
}

} // namespace heliosmig::plan
