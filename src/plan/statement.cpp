// Parsing and resolving migration statements (see include/heliosmig/plan/statement.hpp).
#include "heliosmig/plan/statement.hpp"
#include "heliosmig/plan/dialect.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/spi.hpp"

extern "C" {
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parser.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace heliosmig::plan {

namespace {

// Removes heliosmig's keys from a reloptions list; returns the remaining list.
List* strip_options(List* defs, OptionList& found) {
    List* kept = NIL;
    ListCell* cell;
    foreach (cell, defs) {
        DefElem* def = lfirst_node(DefElem, cell);
        if (def->defnamespace == nullptr && is_migration_option(def->defname)) {
            const char* value = pg::call([&] { return defGetString(def); });
            found.emplace_back(def->defname, value);
        } else {
            kept = pg::call([&] { return lappend(kept, def); });
        }
    }
    return kept;
}

} // namespace

void strip_alter_table_options(AlterTableStmt* stmt, OptionList& found) {
    List* cmds = NIL;
    ListCell* cell;
    foreach (cell, stmt->cmds) {
        AlterTableCmd* cmd = lfirst_node(AlterTableCmd, cell);
        if (cmd->subtype == AT_SetRelOptions) {
            List* kept = strip_options(castNode(List, cmd->def), found);
            if (kept == NIL)
                continue;
            cmd->def = reinterpret_cast<Node*>(kept);
        }
        cmds = pg::call([&] { return lappend(cmds, cmd); });
    }
    stmt->cmds = cmds;
    if (cmds == NIL)
        pg::raise(ERRCODE_SYNTAX_ERROR, "ALTER TABLE has no operation besides migration options",
                  {},
                  "Add the change to make, e.g. ALTER TABLE t ADD COLUMN c int, SET "
                  "(migration_mode = 'online').");
}

namespace {

bool is_table_rename(const RenameStmt* stmt) {
    if (stmt->relationType != OBJECT_TABLE && stmt->renameType != OBJECT_TABLE)
        return false;
    return stmt->renameType == OBJECT_COLUMN || stmt->renameType == OBJECT_TABCONSTRAINT ||
           stmt->renameType == OBJECT_TABLE;
}

StatementKind kind_of(const Node* node) {
    switch (nodeTag(node)) {
    case T_AlterTableStmt:
        return StatementKind::AlterTable;
    case T_RenameStmt:
        return StatementKind::Rename;
    case T_DropStmt:
        return StatementKind::DropIndex;
    case T_IndexStmt:
        return StatementKind::CreateIndex;
    default:
        pg::raise(ERRCODE_FEATURE_NOT_SUPPORTED, "heliosmig cannot run this statement", {},
                  "heliosmig runs ALTER TABLE, CREATE INDEX and DROP INDEX statements.");
    }
}

std::string collapse_whitespace(const std::string& text) {
    std::string out;
    bool space = false;
    for (char c : text) {
        if (std::isspace(static_cast<unsigned char>(c))) {
            space = !out.empty();
            continue;
        }
        if (space)
            out.push_back(' ');
        space = false;
        out.push_back(c);
    }
    while (!out.empty() && out.back() == ';')
        out.pop_back();
    return out;
}

// The table a statement changes; missing objects get PostgreSQL's own errors.
Oid target_table(const Statement& st) {
    return pg::call([&]() -> Oid {
        switch (st.kind) {
        case StatementKind::AlterTable:
            return RangeVarGetRelid(castNode(AlterTableStmt, st.tree)->relation, NoLock, false);
        case StatementKind::Rename:
            return RangeVarGetRelid(castNode(RenameStmt, st.tree)->relation, NoLock, false);
        case StatementKind::CreateIndex:
            return RangeVarGetRelid(castNode(IndexStmt, st.tree)->relation, NoLock, false);
        case StatementKind::DropIndex: {
            DropStmt* drop = castNode(DropStmt, st.tree);
            if (list_length(drop->objects) != 1)
                ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                                errmsg("a migration drops one index at a time"),
                                errhint("Start one migration per index.")));
            RangeVar* rv = makeRangeVarFromNameList(castNode(List, linitial(drop->objects)));
            Oid index = RangeVarGetRelid(rv, NoLock, false);
            if (get_rel_relkind(index) != RELKIND_INDEX &&
                get_rel_relkind(index) != RELKIND_PARTITIONED_INDEX)
                ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                                errmsg("\"%s\" is not an index", rv->relname)));
            return IndexGetRelation(index, false);
        }
        }
        return InvalidOid;
    });
}

