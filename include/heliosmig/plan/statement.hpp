// A DDL statement heliosmig can run as a migration: parsed by PostgreSQL's
// parser, its migration options taken out, its target table resolved.
#pragma once

#include "heliosmig/plan/options.hpp"
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "nodes/parsenodes.h"
}

#include <string>

namespace heliosmig::plan {

enum class StatementKind {
    AlterTable,  // ALTER TABLE t <subcommands>
    Rename,      // ALTER TABLE t RENAME [COLUMN] a TO b / RENAME CONSTRAINT / RENAME TO
    DropIndex,   // DROP INDEX [CONCURRENTLY] i
    CreateIndex, // CREATE [UNIQUE] INDEX [CONCURRENTLY] ...
};

struct Statement {
    StatementKind kind = StatementKind::AlterTable;
    Node* tree = nullptr;   // the utility statement, without migration options
    std::string source;     // text the tree's locations refer to (may hold more statements)
    std::string sql;        // this statement alone, in PostgreSQL syntax
    std::string ddl;        // as the user wrote it
    std::string operation;  // one-line description, for show_migrations()
    OptionList options;     // migration options found in the statement
    Oid relid = InvalidOid; // the table being changed
    char relkind = 0;
    std::string table_name; // schema-qualified, quoted
};

// The table's name, schema-qualified and quoted as needed.
std::string qualified_table_name(Oid relid);

// Whether heliosmig knows this kind of utility statement at all.
bool is_migratable_node(const Node* node);

// Parses text (which may use the specification's spellings) into exactly one
// statement. Errors: syntax errors, more than one statement, statements that
// are not ALTER TABLE / CREATE INDEX / DROP INDEX / RENAME, unknown tables.
Statement parse_statement(const std::string& ddl);

// Builds a Statement from a tree the ProcessUtility hook received; location
// and length delimit it in source (length 0: to the end). The tree is copied;
// migration options are stripped from the copy.
Statement statement_from_tree(Node* tree, const char* source, int location = 0, int length = 0);

// Takes heliosmig's options out of an ALTER TABLE's SET (...) subcommands
// (dropping a SET left empty), adding them to found. Errors if nothing but
// options remains.
void strip_alter_table_options(AlterTableStmt* stmt, OptionList& found);

// Resolves the target table and checks it can be migrated by the current user:
// it must exist, be an ordinary or partitioned table, not be temporary, and be
// owned by the user. Takes no lock.
void resolve_target(Statement& statement);

// heliosmig runs a migration's statement inside a transaction (the caller's,
// in a subtransaction), where CONCURRENTLY cannot run. A tracked DROP INDEX
// CONCURRENTLY becomes a plain DROP INDEX, whose short lock heliosmig takes
// with lock safety; an offline CREATE INDEX CONCURRENTLY becomes the ordinary
// blocking build the user asked for with mode 'offline'.
void drop_concurrently(Statement& statement);

// Errors if a relation of that name exists in the table's schema (where an
// index on the table would go).
void require_free_relation_name(Oid relid, const std::string& name);

// The name a CREATE INDEX will create: the one written, or one chosen the
// way PostgreSQL chooses (table_column_idx, made unique in the schema), so the
// migration can find, check and clean up its index. The statement's tree gets
// the name. Errors: the name is taken.
std::string choose_index_name(Statement& statement);

// Runs f() for a statement heliosmig parsed itself (heliosmig.start/explain):
// an error whose cursor position points into the statement's text is reported
// against that text (internal query), not against the client's query.
template <typename F>
auto with_statement_positions(const std::string& text, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (pg::Error& e) {
        e.locate_in(text);
        throw;
    }
}

} // namespace heliosmig::plan
