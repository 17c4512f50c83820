// The empty-copy probe (see include/heliosmig/plan/probe.hpp).
#include "heliosmig/plan/probe.hpp"
#include "heliosmig/plan/statement.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/spi.hpp"
#include "heliosmig/pg/subtransaction.hpp"
#include "heliosmig/pg/utility.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
}

#include <fmt/format.h>

#include <set>
#include <utility>

namespace heliosmig::plan {

namespace {

using StorageSet = std::set<std::pair<std::string, std::string>>;

// The heap's relfilenode, every index's relfilenode and every validated CHECK
// constraint of the probe, as (kind, id) pairs.
StorageSet storage_of(Oid relid) {
    pg::Spi spi;
    pg::Rows rows =
        spi.query("SELECT 'heap', relfilenode::text FROM pg_catalog.pg_class WHERE oid = $1::oid"
                  " UNION ALL"
                  " SELECT 'index', c.relfilenode::text FROM pg_catalog.pg_index i"
                  "   JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::oid"
                  " UNION ALL"
                  " SELECT 'check', oid::text FROM pg_catalog.pg_constraint"
                  "  WHERE conrelid = $1::oid AND contype = 'c' AND convalidated",
                  {std::to_string(relid)});
    StorageSet set;
    for (const auto& row : rows.rows)
        set.emplace(*row[0], *row[1]);
    return set;
}

// A copy of the ALTER TABLE aimed at the probe, keeping only what can change
// storage. Foreign keys are dropped from new columns: a temporary table cannot
// reference a permanent one, and a foreign key never rewrites.
AlterTableStmt* probe_statement(const AlterTableStmt* stmt, const char* probe_name) {
    return pg::call([&] {
        AlterTableStmt* copy =
            static_cast<AlterTableStmt*>(copyObjectImpl(const_cast<AlterTableStmt*>(stmt)));
        List* cmds = NIL;
        ListCell* cell;
        foreach (cell, copy->cmds) {
            AlterTableCmd* cmd = lfirst_node(AlterTableCmd, cell);
            if (!needs_probe(cmd))
                continue;
            if (cmd->subtype == AT_AddColumn) {
                ColumnDef* col = castNode(ColumnDef, cmd->def);
                List* constraints = NIL;
                ListCell* c;
                foreach (c, col->constraints) {
                    Constraint* con = lfirst_node(Constraint, c);
                    if (con->contype != CONSTR_FOREIGN)
                        constraints = lappend(constraints, con);
                }
                col->constraints = constraints;
            }
            cmds = lappend(cmds, cmd);
        }
        copy->cmds = cmds;
        copy->relation = makeRangeVar(pstrdup("pg_temp"), pstrdup(probe_name), -1);
        copy->missing_ok = false;
        return copy;
    });
}

} // namespace

bool needs_probe(const AlterTableCmd* cmd) {
    return cmd->subtype == AT_AddColumn || cmd->subtype == AT_AlterColumnType;
}

// The probe creates a temporary table: it needs the TEMPORARY privilege and a
// writable transaction. Say so plainly rather than fail with a confusing error.
void check_probe_possible() {
    bool read_only = pg::call([] { return XactReadOnly || RecoveryInProgress(); });
    if (read_only)
        pg::raise(ERRCODE_READ_ONLY_SQL_TRANSACTION,
                  "heliosmig cannot classify this statement in a read-only transaction", {},
                  "heliosmig asks PostgreSQL whether the statement rewrites the table by running "
                  "it on an empty temporary copy, which needs a read-write transaction.");
    bool may_create_temp = pg::call([] {
        return pg_database_aclcheck(MyDatabaseId, GetUserId(), ACL_CREATE_TEMP) == ACLCHECK_OK;
    });
    if (!may_create_temp)
        pg::raise(ERRCODE_INSUFFICIENT_PRIVILEGE,
                  "heliosmig needs the TEMPORARY privilege on this database to classify the "
                  "statement",
                  {},
                  "heliosmig asks PostgreSQL whether the statement rewrites the table by running "
                  "it on an empty temporary copy. GRANT TEMPORARY ON DATABASE to the role, or SET "
                  "heliosmig.intercept = off to run the statement the ordinary way.");
}

ProbeResult probe_alter_table(Oid relid, const AlterTableStmt* stmt, const std::string& source) {
    check_probe_possible();
    ProbeResult result;
    const char* name = pg::call([&] { return static_cast<const char*>(get_rel_name(relid)); });
    if (name == nullptr)
        pg::raise(ERRCODE_UNDEFINED_TABLE, fmt::format("relation {} does not exist", relid));
    const std::string relname = name;
    const std::string qualified = qualified_table_name(relid);

    // Touching pg_temp marks the transaction (no PREPARE TRANSACTION after it);
    // the probe leaves no temporary object behind, so the mark is put back.
    const int xact_flags = MyXactFlags;
    pg::in_discarded_subtransaction([&] {
        // Same name as the table, so that errors name it as the user does; a
        // temporary table of that name already in the session forces another.
        std::string probe_name = relname;
        {
            pg::Spi spi;
            if (spi.scalar("SELECT 1 FROM pg_catalog.pg_class"
                           " WHERE relname = $1 AND relnamespace = pg_catalog.pg_my_temp_schema()",
                           {probe_name}))
                probe_name = relname + "_heliosmig_probe";
            const std::string quoted_probe = pg::call(
                [&] { return static_cast<const char*>(quote_identifier(probe_name.c_str())); });
            spi.query(fmt::format("CREATE TEMPORARY TABLE pg_temp.{} (LIKE {} INCLUDING ALL)",
                                  quoted_probe, qualified));
        }
        const Oid probe = pg::call([&] {
            return RangeVarGetRelid(
                makeRangeVar(pstrdup("pg_temp"), pstrdup(probe_name.c_str()), -1), NoLock, false);
        });

        // The statement runs with the user's search_path (no Spi is open here),
        // so its types and functions resolve as they will for the real table.
        StorageSet before = storage_of(probe);
        pg::execute_utility(reinterpret_cast<Node*>(probe_statement(stmt, probe_name.c_str())),
                            source);
        StorageSet after = storage_of(probe);

        for (const auto& entry : after) {
            if (before.contains(entry))
                continue;
            if (entry.first == "heap")
                result.rewrites_table = true;
            else if (entry.first == "index")
                result.builds_index = true;
            else
                result.validates_constraint = true;
        }
    });
    MyXactFlags = xact_flags;
    return result;
}

} // namespace heliosmig::plan