// ALTER TABLE t DROP PRIMARY KEY named no constraint: now that the table is
// known, put its primary key's name in.
void resolve_primary_key_placeholder(Statement& st) {
    if (st.kind != StatementKind::AlterTable)
        return;
    AlterTableStmt* stmt = castNode(AlterTableStmt, st.tree);
    ListCell* cell;
    foreach (cell, stmt->cmds) {
        AlterTableCmd* cmd = lfirst_node(AlterTableCmd, cell);
        if (cmd->subtype != AT_DropConstraint || cmd->name == nullptr ||
            std::strcmp(cmd->name, kPrimaryKeyPlaceholder) != 0)
            continue;
        pg::Spi spi;
        pg::Value name = spi.scalar("SELECT conname::text FROM pg_catalog.pg_constraint"
                                    " WHERE conrelid = $1::oid AND contype = 'p'",
                                    {std::to_string(st.relid)});
        if (!name)
            pg::raise(ERRCODE_UNDEFINED_OBJECT,
                      fmt::format("table {} has no primary key", st.table_name));
        const char* conname = name->c_str();
        cmd->name = pg::call([&] { return pstrdup(conname); });
    }
}

} // namespace

// Looked up without a lock: a concurrent DROP makes the names vanish, which
// is reported like PostgreSQL's own lookups do.
std::string qualified_table_name(Oid relid) {
    const char* name = pg::call([&]() -> const char* {
        char* rel = get_rel_name(relid);
        char* nsp = get_namespace_name(get_rel_namespace(relid));
        return rel && nsp ? quote_qualified_identifier(nsp, rel) : nullptr;
    });
    if (name == nullptr)
        pg::raise(ERRCODE_UNDEFINED_TABLE,
                  fmt::format("relation with OID {} does not exist", relid));
    return name;
}

bool is_migratable_node(const Node* node) {
    switch (nodeTag(node)) {
    case T_AlterTableStmt:
        return castNode(AlterTableStmt, const_cast<Node*>(node))->objtype == OBJECT_TABLE;
    case T_RenameStmt:
        return is_table_rename(castNode(RenameStmt, const_cast<Node*>(node)));
    case T_DropStmt:
        return castNode(DropStmt, const_cast<Node*>(node))->removeType == OBJECT_INDEX;
    case T_IndexStmt:
        return true;
    default:
        return false;
    }
}

Statement statement_from_tree(Node* tree, const char* source, int location, int length) {
    Statement st;
    st.kind = kind_of(tree);
    st.tree = static_cast<Node*>(pg::call([&] { return copyObjectImpl(tree); }));
    st.source = source ? source : "";
    const size_t begin = std::min(static_cast<size_t>(std::max(location, 0)), st.source.size());
    st.sql = length > 0 ? st.source.substr(begin, length) : st.source.substr(begin);
    st.ddl = st.sql;
    if (st.kind == StatementKind::AlterTable)
        strip_alter_table_options(castNode(AlterTableStmt, st.tree), st.options);
    else if (st.kind == StatementKind::CreateIndex) {
        IndexStmt* index = castNode(IndexStmt, st.tree);
        index->options = strip_options(index->options, st.options);
    }
    st.operation = collapse_whitespace(st.sql);
    return st;
}

