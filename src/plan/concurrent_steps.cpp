// Planning native-concurrent steps (see include/heliosmig/plan/concurrent_steps.hpp).
#include "heliosmig/plan/concurrent_steps.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/spi.hpp"

extern "C" {
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "commands/defrem.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
}

#include <fmt/format.h>

#include <algorithm>

namespace heliosmig::plan {

namespace {

constexpr const char* kAccessExclusive = "AccessExclusiveLock";
constexpr const char* kShareUpdateExclusive = "ShareUpdateExclusiveLock";
constexpr const char* kShareRowExclusive = "ShareRowExclusiveLock";

std::string quote(const std::string& identifier) {
    const char* id = identifier.c_str();
    return pg::call([&] { return static_cast<const char*>(quote_identifier(id)); });
}

int state_rank(const std::string& state) {
    return state == "PREPARING" ? 0 : state == "VALIDATING" ? 1 : 2;
}

// A constraint name PostgreSQL would choose, free in the table's schema.
std::string choose_constraint_name(Oid relid, const std::string& column, const char* label) {
    const char* col = column.empty() ? nullptr : column.c_str();
    return pg::call([&] {
        return static_cast<const char*>(
            ChooseConstraintName(get_rel_name(relid), col, label, get_rel_namespace(relid), NIL));
    });
}

std::string choose_relation_name(Oid relid, const std::string& column, const char* label) {
    const char* col = column.empty() ? nullptr : column.c_str();
    return pg::call([&] {
        return static_cast<const char*>(
            ChooseRelationName(get_rel_name(relid), col, label, get_rel_namespace(relid), false));
    });
}

std::string qualified_in_table_schema(Oid relid, const std::string& name) {
    const char* n = name.c_str();
    return pg::call([&] {
        return static_cast<const char*>(
            quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), n));
    });
}

bool column_is_not_null(Oid relid, const std::string& column) {
    pg::Spi spi;
    return spi.scalar("SELECT attnotnull FROM pg_catalog.pg_attribute"
                      " WHERE attrelid = $1::oid AND attname = $2 AND NOT attisdropped",
                      {std::to_string(relid), column}) == pg::Value("t");
}

// A name the user gave must be free: the steps find their objects by name,
// and undo drops by name, so an existing object must never be taken for ours.
void require_free_constraint_name(Oid relid, const std::string& name) {
    pg::Spi spi;
    if (spi.scalar(
            "SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND conname = $2",
            {std::to_string(relid), name}))
        pg::raise(ERRCODE_DUPLICATE_OBJECT,
                  fmt::format("constraint \"{}\" for relation {} already exists", name,
                              qualified_table_name(relid)));
}

std::vector<std::string> string_list(List* list) {
    std::vector<std::string> out;
    ListCell* cell;
    foreach (cell, list)
        out.emplace_back(strVal(lfirst(cell)));
    return out;
}

// Key columns joined with "_", as PostgreSQL names indexes and keys.
std::string joined_names(const std::vector<std::string>& columns) {
    std::string out;
    for (const std::string& c : columns)
        out += (out.empty() ? "" : "_") + c;
    return out;
}

std::string joined_columns(const std::vector<std::string>& columns) {
    std::string out;
    for (const std::string& c : columns)
        out += (out.empty() ? "" : ", ") + quote(c);
    return out;
}

const AlterTableCmd* single_command(const Statement& st) {
    const AlterTableStmt* stmt = castNode(AlterTableStmt, st.tree);
    return list_length(stmt->cmds) == 1 ? linitial_node(AlterTableCmd, stmt->cmds) : nullptr;
}

