// Reading and writing heliosmig.helios_migrations and helios_migration_logs.
//
// Writes run as the catalog's owner (the tables are not writable by PUBLIC);
// the row-level trigger checks every state change against
// catalog::is_legal_transition. Everything here runs in the caller's
// transaction: a migration row and its log become visible together when the
// caller commits, and vanish together if it aborts.
#pragma once

#include "heliosmig/catalog/state.hpp"
#include "heliosmig/plan/concurrent_steps.hpp"
#include "heliosmig/pg/postgres.hpp"

#include <optional>
#include <string>
#include <vector>

namespace heliosmig::catalog {

struct NewMigration {
    Oid table_oid = InvalidOid;
    std::string table_name; // schema-qualified, quoted as needed
    std::string operation;  // human-readable statement
    std::string operation_class;
    std::string ddl;       // as the user wrote it
    std::string statement; // PostgreSQL syntax heliosmig runs
    std::string search_path;
    std::string mode;
    int chunk_size = 0;
    int throttle_io = 0;
    bool shadow_traffic = false;
    bool auto_cutover = true;
    std::string lock_mode;
    std::string object_name; // the index a native-concurrent build creates
    Oid started_by = InvalidOid;
    Oid login_role = InvalidOid;
};

struct Migration {
    std::string id;
    State state = State::Created;
    std::optional<State> paused_from;
    Oid table_oid = InvalidOid;
    std::string table_name;
    std::string operation_class;
    std::string rollback_feasibility;
};

enum class LogLevel { Info, Warning, Error };

// Inserts a migration in state CREATED and returns its id. Fails with a clear
// error if the table already has an active migration.
std::string create_migration(const NewMigration& m);

// Reads a migration and locks its row (FOR UPDATE) so that concurrent control
// calls on the same migration serialize; nullopt if it does not exist or the
// caller may not see it.
std::optional<Migration> lock_migration(const std::string& id);

// The id of the table's active (non-terminal) migration, if any.
std::optional<std::string> active_migration_for_table(Oid table_oid);

// Moves a migration to `to`, records the time it entered the state, and logs
// the transition. Illegal transitions raise an error.
void transition(const std::string& id, State to, const std::string& message);

// Moves a migration from `from` to `to` only if it is still in `from` (a
// DBA may have paused or rolled it back meanwhile); returns whether it moved.
// For workers, whose view of the state may be one step old.
bool transition_from(const std::string& id, State from, State to, const std::string& message);

// Appends an event to the migration's log; details is a JSON object or empty.
void log_event(const std::string& id, LogLevel level, const std::string& event,
               const std::string& message, const std::string& details_json = {});

// Records what taking the table lock cost: attempts and total wait.
void record_lock_wait(const std::string& id, int attempts, double waited_ms);

void set_rollback_feasibility(const std::string& id, const std::string& feasibility);

void request_cutover(const std::string& id, bool force);

// What a migration worker needs to run a migration.
struct Task {
    std::string id;
    State state = State::Created;
    Oid table_oid = InvalidOid;
    std::string table_name;
    std::string operation_class;
    std::string statement;
    std::string search_path;
    std::string object_name;
    Oid started_by = InvalidOid;
    Oid login_role = InvalidOid;
    int worker_pid = 0;
};

// Reads a migration for its worker; nullopt if the row does not exist (its
// starting transaction rolled back).
std::optional<Task> load_task(const std::string& id);

// The migration's state as committed (a fresh snapshot per call in a worker).
State current_state(const std::string& id);

// Why a FAILED migration failed ("" if it did not).
std::string failure_reason(const std::string& id);

void set_worker_pid(const std::string& id, int pid);
void set_phase(const std::string& id, const std::string& phase);

// The planned steps of a native-concurrent migration.
void insert_steps(const std::string& id, const std::vector<plan::Step>& steps);

struct StoredStep {
    int number = 0;
    plan::Step step;
    bool started = false;
    bool done = false;
};
std::vector<StoredStep> load_steps(const std::string& id);
void mark_step(const std::string& id, int number, bool done);

// Migrations that need a worker but have none alive (after a restart, or a
// worker that died without recording its end).
std::vector<Task> orphaned_tasks();

} // namespace heliosmig::catalog