Statement parse_statement(const std::string& ddl) {
    DialectResult pgsql = with_statement_positions(ddl, [&] { return normalize_dialect(ddl); });
    const char* text = pgsql.sql.c_str();
    List* parsed = with_statement_positions(
        pgsql.sql, [&] { return pg::call([&] { return raw_parser(text, RAW_PARSE_DEFAULT); }); });
    if (list_length(parsed) != 1)
        pg::raise(
            ERRCODE_SYNTAX_ERROR,
            fmt::format("a migration runs exactly one statement, not {}", list_length(parsed)), {},
            "Start one migration per statement.");
    RawStmt* raw = linitial_node(RawStmt, parsed);
    if (!is_migratable_node(raw->stmt))
        pg::raise(ERRCODE_FEATURE_NOT_SUPPORTED, "heliosmig cannot run this statement",
                  fmt::format("Statement: {}", collapse_whitespace(pgsql.sql)),
                  "heliosmig runs ALTER TABLE, CREATE INDEX and DROP INDEX statements.");
    Statement st = statement_from_tree(raw->stmt, text);
    st.ddl = ddl;
    st.operation = collapse_whitespace(pgsql.display);
    st.options.insert(st.options.end(), pgsql.options.begin(), pgsql.options.end());
    return st;
}

void drop_concurrently(Statement& st) {
    if (st.kind == StatementKind::DropIndex)
        castNode(DropStmt, st.tree)->concurrent = false;
    else if (st.kind == StatementKind::CreateIndex)
        castNode(IndexStmt, st.tree)->concurrent = false;
}

void require_free_relation_name(Oid relid, const std::string& name) {
    const char* n = name.c_str();
    bool taken =
        pg::call([&] { return OidIsValid(get_relname_relid(n, get_rel_namespace(relid))); });
    if (taken)
        pg::raise(ERRCODE_DUPLICATE_TABLE, fmt::format("relation \"{}\" already exists", name));
}

std::string choose_index_name(Statement& st) {
    IndexStmt* stmt = castNode(IndexStmt, st.tree);
    const Oid relid = st.relid;
    if (stmt->idxname != nullptr) {
        require_free_relation_name(relid, stmt->idxname);
        return stmt->idxname;
    }
    char* name = pg::call([&]() -> char* {
        Oid namespace_oid = get_rel_namespace(relid);
        const char* column = "expr";
        if (stmt->indexParams != NIL) {
            IndexElem* first = linitial_node(IndexElem, stmt->indexParams);
            if (first->name != nullptr)
                column = first->name;
        }
        char* chosen = ChooseRelationName(get_rel_name(relid), column, "idx", namespace_oid, false);
        stmt->idxname = chosen;
        return chosen;
    });
    return name;
}

void resolve_target(Statement& st) {
    st.relid = target_table(st);
    Oid relid = st.relid;
    st.relkind = pg::call([&] { return get_rel_relkind(relid); });
    st.table_name = qualified_table_name(relid);
    if (st.relkind != RELKIND_RELATION && st.relkind != RELKIND_PARTITIONED_TABLE)
        pg::raise(ERRCODE_WRONG_OBJECT_TYPE, fmt::format("{} is not a table", st.table_name), {},
                  "heliosmig migrates ordinary and partitioned tables.");
    char persistence = pg::call([&] { return get_rel_persistence(relid); });
    if (persistence == RELPERSISTENCE_TEMP)
        pg::raise(ERRCODE_FEATURE_NOT_SUPPORTED,
                  fmt::format("{} is a temporary table", pg::call([&] {
                                  const char* name = get_rel_name(relid);
                                  return name ? name : "the table";
                              })),
                  {}, "No other session can see a temporary table: run the DDL directly.");
    bool owner = pg::call([&] { return pg_class_ownercheck(relid, GetUserId()); });
    if (!owner)
        pg::raise(ERRCODE_INSUFFICIENT_PRIVILEGE,
                  fmt::format("must be owner of table {}", st.table_name), {},
                  "Only the table's owner or a superuser can migrate it.");
    resolve_primary_key_placeholder(st);
}

} // namespace heliosmig::plan