// SET NOT NULL through a validated CHECK: the scan happens in VALIDATE, which
// lets writes through; SET NOT NULL then finds the check and skips its own.
void not_null_steps(const Statement& st, const std::string& column, std::vector<Step>& steps) {
    const std::string helper = choose_constraint_name(st.relid, column, "heliosmig_not_null");
    const std::string table = st.table_name;
    steps.push_back(
        {"PREPARING", "add_constraint",
         fmt::format("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID", table,
                     quote(helper), quote(column)),
         helper, kAccessExclusive,
         fmt::format("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}", table, quote(helper)), false,
         fmt::format("add CHECK ({} IS NOT NULL) NOT VALID as {}", column, helper)});
    steps.push_back({"VALIDATING", "validate",
                     fmt::format("ALTER TABLE {} VALIDATE CONSTRAINT {}", table, quote(helper)),
                     helper, kShareUpdateExclusive, "", false,
                     fmt::format("validate {}: scan the table without blocking writes", helper)});
    steps.push_back(
        {"CUTOVER", "ddl",
         fmt::format("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL", table, quote(column)), "",
         kAccessExclusive,
         fmt::format("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL", table, quote(column)), false,
         fmt::format("SET NOT NULL on {}: no scan, {} proves it", column, helper)});
    steps.push_back(
        {"CUTOVER", "ddl",
         fmt::format("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}", table, quote(helper)), "",
         kAccessExclusive, "", false, fmt::format("drop {}", helper)});
}

void index_steps(const std::string& index, const std::string& create_sql, const std::string& undo,
                 std::vector<Step>& steps) {
    steps.push_back({"PREPARING", "build_index", create_sql, index, kShareUpdateExclusive, undo,
                     true, fmt::format("build index {} concurrently", index)});
    steps.push_back({"VALIDATING", "check_index", "", index, "none", "", false,
                     fmt::format("check that index {} is valid and ready", index)});
}

void unique_steps(Statement& st, Constraint* con, std::vector<Step>& steps) {
    const bool primary = con->contype == CONSTR_PRIMARY;
    const std::vector<std::string> keys = string_list(con->keys);
    const std::vector<std::string> including = string_list(con->including);
    if (primary)
        for (const std::string& key : keys)
            if (!column_is_not_null(st.relid, key))
                not_null_steps(st, key, steps);

    if (con->conname) {
        require_free_constraint_name(st.relid, con->conname);
        require_free_relation_name(st.relid, con->conname);
    }
    std::string name = con->conname
                           ? con->conname
                           : choose_relation_name(st.relid, primary ? "" : joined_names(keys),
                                                  primary ? "pkey" : "key");
    con->conname = pg::call([&] { return pstrdup(name.c_str()); });
    const std::string index = qualified_in_table_schema(st.relid, name);
    const std::string create = fmt::format(
        "CREATE UNIQUE INDEX CONCURRENTLY {} ON {} ({}){}{}", quote(name), st.table_name,
        joined_columns(keys),
        including.empty() ? "" : fmt::format(" INCLUDE ({})", joined_columns(including)),
        con->nulls_not_distinct ? " NULLS NOT DISTINCT" : "");
    index_steps(name, create, fmt::format("DROP INDEX CONCURRENTLY IF EXISTS {}", index), steps);
    steps.push_back(
        {"CUTOVER", "add_constraint",
         fmt::format("ALTER TABLE {} ADD CONSTRAINT {} {} USING INDEX {}{}", st.table_name,
                     quote(name), primary ? "PRIMARY KEY" : "UNIQUE", quote(name),
                     con->initdeferred ? " DEFERRABLE INITIALLY DEFERRED"
                     : con->deferrable ? " DEFERRABLE"
                                       : ""),
         name, kAccessExclusive,
         fmt::format("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}", st.table_name, quote(name)),
         false,
         fmt::format("attach index {} as {} constraint {}", name,
                     primary ? "PRIMARY KEY" : "UNIQUE", name)});
}

void check_or_foreign_key_steps(Statement& st, Constraint* con, std::vector<Step>& steps) {
    const bool foreign = con->contype == CONSTR_FOREIGN;
    std::string name;
    if (con->conname) {
        require_free_constraint_name(st.relid, con->conname);
        name = con->conname;
    } else if (foreign)
        name = choose_constraint_name(st.relid, joined_names(string_list(con->fk_attrs)), "fkey");
    else
        name = choose_constraint_name(st.relid, "", "check");
    con->conname = pg::call([&] { return pstrdup(name.c_str()); });
    steps.push_back(
        {"PREPARING", "add_constraint", st.sql, name,
         foreign ? kShareRowExclusive : kAccessExclusive,
         fmt::format("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}", st.table_name, quote(name)),
         false, fmt::format("add {} NOT VALID: existing rows are not checked yet", name)});
    steps.push_back(
        {"VALIDATING", "validate",
         fmt::format("ALTER TABLE {} VALIDATE CONSTRAINT {}", st.table_name, quote(name)), name,
         kShareUpdateExclusive, "", false,
         fmt::format("validate {}: scan the table without blocking writes", name)});
}

} // namespace

