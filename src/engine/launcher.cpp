// The launcher and its per-database workers (see include/heliosmig/engine/launcher.hpp).
//
// Both mains are PostgreSQL frames owning no C++ objects; the per-database
// work runs under pg::run_guarded.
#include "heliosmig/engine/launcher.hpp"
#include "heliosmig/engine/cleanup.hpp"
#include "heliosmig/engine/retention.hpp"
#include "heliosmig/engine/migration_runner.hpp"
#include "heliosmig/engine/worker.hpp"
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"
}

#include <cstring>

namespace heliosmig::engine {

namespace {

constexpr long kNaptimeMs = 60 * 1000;

// Databases that accept connections, read from the shared pg_database under a
// transaction snapshot (AccessShareLock on the catalog, nothing else).
List* connectable_databases() {
    MemoryContext result_context = CurrentMemoryContext;
    List* result = NIL;
    StartTransactionCommand();
    (void)GetTransactionSnapshot();
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
    HeapTuple tuple;
    while (HeapTupleIsValid(tuple = heap_getnext(scan, ForwardScanDirection))) {
        Form_pg_database db = (Form_pg_database)GETSTRUCT(tuple);
        if (!db->datallowconn || db->datistemplate)
            continue;
        MemoryContext old = MemoryContextSwitchTo(result_context);
        result = lappend_oid(result, db->oid);
        MemoryContextSwitchTo(old);
    }
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    CommitTransactionCommand();
    return result;
}

// Starts the database worker for one database and waits for it to finish,
// so the launcher never holds more than one worker slot.
void run_database_worker(Oid database) {
    char name[BGW_MAXLEN];
    snprintf(name, BGW_MAXLEN, "heliosmig database worker %u", database);
    BackgroundWorker worker;
    describe_dynamic_worker(&worker, name, "heliosmig database worker",
                            "heliosmig_database_worker_main", database);

    BackgroundWorkerHandle* handle = nullptr;
    if (!RegisterDynamicBackgroundWorker(&worker, &handle)) {
        ereport(LOG, (errmsg("heliosmig: no free worker slot to check database %u; will retry",
                             database)));
        return;
    }
    (void)WaitForBackgroundWorkerShutdown(handle);
}

} // namespace

void InitLauncher() {
    BackgroundWorker worker;
    std::memset(&worker, 0, sizeof(worker));
    strlcpy(worker.bgw_name, "heliosmig launcher", BGW_MAXLEN);
    strlcpy(worker.bgw_type, "heliosmig launcher", BGW_MAXLEN);
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = 10;
    strlcpy(worker.bgw_library_name, "heliosmig", BGW_MAXLEN);
    strlcpy(worker.bgw_function_name, "heliosmig_launcher_main", BGW_MAXLEN);
    worker.bgw_notify_pid = 0;
    RegisterBackgroundWorker(&worker);
}

} // namespace heliosmig::engine

void heliosmig_launcher_main(Datum main_arg) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);

    MemoryContext loop_context =
        AllocSetContextCreate(TopMemoryContext, "heliosmig launcher", ALLOCSET_DEFAULT_SIZES);
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        MemoryContext old = MemoryContextSwitchTo(loop_context);
        List* databases = heliosmig::engine::connectable_databases();
        ListCell* cell;
        foreach (cell, databases)
            heliosmig::engine::run_database_worker(lfirst_oid(cell));
        MemoryContextSwitchTo(old);
        MemoryContextReset(loop_context);

        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                        heliosmig::engine::kNaptimeMs, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

// Runs as the bootstrap superuser only to read heliosmig's catalog; each
// migration worker it starts connects as the migration's own role.
void heliosmig_database_worker_main(Datum main_arg) {
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(main_arg), InvalidOid, 0);
    pgstat_report_appname("heliosmig database worker");
    heliosmig::pg::run_guarded([] {
        heliosmig::engine::resume_orphaned_migrations();
        heliosmig::engine::drop_orphaned_streams();
        heliosmig::engine::drop_expired_retained_tables();
    });
    proc_exit(0);
}
