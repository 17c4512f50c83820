// The background worker that runs one migration.
//
// One dynamic worker per migration, BGW_NEVER_RESTART: a worker that fails
// records FAILED itself; after a server crash the launcher starts a new one.
// The worker connects as the role that started the migration, never as a
// bootstrap superuser.
#pragma once

#include "heliosmig/pg/postgres.hpp"

extern "C" {
#include "postmaster/bgworker.h"
}

#include <string>

namespace heliosmig::engine {

// Registers the worker for a migration. It connects as login_role and then
// acts as role (as SET ROLE would), first waits for starter_xid (the
// transaction that recorded the migration) to end, and exits quietly if that
// transaction rolled back. Returns the worker's pid. Errors: no free worker
// slot (max_worker_processes), postmaster gone.
int launch_worker(const std::string& migration_id, Oid database, Oid login_role, Oid role,
                  TransactionId starter_xid);

// Describes one of heliosmig's dynamic workers: database-connected, started
// after recovery, never restarted by the postmaster, reporting to this process.
void describe_dynamic_worker(BackgroundWorker* worker, const char* name, const char* type,
                             const char* function, Oid database);

// Whether pid is a live heliosmig migration worker (pids are reused).
bool worker_alive(int pid);

// Interrupts a migration's worker (a query cancel) once the current
// transaction commits: the worker then re-reads its migration's committed
// state. Nothing happens if the transaction aborts.
void cancel_worker_at_commit(int pid);

// Registers the transaction callback behind cancel_worker_at_commit.
void InitWorkerControl();

} // namespace heliosmig::engine

extern "C" {
PGDLLEXPORT void heliosmig_migration_worker_main(Datum main_arg);
}
