// Running an asynchronous migration (see include/heliosmig/engine/migration_runner.hpp).
#include "heliosmig/engine/migration_runner.hpp"
#include "heliosmig/catalog/store.hpp"
#include "heliosmig/engine/rewrite_runner.hpp"
#include "heliosmig/engine/step_runner.hpp"
#include "heliosmig/engine/worker.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/sleep.hpp"
#include "heliosmig/pg/spi.hpp"
#include "heliosmig/pg/transaction.hpp"

extern "C" {
#include "access/xact.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/guc.h"
}

#include <fmt/format.h>

namespace heliosmig::engine {

namespace {

using catalog::State;

constexpr long kPausedPollMs = 1000;

// The transaction that recorded the migration may still be open (the worker
// is started from inside it): wait for it, holding nothing.
void wait_for_starter(TransactionId xid) {
    if (!TransactionIdIsValid(xid))
        return;
    pg::in_worker_transaction(
        [&] { pg::call([&] { XactLockTableWait(xid, nullptr, nullptr, XLTW_None); }); });
}

// One worker per migration: a session-level advisory lock on the migration id,
// released when the worker exits (or dies). A second worker started for the
// same migration (by the launcher, racing a start) leaves at once.
bool claim_migration(const std::string& id) {
    return pg::in_worker_transaction([&] {
        pg::Spi spi;
        return spi.scalar("SELECT pg_catalog.pg_try_advisory_lock("
                          "pg_catalog.hashtextextended('heliosmig migration ' || $1, 0))",
                          {id}) == pg::Value("t");
    });
}

// The statement runs as the user typed it: with their search_path.
void use_search_path(const std::string& search_path) {
    const char* value = search_path.c_str();
    pg::call([&] { SetConfigOption("search_path", value, PGC_USERSET, PGC_S_SESSION); });
}

bool undo(const catalog::Task& task) {
    if (task.operation_class == "native_concurrent")
        return undo_steps(task);
    if (task.operation_class == "rewrite")
        return undo_rewrite(task);
    return true;
}

void step(const catalog::Task& task, State state) {
    if (task.operation_class == "native_concurrent")
        run_next_step(task, state);
    else if (task.operation_class == "rewrite")
        run_rewrite_step(task, state);
    else
        pg::raise(
            ERRCODE_FEATURE_NOT_SUPPORTED,
            fmt::format("migrations of class {} have no online engine yet", task.operation_class));
}

void finish_rollback(const catalog::Task& task) {
    const bool clean = undo(task);
    pg::in_worker_transaction([&] {
        catalog::transition_from(task.id, State::RollingBack, State::RolledBack,
                                 clean ? "rolled back: everything the migration created is "
                                         "removed"
                                       : "rolled back, but some steps could not be undone: see "
                                         "the undo_failed events");
        catalog::set_worker_pid(task.id, 0);
    });
}

} // namespace

void run_migration(const std::string& id, TransactionId starter_xid) {
    wait_for_starter(starter_xid);
    std::optional<catalog::Task> task =
        pg::in_worker_transaction([&] { return catalog::load_task(id); });
    if (!task || !claim_migration(id))
        return;
    use_search_path(task->search_path);
    pg::in_worker_transaction([&] { catalog::set_worker_pid(id, MyProcPid); });

    for (;;) {
        const State state = pg::in_worker_transaction([&] { return catalog::current_state(id); });
        switch (state) {
        case State::Completed:
        case State::RolledBack:
        case State::Failed:
            pg::in_worker_transaction([&] { catalog::set_worker_pid(id, 0); });
            return;
        case State::Paused:
            pg::sleep_ms(kPausedPollMs);
            break;
        case State::RollingBack:
            finish_rollback(*task);
            return;
        default:
            step(*task, state);
            break;
        }
    }
}

void fail_migration(const std::string& id, const std::string& reason) {
    std::optional<catalog::Task> task =
        pg::in_worker_transaction([&] { return catalog::load_task(id); });
    if (!task || catalog::is_terminal(task->state))
        return;
    if (task->state == State::RollingBack) {
        finish_rollback(*task);
        return;
    }
    const bool clean = undo(*task);
    pg::in_worker_transaction([&] {
        catalog::transition(id, State::Failed,
                            clean ? reason
                                  : reason + " (and some steps could not be undone: see the "
                                             "undo_failed events)");
        catalog::set_worker_pid(id, 0);
    });
}

void resume_orphaned_migrations() {
    std::vector<catalog::Task> tasks = pg::in_worker_transaction([] {
        bool installed = pg::call([] { return OidIsValid(get_extension_oid("heliosmig", true)); });
        return installed ? catalog::orphaned_tasks() : std::vector<catalog::Task>{};
    });
    for (const catalog::Task& task : tasks) {
        pg::in_worker_transaction([&] {
            catalog::log_event(task.id, catalog::LogLevel::Info, "resumed",
                               "a new worker continues the migration after a restart");
        });
        launch_worker(task.id, MyDatabaseId, task.login_role, task.started_by,
                      InvalidTransactionId);
    }
}

} // namespace heliosmig::engine
