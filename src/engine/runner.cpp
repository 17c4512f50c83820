// Running migrations (see include/heliosmig/engine/runner.hpp).
#include "heliosmig/engine/runner.hpp"
#include "heliosmig/catalog/store.hpp"
#include "heliosmig/engine/lock_retry.hpp"
#include "heliosmig/engine/worker.hpp"
#include "heliosmig/plan/concurrent_steps.hpp"
#include "heliosmig/plan/plan.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/sleep.hpp"
#include "heliosmig/pg/transaction.hpp"
#include "heliosmig/pg/utility.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
}

#include <fmt/format.h>

namespace heliosmig::engine {

namespace {

using catalog::State;

std::string current_search_path() {
    return pg::call(
        [] { return static_cast<const char*>(GetConfigOption("search_path", false, false)); });
}

[[noreturn]] void refuse(const plan::Statement& st, const plan::Plan& plan) {
    pg::raise(ERRCODE_FEATURE_NOT_SUPPORTED, plan.unsupported_why,
              fmt::format("Statement: {}\nOperation class: {} ({}).", st.operation,
                          plan::class_name(plan.cls), plan.reason),
              "heliosmig never runs it the blocking way on its own. To run it the ordinary, "
              "blocking way, pass mode => 'offline' to heliosmig.start(), or SET "
              "heliosmig.intercept = off for plain DDL.");
}

// Runs the statement under lock safety; it sees the caller's search_path, as
// if the user had typed it. Locks: whatever PostgreSQL takes for the statement,
// acquired with heliosmig.lock_timeout and held until the caller commits.
LockWait execute_with_lock_safety(const plan::Statement& st) {
    return run_with_lock_retries(fmt::format("{}", st.operation),
                                 [&] { pg::execute_utility(st.tree, st.source); });
}

} // namespace

StartResult start_migration(plan::Statement& st, const plan::MigrationOptions& options) {
    plan::Plan plan = plan::make_plan(st, options);
    if (!plan.supported)
        refuse(st, plan);
    const bool asynchronous = plan.asynchronous;
    if (!asynchronous)
        plan::drop_concurrently(st);
    std::vector<plan::Step> steps;
    if (asynchronous && plan.cls == plan::OperationClass::NativeConcurrent)
        steps = plan::plan_steps(st);

    catalog::NewMigration record;
    record.table_oid = st.relid;
    record.table_name = st.table_name;
    record.operation = st.operation;
    record.operation_class =
        options.mode == plan::Mode::Offline && plan.cls != plan::OperationClass::Metadata
            ? "offline"
            : std::string(plan::class_name(plan.cls));
    record.ddl = st.ddl;
    record.statement = st.sql;
    record.search_path = current_search_path();
    record.mode = plan::mode_name(options.mode);
    record.chunk_size = options.chunk_size;
    record.throttle_io = options.throttle_io;
    record.shadow_traffic = options.shadow_traffic;
    record.auto_cutover = options.auto_cutover;
    record.lock_mode = plan.lock_name;
    record.started_by = pg::call([] { return GetUserId(); });
    record.login_role = pg::call([] { return GetSessionUserId(); });
    for (const plan::Step& step : steps)
        if (record.object_name.empty() || step.kind == "build_index")
            record.object_name = step.object_name;

    const std::string id = catalog::create_migration(record);
    catalog::transition(id, State::Planning,
                        fmt::format("classified as {}: {}", record.operation_class, plan.reason));
    if (options.shadow_traffic)
        catalog::log_event(id, catalog::LogLevel::Info, "option",
                           plan.copies_data
                               ? "shadow traffic is not built yet; the migration runs without it"
                               : "shadow traffic applies only to migrations that copy data; "
                                 "ignored");

    if (asynchronous) {
        // A worker acts as the migration's role for as long as the migration
        // runs; user code run on someone else's behalf (index expressions
        // during ANALYZE, say) must not be able to leave one behind.
        if (pg::call([] { return InSecurityRestrictedOperation(); }))
            pg::raise(ERRCODE_INSUFFICIENT_PRIVILEGE,
                      "cannot start an online migration within a security-restricted operation");
        catalog::insert_steps(id, steps);
        // The worker waits for this transaction: it sees the migration only
        // once the caller commits, and nothing if the caller rolls back.
        const TransactionId xid = pg::call([] { return GetTopTransactionId(); });
        const Oid database = pg::call([] { return MyDatabaseId; });
        launch_worker(id, database, record.login_role, record.started_by, xid);
        return {id, record.operation_class, "PLANNING"};
    }

    catalog::transition(id, State::Cutover,
                        fmt::format("taking {} on {} with lock_timeout and retries", plan.lock_name,
                                    st.table_name));
    LockWait wait = execute_with_lock_safety(st);
    catalog::record_lock_wait(id, wait.attempts, wait.waited_ms);
    catalog::log_event(id, catalog::LogLevel::Info, "lock_acquired",
                       fmt::format("{} acquired after {} attempt(s), {:.1f} ms waiting",
                                   plan.lock_name, wait.attempts, wait.waited_ms),
                       fmt::format(R"({{"attempts": {}, "waited_ms": {:.3f}, "retries": {}}})",
                                   wait.attempts, wait.waited_ms, wait.attempts - 1));

    // A catalog change has no old copy to go back to: reverting means running
    // the inverse statement as a new migration.
    catalog::set_rollback_feasibility(id, "IMPOSSIBLE");
    catalog::transition(id, State::Completed, "statement applied");
    return {id, record.operation_class, "COMPLETED"};
}

// Each poll is a transaction of its own and the pauses are between
// transactions: a concurrent index build waits for every transaction older
// than its snapshots, and must not wait for this one.
void wait_for_migration(const std::string& id) {
    pg::call([] {
        PopActiveSnapshot();
        CommitTransactionCommand();
    });
    for (;;) {
        const State state = pg::in_worker_transaction([&] { return catalog::current_state(id); });
        if (catalog::is_terminal(state)) {
            const std::string reason =
                state == State::Failed
                    ? pg::in_worker_transaction([&] { return catalog::failure_reason(id); })
                    : std::string();
            // The statement ends in a transaction, as the portal expects.
            pg::call([] { StartTransactionCommand(); });
            if (state == State::Failed)
                pg::raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                          fmt::format("the migration failed: {}", reason),
                          fmt::format("Migration {}.", id),
                          "heliosmig.helios_migration_logs has its history; everything the "
                          "migration created was removed.");
            if (state == State::RolledBack)
                pg::raise(ERRCODE_QUERY_CANCELED, "the migration was rolled back",
                          fmt::format("Migration {}.", id));
            return;
        }
        try {
            pg::sleep_ms(100);
        } catch (const pg::Error& e) {
            // A cancel or statement_timeout ends the wait, not the migration:
            // it has been committed and its worker goes on.
            pg::call([] { StartTransactionCommand(); });
            pg::raise(e.sqlerrcode(), e.message(), fmt::format("Migration {} continues.", id),
                      "Follow it with heliosmig.show_migration(), or stop it with "
                      "heliosmig.rollback().");
        }
    }
}

void run_untracked(const plan::Statement& st) {
    (void)execute_with_lock_safety(st);
}

} // namespace heliosmig::engine
