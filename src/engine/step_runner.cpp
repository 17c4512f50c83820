// Running native-concurrent steps (see include/heliosmig/engine/step_runner.hpp).
#include "heliosmig/engine/step_runner.hpp"
#include "heliosmig/engine/lock_retry.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/scopes.hpp"
#include "heliosmig/pg/spi.hpp"
#include "heliosmig/pg/transaction.hpp"
#include "heliosmig/pg/utility.hpp"
#include "heliosmig/plan/statement.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "utils/backend_status.h"
}

#include <fmt/format.h>

namespace heliosmig::engine {

namespace {

using catalog::State;

struct IndexState {
    bool exists = false;
    bool valid = false;
};

IndexState find_index(Oid table, const std::string& name) {
    pg::Spi spi;
    pg::Rows rows = spi.query("SELECT i.indisvalid AND i.indisready AND i.indislive"
                              "  FROM pg_catalog.pg_index i"
                              "  JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
                              " WHERE i.indrelid = $1::oid AND c.relname = $2",
                              {std::to_string(table), name});
    if (rows.rows.empty())
        return {};
    return {true, *rows.rows.front().front() == "t"};
}

bool constraint_exists(Oid table, const std::string& name) {
    pg::Spi spi;
    return spi
        .scalar("SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND conname = $2",
                {std::to_string(table), name})
        .has_value();
}

// A statement that commits and starts transactions itself (CONCURRENTLY), run
// as a top-level command between the worker's transactions.
void run_concurrently(const std::string& sql, const std::string& index_name) {
    plan::Statement st = plan::parse_statement(sql);
    if (st.kind == plan::StatementKind::CreateIndex) {
        IndexStmt* stmt = castNode(IndexStmt, st.tree);
        const char* name = index_name.c_str();
        stmt->idxname = pg::call([&] { return pstrdup(name); });
        stmt->concurrent = true;
    }
    pg::run_toplevel_utility(st.tree, st.source);
}

// A CHECK or FOREIGN KEY from the user's statement is added NOT VALID, under
// the name chosen when the migration started; generated statements already
// say NOT VALID or USING INDEX.
void make_not_valid(plan::Statement& st, const std::string& name) {
    if (st.kind != plan::StatementKind::AlterTable)
        return;
    AlterTableStmt* stmt = castNode(AlterTableStmt, st.tree);
    ListCell* cell;
    foreach (cell, stmt->cmds) {
        AlterTableCmd* cmd = lfirst_node(AlterTableCmd, cell);
        if (cmd->subtype != AT_AddConstraint)
            continue;
        Constraint* con = castNode(Constraint, cmd->def);
        if (con->contype != CONSTR_CHECK && con->contype != CONSTR_FOREIGN)
            continue;
        const char* n = name.c_str();
        con->conname = pg::call([&] { return pstrdup(n); });
        con->skip_validation = true;
        con->initially_valid = false;
    }
}

// A statement with a short lock: in a worker transaction, with lock safety;
// what the lock cost is recorded with the migration.
void run_locked(const std::string& id, plan::Statement& st, const std::string& what) {
    pg::in_worker_transaction([&] {
        LockWait wait =
            run_with_lock_retries(what, [&] { pg::execute_utility(st.tree, st.source); });
        catalog::record_lock_wait(id, wait.attempts, wait.waited_ms);
        catalog::log_event(id, catalog::LogLevel::Info, "lock_acquired",
                           fmt::format("{}: locks acquired after {} attempt(s), {:.1f} ms waiting",
                                       what, wait.attempts, wait.waited_ms));
    });
}

void run_step(const catalog::Task& task, const plan::Step& step) {
    const std::string& name = step.object_name;
    // What the worker is doing, for pg_stat_activity.query.
    const std::string activity = fmt::format("heliosmig {}: {}", task.id, step.description);
    pg::call([&] { pgstat_report_activity(STATE_RUNNING, activity.c_str()); });
    if (step.kind == "build_index") {
        IndexState index =
            pg::in_worker_transaction([&] { return find_index(task.table_oid, name); });
        if (index.exists && index.valid)
            return;
        // An INVALID index of that name is what a build interrupted by a crash
        // leaves behind (the name was free when the migration started).
        if (index.exists)
            run_concurrently(step.undo_sql, name);
        pg::in_worker_transaction([&] { catalog::set_phase(task.id, "building index " + name); });
        run_concurrently(step.sql, name);
        pg::in_worker_transaction([&] { catalog::set_phase(task.id, "index " + name + " built"); });
        return;
    }
    if (step.kind == "check_index") {
        pg::in_worker_transaction([&] {
            IndexState index = find_index(task.table_oid, name);
            if (!index.exists || !index.valid)
                pg::raise(ERRCODE_INTERNAL_ERROR,
                          fmt::format("index {} is not valid after its build", name));
        });
        return;
    }
    if (step.kind == "add_constraint" &&
        pg::in_worker_transaction([&] { return constraint_exists(task.table_oid, name); }))
        return;
    plan::Statement st = plan::parse_statement(step.sql);
    if (step.kind == "add_constraint")
        make_not_valid(st, name);
    if (step.kind == "validate")
        pg::in_worker_transaction([&] { catalog::set_phase(task.id, "validating " + name); });
    run_locked(task.id, st, step.description);
    if (step.kind == "validate")
        pg::in_worker_transaction([&] { catalog::set_phase(task.id, name + " validated"); });
}

} // namespace

void run_next_step(const catalog::Task& task, State state) {
    std::vector<catalog::StoredStep> steps =
        pg::in_worker_transaction([&] { return catalog::load_steps(task.id); });
    const catalog::StoredStep* next = nullptr;
    for (const catalog::StoredStep& s : steps)
        if (!s.done) {
            next = &s;
            break;
        }

    if (next == nullptr) {
        pg::in_worker_transaction([&] {
            if (catalog::transition_from(task.id, state, State::Completed, "all steps done")) {
                catalog::set_rollback_feasibility(task.id, "IMPOSSIBLE");
                catalog::set_phase(task.id, "done");
            }
        });
        return;
    }
    const State step_state = catalog::parse_state(next->step.state).value_or(State::Preparing);
    if (step_state != state) {
        pg::in_worker_transaction(
            [&] { catalog::transition_from(task.id, state, step_state, next->step.description); });
        return;
    }

    pg::in_worker_transaction([&] { catalog::mark_step(task.id, next->number, false); });
    run_step(task, next->step);
    pg::in_worker_transaction([&] {
        catalog::mark_step(task.id, next->number, true);
        catalog::log_event(task.id, catalog::LogLevel::Info, "step_done",
                           fmt::format("step {}: {}", next->number, next->step.description));
    });
}

bool undo_steps(const catalog::Task& task) {
    pg::CancelHoldoff no_cancel;
    bool all_undone = true;
    std::vector<catalog::StoredStep> steps =
        pg::in_worker_transaction([&] { return catalog::load_steps(task.id); });
    // A dropped table took everything the steps created with it.
    const bool table_exists = pg::in_worker_transaction([&] {
        pg::Spi spi;
        return spi
            .scalar("SELECT 1 FROM pg_catalog.pg_class WHERE oid = $1::oid",
                    {std::to_string(task.table_oid)})
            .has_value();
    });
    for (auto it = steps.rbegin(); table_exists && it != steps.rend(); ++it) {
        const plan::Step& step = it->step;
        if (step.undo_sql.empty() || !it->started)
            continue;
        // One step's undo failing must not stop the others, nor keep the
        // migration from recording how it ended: log it and go on.
        std::string failure;
        try {
            if (step.undo_concurrently) {
                run_concurrently(step.undo_sql, step.object_name);
            } else {
                plan::Statement st = plan::parse_statement(step.undo_sql);
                run_locked(task.id, st, "undo: " + step.description);
            }
        } catch (const pg::Error& e) {
            failure = e.message();
            all_undone = false;
            pg::call([] { AbortOutOfAnyTransaction(); });
        }
        pg::in_worker_transaction([&] {
            if (failure.empty())
                catalog::log_event(task.id, catalog::LogLevel::Info, "step_undone",
                                   fmt::format("step {} undone: {}", it->number, step.description));
            else
                catalog::log_event(task.id, catalog::LogLevel::Warning, "undo_failed",
                                   fmt::format("step {} ({}) could not be undone: {}", it->number,
                                               step.description, failure));
        });
    }
    // A cancel that arrived meanwhile was the rollback() this undo already
    // does: drop it before cancels are let through again.
    QueryCancelPending = false;
    return all_undone;
}

} // namespace heliosmig::engine
