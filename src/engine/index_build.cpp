// Native-concurrent index builds (see include/heliosmig/engine/index_build.hpp).
#include "heliosmig/engine/index_build.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/spi.hpp"
#include "heliosmig/pg/transaction.hpp"
#include "heliosmig/pg/utility.hpp"
#include "heliosmig/plan/statement.hpp"

extern "C" {
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
}

#include <fmt/format.h>

namespace heliosmig::engine {

namespace {

using catalog::State;

struct IndexState {
    bool exists = false;
    bool valid = false;
};

IndexState find_index(const catalog::Task& task) {
    pg::Spi spi;
    pg::Rows rows = spi.query("SELECT i.indisvalid AND i.indisready AND i.indislive"
                              "  FROM pg_catalog.pg_index i"
                              "  JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
                              " WHERE i.indrelid = $1::oid AND c.relname = $2",
                              {std::to_string(task.table_oid), task.object_name});
    if (rows.rows.empty())
        return {};
    return {true, *rows.rows.front().front() == "t"};
}

// The index's name, qualified with the table's schema (indexes live there).
std::string qualified_index_name(const catalog::Task& task) {
    pg::Spi spi;
    return *spi.scalar("SELECT pg_catalog.quote_ident(n.nspname) || '.' ||"
                       "       pg_catalog.quote_ident($2)"
                       "  FROM pg_catalog.pg_class c"
                       "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                       " WHERE c.oid = $1::oid",
                       {std::to_string(task.table_oid), task.object_name});
}

// DROP INDEX CONCURRENTLY: removes an index, valid or not, without blocking
// writes; as a top-level command of its own.
void drop_index(const catalog::Task& task) {
    const std::string name = pg::in_worker_transaction([&] { return qualified_index_name(task); });
    const std::string sql = fmt::format("DROP INDEX CONCURRENTLY IF EXISTS {}", name);
    plan::Statement drop = plan::parse_statement(sql);
    pg::run_toplevel_utility(drop.tree, drop.source);
}

// The recorded CREATE INDEX, parsed again under the migration's search_path
// (set for the worker's session), with the name chosen at start and
// CONCURRENTLY: PostgreSQL's own concurrent build, which waits out running
// transactions and never blocks writes (SHARE UPDATE EXCLUSIVE).
void build_index(const catalog::Task& task) {
    plan::Statement create = plan::parse_statement(task.statement);
    IndexStmt* stmt = castNode(IndexStmt, create.tree);
    const char* name = task.object_name.c_str();
    stmt->idxname = pg::call([&] { return pstrdup(name); });
    stmt->concurrent = true;
    pg::run_toplevel_utility(create.tree, create.source);
}

void prepare(const catalog::Task& task) {
    IndexState index = pg::in_worker_transaction([&] { return find_index(task); });
    if (index.exists && index.valid) {
        pg::in_worker_transaction([&] {
            catalog::log_event(task.id, catalog::LogLevel::Info, "index_built",
                               fmt::format("index {} exists and is valid", task.object_name));
        });
    } else {
        // An INVALID index of that name is what a build interrupted by a crash
        // leaves behind (the name was free when the migration started).
        if (index.exists)
            drop_index(task);
        pg::in_worker_transaction([&] { catalog::set_phase(task.id, "building index"); });
        build_index(task);
    }
    pg::in_worker_transaction([&] {
        catalog::set_phase(task.id, "index built");
        catalog::transition_from(task.id, State::Preparing, State::Validating,
                                 fmt::format("index {} built", task.object_name));
    });
}

void validate(const catalog::Task& task) {
    pg::in_worker_transaction([&] {
        IndexState index = find_index(task);
        if (!index.exists || !index.valid)
            pg::raise(ERRCODE_INTERNAL_ERROR,
                      fmt::format("index {} is not valid after its build", task.object_name));
        catalog::set_rollback_feasibility(task.id, "IMPOSSIBLE");
        catalog::transition_from(task.id, State::Validating, State::Completed,
                                 fmt::format("index {} is valid and ready", task.object_name));
    });
}

} // namespace

void index_build_step(const catalog::Task& task, State state) {
    switch (state) {
    case State::Planning:
        pg::in_worker_transaction([&] {
            catalog::transition_from(
                task.id, State::Planning, State::Preparing,
                fmt::format("building index {} concurrently", task.object_name));
        });
        break;
    case State::Preparing:
        prepare(task);
        break;
    case State::Validating:
        validate(task);
        break;
    default:
        pg::raise(ERRCODE_INTERNAL_ERROR,
                  fmt::format("an index build has no step for state {}", state_name(state)));
    }
}

void index_build_undo(const catalog::Task& task) {
    if (pg::in_worker_transaction([&] { return find_index(task).exists; }))
        drop_index(task);
}

} // namespace heliosmig::engine
