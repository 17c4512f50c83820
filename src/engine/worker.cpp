// The migration worker (see include/heliosmig/engine/worker.hpp).
//
// heliosmig_migration_worker_main is PostgreSQL's frame: it owns no C++
// objects. The migration runs under pg::run_guarded; an error from it lands
// in the PG_CATCH below, which aborts the transaction and records FAILED.
#include "heliosmig/engine/worker.hpp"
#include "heliosmig/engine/migration_runner.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/spi.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
}

#include <fmt/format.h>

#include <csignal>
#include <cstring>

namespace heliosmig::engine {

namespace {

struct WorkerArgs {
    char migration_id[40];
    Oid login_role;
    Oid role;
    TransactionId starter_xid;
};
static_assert(sizeof(WorkerArgs) <= BGW_EXTRALEN);

} // namespace

int launch_worker(const std::string& migration_id, Oid database, Oid login_role, Oid role,
                  TransactionId starter_xid) {
    WorkerArgs args{};
    std::strncpy(args.migration_id, migration_id.c_str(), sizeof(args.migration_id) - 1);
    args.login_role = login_role;
    args.role = role;
    args.starter_xid = starter_xid;
    const std::string name = fmt::format("heliosmig migration {}", migration_id);

    int pid = pg::call([&] {
        BackgroundWorker worker;
        std::memset(&worker, 0, sizeof(worker));
        strlcpy(worker.bgw_name, name.c_str(), BGW_MAXLEN);
        strlcpy(worker.bgw_type, "heliosmig migration", BGW_MAXLEN);
        worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
        worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
        worker.bgw_restart_time = BGW_NEVER_RESTART;
        strlcpy(worker.bgw_library_name, "heliosmig", BGW_MAXLEN);
        strlcpy(worker.bgw_function_name, "heliosmig_migration_worker_main", BGW_MAXLEN);
        worker.bgw_main_arg = ObjectIdGetDatum(database);
        std::memcpy(worker.bgw_extra, &args, sizeof(args));
        worker.bgw_notify_pid = MyProcPid;

        BackgroundWorkerHandle* handle = nullptr;
        if (!RegisterDynamicBackgroundWorker(&worker, &handle))
            ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                            errmsg("no free background worker slot for the migration"),
                            errhint("Raise max_worker_processes (each running migration uses one "
                                    "worker), or wait for a migration to finish.")));
        pid_t worker_pid = 0;
        if (WaitForBackgroundWorkerStartup(handle, &worker_pid) != BGWH_STARTED)
            ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
                            errmsg("the migration worker could not be started"),
                            errhint("See the server log.")));
        return static_cast<int>(worker_pid);
    });
    return pid;
}

namespace {

// Workers to cancel when the current transaction commits; in TopMemoryContext.
List* pending_cancels = NIL;

// Runs at commit or abort; must not error. kill() of a pid checked just before.
void cancel_pending_workers(XactEvent event, void* arg) {
    if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
        event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
        return;
    if (event == XACT_EVENT_COMMIT) {
        ListCell* cell;
        foreach (cell, pending_cancels) {
            int pid = lfirst_int(cell);
            if (BackendPidGetProc(pid) != nullptr)
                (void)kill(pid, SIGINT);
        }
    }
    list_free(pending_cancels);
    pending_cancels = NIL;
}

} // namespace

bool worker_alive(int pid) {
    if (pid <= 0)
        return false;
    pg::Spi spi;
    return spi
        .scalar("SELECT 1 FROM pg_catalog.pg_stat_activity"
                " WHERE pid = $1::int AND backend_type = 'heliosmig migration'",
                {std::to_string(pid)})
        .has_value();
}

void cancel_worker_at_commit(int pid) {
    pg::call([&] {
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        pending_cancels = lappend_int(pending_cancels, pid);
        MemoryContextSwitchTo(old);
    });
}

void InitWorkerControl() {
    RegisterXactCallback(cancel_pending_workers, nullptr);
}

} // namespace heliosmig::engine

void heliosmig_migration_worker_main(Datum main_arg) {
    heliosmig::engine::WorkerArgs args;
    std::memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));

    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(main_arg), args.login_role, 0);
    // The migration's role may be one its starter reached with SET ROLE (a
    // NOLOGIN group role owning the table): act as it, as SET ROLE does.
    if (args.role != args.login_role) {
        StartTransactionCommand();
        SetCurrentRoleId(args.role, superuser_arg(args.role));
        CommitTransactionCommand();
    }
    pgstat_report_appname("heliosmig migration");

    PG_TRY();
    {
        heliosmig::pg::run_guarded(
            [&] { heliosmig::engine::run_migration(args.migration_id, args.starter_xid); });
    }
    PG_CATCH();
    {
        // Log the error, abort what it interrupted, then record the failure
        // and remove the migration's artifacts in a new transaction.
        MemoryContextSwitchTo(TopMemoryContext);
        ErrorData* edata = CopyErrorData();
        EmitErrorReport();
        FlushErrorState();
        AbortCurrentTransaction();
        heliosmig::pg::run_guarded([&] {
            std::string reason = edata->message ? edata->message : "unknown error";
            if (edata->detail)
                reason += fmt::format(" ({})", edata->detail);
            heliosmig::engine::fail_migration(args.migration_id, reason);
        });
    }
    PG_END_TRY();
    proc_exit(0);
}
