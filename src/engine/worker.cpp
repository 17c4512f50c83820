// The migration worker (see include/heliosmig/engine/worker.hpp).
//
// heliosmig_migration_worker_main is PostgreSQL's frame: it owns no C++
// objects. The migration runs under pg::run_guarded; an error from it lands
// in the PG_CATCH below, which aborts the transaction and records FAILED.
#include "heliosmig/engine/worker.hpp"
#include "heliosmig/decode/change_stream.hpp"
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

constexpr const char* kWorkerType = "heliosmig migration";

struct WorkerArgs {
    char migration_id[40];
    Oid login_role;
    Oid role;
    TransactionId starter_xid;
};
static_assert(sizeof(WorkerArgs) <= BGW_EXTRALEN);

} // namespace

void describe_dynamic_worker(BackgroundWorker* worker, const char* name, const char* type,
                             const char* function, Oid database) {
    std::memset(worker, 0, sizeof(*worker));
    strlcpy(worker->bgw_name, name, BGW_MAXLEN);
    strlcpy(worker->bgw_type, type, BGW_MAXLEN);
    worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker->bgw_restart_time = BGW_NEVER_RESTART;
    strlcpy(worker->bgw_library_name, "heliosmig", BGW_MAXLEN);
    strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
    worker->bgw_main_arg = ObjectIdGetDatum(database);
    worker->bgw_notify_pid = MyProcPid;
}

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
        describe_dynamic_worker(&worker, name.c_str(), kWorkerType,
                                "heliosmig_migration_worker_main", database);
        std::memcpy(worker.bgw_extra, &args, sizeof(args));

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

// Workers to cancel when the current transaction commits, each with the
// subtransaction level that asked (a rolled-back savepoint takes its requests
// with it); in TopMemoryContext.
struct PendingCancel {
    int pid;
    int nest_level;
};
List* pending_cancels = NIL;

bool is_migration_worker(int pid) {
    const char* type = GetBackgroundWorkerTypeByPid(pid);
    return type != nullptr && strcmp(type, kWorkerType) == 0;
}

void forget_pending_cancels() {
    list_free_deep(pending_cancels);
    pending_cancels = NIL;
}

// Runs at the end of every transaction. Only PRE_PREPARE may error: a
// transaction that asked to interrupt a worker cannot be prepared (the
// request would be lost, or fire at an unrelated commit).
void cancel_pending_workers(XactEvent event, void* arg) {
    switch (event) {
    case XACT_EVENT_PRE_PREPARE:
        if (pending_cancels != NIL)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("cannot PREPARE a transaction that rolled back a running "
                                   "migration")));
        return;
    case XACT_EVENT_COMMIT: {
        // Checked to still be a migration worker right before the signal:
        // pids are reused.
        ListCell* cell;
        foreach (cell, pending_cancels) {
            const PendingCancel* cancel = static_cast<const PendingCancel*>(lfirst(cell));
            if (is_migration_worker(cancel->pid))
                (void)kill(cancel->pid, SIGINT);
        }
        forget_pending_cancels();
        return;
    }
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PREPARE:
    case XACT_EVENT_PARALLEL_ABORT:
        forget_pending_cancels();
        return;
    default:
        return;
    }
}

void drop_aborted_cancels(SubXactEvent event, SubTransactionId, SubTransactionId, void*) {
    if (event != SUBXACT_EVENT_ABORT_SUB)
        return;
    const int level = GetCurrentTransactionNestLevel();
    List* kept = NIL;
    ListCell* cell;
    foreach (cell, pending_cancels) {
        PendingCancel* cancel = static_cast<PendingCancel*>(lfirst(cell));
        if (cancel->nest_level >= level)
            pfree(cancel);
        else
            kept = lappend(kept, cancel);
    }
    list_free(pending_cancels);
    pending_cancels = kept;
}

} // namespace

// Decided in C, not through pg_stat_activity, whose backend_type a role
// cannot see for another role's backends.
bool worker_alive(int pid) {
    if (pid <= 0)
        return false;
    return pg::call([&] { return is_migration_worker(pid); });
}

void cancel_worker_at_commit(int pid) {
    pg::call([&] {
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        PendingCancel* cancel = static_cast<PendingCancel*>(palloc(sizeof(PendingCancel)));
        cancel->pid = pid;
        cancel->nest_level = GetCurrentTransactionNestLevel();
        pending_cancels = lappend(pending_cancels, cancel);
        MemoryContextSwitchTo(old);
    });
}

void InitWorkerControl() {
    RegisterXactCallback(cancel_pending_workers, nullptr);
    RegisterSubXactCallback(drop_aborted_cancels, nullptr);
}

} // namespace heliosmig::engine

void heliosmig_migration_worker_main(Datum main_arg) {
    heliosmig::engine::WorkerArgs args;
    std::memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));

    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(main_arg), args.login_role, 0);
    // All work runs as the migration's role (the table owner, maybe a NOLOGIN
    // role its starter reached with SET ROLE) inside a security-restricted
    // operation, the way PostgreSQL runs a table owner's code in ANALYZE or
    // REINDEX: user code the steps evaluate (CHECK expressions, index
    // expressions) can neither SET ROLE back to the login role nor change the
    // session authorization. Transaction aborts restore this context, since
    // it is set outside any transaction.
    SetUserIdAndSecContext(args.role, SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
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
        AbortOutOfAnyTransaction();
        // A replication slot survives transaction aborts: let it go before
        // the undo drops it.
        heliosmig::decode::release_stream();
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