bool steps_supported(const Statement& st, std::string& why_not) {
    // PostgreSQL 15 builds no index CONCURRENTLY and adds no foreign key NOT
    // VALID on a partitioned table.
    if (st.relkind == RELKIND_PARTITIONED_TABLE) {
        why_not = "online index builds and constraint validation on a partitioned table are not "
                  "supported yet: migrate each partition";
        return false;
    }
    if (st.kind == StatementKind::CreateIndex)
        return true;
    if (st.kind != StatementKind::AlterTable) {
        why_not = "running this statement online is not supported yet";
        return false;
    }
    const AlterTableCmd* cmd = single_command(st);
    if (cmd == nullptr) {
        why_not = "an online index build or constraint validation runs one subcommand at a "
                  "time; several in one statement are not supported yet: split the statement";
        return false;
    }
    if (cmd->subtype == AT_SetNotNull)
        return true;
    if (cmd->subtype == AT_AddConstraint) {
        const Constraint* con = castNode(Constraint, cmd->def);
        switch (con->contype) {
        case CONSTR_CHECK:
        case CONSTR_FOREIGN:
            return true;
        case CONSTR_UNIQUE:
        case CONSTR_PRIMARY:
            if (con->indexname == nullptr && con->options == NIL && con->indexspace == nullptr &&
                con->where_clause == nullptr && con->keys != NIL)
                return true;
            why_not = "an online UNIQUE or PRIMARY KEY with WITH options, a tablespace, a WHERE "
                      "clause or USING INDEX is not supported yet";
            return false;
        default:
            break;
        }
    }
    switch (cmd->subtype) {
    case AT_AddColumn:
        why_not = "ADD COLUMN with a UNIQUE, CHECK or REFERENCES clause online is not supported "
                  "yet: add the column, then the constraint";
        break;
    case AT_AlterColumnType:
        why_not = "a type change that makes PostgreSQL re-check a constraint or rebuild an index "
                  "online is not supported yet";
        break;
    default:
        why_not = "running this subcommand online is not supported yet";
        break;
    }
    return false;
}

std::vector<Step> plan_steps(Statement& st) {
    std::vector<Step> steps;
    if (st.kind == StatementKind::CreateIndex) {
        const std::string name = choose_index_name(st);
        index_steps(name, st.sql,
                    fmt::format("DROP INDEX CONCURRENTLY IF EXISTS {}",
                                qualified_in_table_schema(st.relid, name)),
                    steps);
        return steps;
    }
    AlterTableCmd* cmd = const_cast<AlterTableCmd*>(single_command(st));
    if (cmd->subtype == AT_SetNotNull && column_is_not_null(st.relid, cmd->name)) {
        // Already NOT NULL: PostgreSQL does nothing, and neither does undo.
        steps.push_back({"CUTOVER", "ddl", st.sql, "", kAccessExclusive, "", false,
                         fmt::format("SET NOT NULL on {}: it is already", cmd->name)});
    } else if (cmd->subtype == AT_SetNotNull) {
        not_null_steps(st, cmd->name, steps);
    } else {
        Constraint* con = castNode(Constraint, cmd->def);
        if (con->contype == CONSTR_UNIQUE || con->contype == CONSTR_PRIMARY)
            unique_steps(st, con, steps);
        else
            check_or_foreign_key_steps(st, con, steps);
    }
    std::stable_sort(steps.begin(), steps.end(), [](const Step& a, const Step& b) {
        return state_rank(a.state) < state_rank(b.state);
    });
    return steps;
}

} // namespace heliosmig::plan
