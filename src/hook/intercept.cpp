// What the hook does with a statement (see include/heliosmig/hook/intercept.hpp).
#include "heliosmig/hook/intercept.hpp"
#include "heliosmig/catalog/store.hpp"
#include "heliosmig/engine/runner.hpp"
#include "heliosmig/plan/plan.hpp"
#include "heliosmig/plan/statement.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/settings/settings.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
}

#include <fmt/format.h>

namespace heliosmig::hook {

namespace {

struct Target {
    Oid relid = InvalidOid;
    bool exists = false;
    bool is_table = false;
    bool private_to_transaction = false; // temporary, or created by this transaction
    bool owned = false;                  // by the current user (else PostgreSQL says no)
};

// The table a statement is about, looked up without a lock and without
// erroring: anything odd is left for PostgreSQL to report in its own words.
Target find_target(Node* node) {
    RangeVar* rv = nullptr;
    Oid index = InvalidOid;
    switch (nodeTag(node)) {
    case T_AlterTableStmt:
        rv = castNode(AlterTableStmt, node)->relation;
        break;
    case T_RenameStmt:
        rv = castNode(RenameStmt, node)->relation;
        break;
    case T_IndexStmt:
        rv = castNode(IndexStmt, node)->relation;
        break;
    case T_DropStmt: {
        DropStmt* drop = castNode(DropStmt, node);
        if (list_length(drop->objects) != 1)
            return {};
        List* names = castNode(List, linitial(drop->objects));
        index = pg::call(
            [&] { return RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true); });
        break;
    }
    default:
        return {};
    }
    Target t;
    t.relid = pg::call([&]() -> Oid {
        if (rv != nullptr)
            return RangeVarGetRelid(rv, NoLock, true);
        if (OidIsValid(index) && get_rel_relkind(index) == RELKIND_INDEX)
            return IndexGetRelation(index, true);
        return InvalidOid;
    });
    if (!OidIsValid(t.relid))
        return t;
    t.exists = true;
    Oid relid = t.relid;
    char relkind = pg::call([&] { return get_rel_relkind(relid); });
    t.is_table = relkind == RELKIND_RELATION || relkind == RELKIND_PARTITIONED_TABLE;
    t.owned = pg::call([&] { return pg_class_ownercheck(relid, GetUserId()); });
    t.private_to_transaction = pg::call([&] {
        if (get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
            return true;
        // rd_createSubid is set while the creating transaction is open; only
        // this backend can see the table, so no one can be blocked by it.
        Relation rel = RelationIdGetRelation(relid);
        if (!RelationIsValid(rel))
            return false;
        bool fresh = rel->rd_createSubid != InvalidSubTransactionId;
        RelationClose(rel);
        return fresh;
    });
    return t;
}

// Statements PostgreSQL already runs without blocking writes, which also
// refuse to run inside a (sub)transaction. (CREATE INDEX CONCURRENTLY is not
// among them: it becomes a tracked migration, built by a worker.)
bool is_concurrent(Node* node) {
    if (IsA(node, DropStmt))
        return castNode(DropStmt, node)->concurrent;
    if (IsA(node, AlterTableStmt)) {
        ListCell* cell;
        foreach (cell, castNode(AlterTableStmt, node)->cmds) {
            AlterTableCmd* cmd = lfirst_node(AlterTableCmd, cell);
            if (cmd->subtype == AT_DetachPartition && castNode(PartitionCmd, cmd->def)->concurrent)
                return true;
        }
    }
    return false;
}

bool restoring_a_dump() {
    return pg::call([] {
        const char* app = GetConfigOption("application_name", true, false);
        return app != nullptr && strcmp(app, "pg_restore") == 0;
    });
}

[[noreturn]] void refuse_schema_locked(const std::string& table, const std::string& id) {
    pg::raise(ERRCODE_OBJECT_IN_USE,
              fmt::format("table {} is being migrated: its schema is locked", table),
              fmt::format("Migration {} is active.", id),
              "Wait for it to finish (heliosmig.show_migration()), or cancel it with "
              "heliosmig.rollback(); then run this statement.");
}

} // namespace

Outcome intercept(Node* node, const char* source, int location, int length, bool top_level) {
    if (!plan::is_migratable_node(node))
        return {};
    Target target = find_target(node);
    if (!target.exists || !target.is_table || !target.owned || target.private_to_transaction)
        return {};
    // CREATE INDEX IF NOT EXISTS of an existing name: PostgreSQL's own NOTICE.
    if (IsA(node, IndexStmt)) {
        const IndexStmt* index = castNode(IndexStmt, node);
        const Oid relid = target.relid;
        if (index->if_not_exists && index->idxname != nullptr && pg::call([&] {
                return OidIsValid(get_relname_relid(index->idxname, get_rel_namespace(relid)));
            }))
            return {};
    }

    if (auto active = catalog::active_migration_for_table(target.relid))
        refuse_schema_locked(plan::qualified_table_name(target.relid), *active);

    // pg_restore builds indexes and constraints on tables it filled itself,
    // in order, each statement relying on the previous ones: it gets
    // PostgreSQL's own behaviour (as with heliosmig.intercept = off).
    const settings::Intercept mode = settings::intercept();
    if (mode == settings::Intercept::Off || restoring_a_dump())
        return {};

    plan::Statement st = plan::statement_from_tree(node, source, location, length);
    // Already online by PostgreSQL's own means.
    if (is_concurrent(node) && st.options.empty())
        return {};

    plan::resolve_target(st);
    plan::MigrationOptions options;
    plan::apply_inline_options(options, st.options);
    plan::validate(options);

    plan::Plan p = plan::make_plan(st, options);
    const bool tracked = mode == settings::Intercept::All ||
                         p.cls == plan::OperationClass::Rewrite ||
                         p.cls == plan::OperationClass::NativeConcurrent || !st.options.empty();

    if (!tracked) {
        engine::run_untracked(st);
        return {Action::Handled, {}};
    }

    const bool asynchronous = p.asynchronous;
    const bool wait = asynchronous && settings::wait_for_completion();
    // The same rules as PostgreSQL's own CONCURRENTLY commands (transaction
    // blocks, pipelines, functions): the migration commits its start, and
    // with heliosmig.wait the statement commits before it waits.
    if (asynchronous)
        pg::call([&] { PreventInTransactionBlock(top_level, "an online migration"); });

    engine::StartResult started = engine::start_migration(st, options);
    if (wait) {
        engine::wait_for_migration(started.migration_id);
        started.final_state = "COMPLETED";
    }
    return {Action::Handled,
            fmt::format("heliosmig: migration {} {} ({})", started.migration_id,
                        started.final_state == "COMPLETED" ? "completed" : "started",
                        started.operation_class)};
}

} // namespace heliosmig::hook
