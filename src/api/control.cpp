// heliosmig.pause / resume / rollback / cutover: state changes a DBA asks for.
//
// Each locks the migration's catalog row (FOR UPDATE) first, so two control
// calls on one migration serialize and each sees the other's result.
#include "heliosmig/catalog/store.hpp"
#include "heliosmig/engine/cleanup.hpp"
#include "heliosmig/engine/worker.hpp"
#include "heliosmig/pg/function.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/uuid.h"
}

#include <fmt/format.h>

namespace {

using namespace heliosmig;
using catalog::State;

std::string uuid_arg(FunctionCallInfo fcinfo, int n) {
    return pg::call([&] {
        return static_cast<const char*>(
            DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(n))));
    });
}

Datum text_result(std::string_view s) {
    std::string copy(s);
    const char* c = copy.c_str();
    return pg::call([&] { return PointerGetDatum(cstring_to_text(c)); });
}

// Only the table's owner (or a superuser) controls a migration of it.
catalog::Migration find_controllable(const std::string& id) {
    std::optional<catalog::Migration> m = catalog::lock_migration(id);
    if (!m)
        pg::raise(ERRCODE_UNDEFINED_OBJECT, fmt::format("migration {} does not exist", id), {},
                  "heliosmig.show_migrations() lists the migrations you can see.");
    const Oid table = m->table_oid;
    bool allowed = pg::call([&] { return superuser() || pg_class_ownercheck(table, GetUserId()); });
    if (!allowed)
        pg::raise(
            ERRCODE_INSUFFICIENT_PRIVILEGE,
            fmt::format("must be owner of table {} to control migration {}", m->table_name, id));
    return *m;
}

[[noreturn]] void wrong_state(const catalog::Migration& m, std::string_view action,
                              std::string hint) {
    pg::raise(
        ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        fmt::format("cannot {} migration {}: it is {}", action, m.id, catalog::state_name(m.state)),
        {}, std::move(hint));
}

} // namespace

HM_FUNCTION(heliosmig_pause) {
    catalog::Migration m = find_controllable(uuid_arg(fcinfo, 0));
    if (m.state == State::Paused)
        wrong_state(m, "pause", "It is paused already; heliosmig.resume() continues it.");
    if (!catalog::is_pausable(m.state))
        wrong_state(m, "pause",
                    catalog::is_terminal(m.state)
                        ? "It has ended."
                        : "A migration can be paused while it prepares, copies, synchronizes, "
                          "validates or waits for cutover.");
    catalog::transition(m.id, State::Paused,
                        fmt::format("paused by {} while {}", pg::call([] {
                                        return static_cast<const char*>(
                                            GetUserNameFromId(GetUserId(), false));
                                    }),
                                    catalog::state_name(m.state)));
    return text_result("PAUSED");
}

HM_FUNCTION(heliosmig_resume) {
    catalog::Migration m = find_controllable(uuid_arg(fcinfo, 0));
    if (m.state != State::Paused || !m.paused_from)
        wrong_state(m, "resume", "Only a paused migration can be resumed.");
    catalog::transition(m.id, *m.paused_from, "resumed");
    return text_result(catalog::state_name(*m.paused_from));
}

HM_FUNCTION(heliosmig_rollback) {
    catalog::Migration m = find_controllable(uuid_arg(fcinfo, 0));
    if (m.state == State::Completed)
        wrong_state(m, "roll back",
                    m.operation_class == "metadata" || m.operation_class == "offline"
                        ? "Its change was applied in place and there is no old copy to return "
                          "to (rollback_feasibility is IMPOSSIBLE): start a new migration with "
                          "the inverse statement."
                        : "Its rollback window has closed: start a new migration with the "
                          "inverse statement.");
    if (catalog::is_terminal(m.state) || m.state == State::RollingBack)
        wrong_state(m, "roll back", "It has ended already.");
    if (m.state == State::Cutover)
        wrong_state(m, "roll back",
                    "Its cutover is running and takes milliseconds: look again when it is done.");
    catalog::transition(m.id, State::RollingBack, "rollback requested");
    // A running worker undoes its own work: it is interrupted once this
    // transaction commits, sees ROLLING_BACK, and removes what it created.
    // Without one (it died, or the server restarted), a new worker does it:
    // an index is dropped CONCURRENTLY, which cannot run in this transaction.
    std::optional<catalog::Task> task = catalog::load_task(m.id);
    if (task && engine::worker_alive(task->worker_pid)) {
        engine::cancel_worker_at_commit(task->worker_pid);
        return text_result("ROLLING_BACK");
    }
    if (task && task->operation_class == "native_concurrent") {
        const TransactionId xid = pg::call([] { return GetTopTransactionId(); });
        const Oid database = pg::call([] { return MyDatabaseId; });
        engine::launch_worker(m.id, database, task->login_role, task->started_by, xid);
        return text_result("ROLLING_BACK");
    }
    engine::remove_migration_artifacts(m.id, m.table_oid);
    catalog::transition(m.id, State::RolledBack, "rolled back: ghost table and slot removed");
    return text_result("ROLLED_BACK");
}

HM_FUNCTION(heliosmig_cutover) {
    catalog::Migration m = find_controllable(uuid_arg(fcinfo, 0));
    const bool force = PG_GETARG_BOOL(1);
    // Only a ghost-table rewrite waits for a cutover; the other classes take
    // their one short lock as a step of their own.
    if (m.operation_class != "rewrite")
        pg::raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                  "this migration has no cutover to request",
                  fmt::format("It is a {} migration.", m.operation_class),
                  "Cutover applies to table rewrites; this migration finishes by itself.");
    const bool ready = m.state == State::Ready;
    const bool forceable = m.state == State::Synchronizing || m.state == State::Validating;
    if (!ready && !(force && forceable))
        wrong_state(m, "cut over",
                    forceable ? "It has not passed validation yet: wait for READY, or pass "
                                "force => true to skip validation."
                              : "Cutover is possible once a migration is READY (or, with force "
                                "=> true, while it synchronizes or validates).");
    catalog::request_cutover(m.id, force);
    catalog::log_event(m.id, catalog::LogLevel::Info, "cutover_requested",
                       force ? "cutover requested, skipping validation" : "cutover requested");
    return text_result(force ? "cutover requested (forced)" : "cutover requested");
}
