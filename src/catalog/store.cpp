// heliosmig's catalog tables (see include/heliosmig/catalog/store.hpp).
#include "heliosmig/catalog/store.hpp"
#include "heliosmig/catalog/writer.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/spi.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "utils/syscache.h"
#include "utils/lsyscache.h"
}

#include <fmt/format.h>

namespace heliosmig::catalog {

namespace {

using pg::Value;

std::string_view level_name(LogLevel level) {
    switch (level) {
    case LogLevel::Info:
        return "INFO";
    case LogLevel::Warning:
        return "WARNING";
    case LogLevel::Error:
        return "ERROR";
    }
    return "INFO";
}

std::string bool_text(bool b) {
    return b ? "true" : "false";
}

} // namespace

std::string create_migration(const NewMigration& m) {
    if (auto active = active_migration_for_table(m.table_oid))
        pg::raise(ERRCODE_OBJECT_IN_USE,
                  fmt::format("table {} already has an active migration", m.table_name),
                  fmt::format("Migration {} is still running.", *active),
                  "Only one migration per table runs at a time: wait for it to finish, or "
                  "cancel it with heliosmig.rollback().");

    CatalogWriter writer;
    pg::Rows rows = writer.query(
        "INSERT INTO heliosmig.helios_migrations"
        " (table_oid, table_name, operation, operation_class, ddl, statement, search_path,"
        "  mode, chunk_size, throttle_io, shadow_traffic, auto_cutover, lock_mode, started_by,"
        "  object_name, login_role, state_entered_at)"
        " VALUES ($1::oid, $2, $3, $4, $5, $6, $7, $8, $9::int, $10::int, $11::bool,"
        "  $12::bool, $13, $14::oid::regrole, $15, $16::oid::regrole,"
        "  pg_catalog.jsonb_build_object('CREATED', pg_catalog.clock_timestamp()))"
        " RETURNING migration_id::text",
        {std::to_string(m.table_oid), m.table_name, m.operation, m.operation_class, m.ddl,
         m.statement, m.search_path, m.mode, std::to_string(m.chunk_size),
         std::to_string(m.throttle_io), bool_text(m.shadow_traffic), bool_text(m.auto_cutover),
         m.lock_mode, std::to_string(m.started_by),
         m.object_name.empty() ? Value() : Value(m.object_name), std::to_string(m.login_role)});
    std::string id = *rows.rows.at(0).at(0);
    writer.query("INSERT INTO heliosmig.helios_migration_logs"
                 " (migration_id, level, event, to_state, message, details)"
                 " VALUES ($1::uuid, 'INFO', 'created', 'CREATED', $2,"
                 "  pg_catalog.jsonb_build_object('ddl', $3, 'statement', $4))",
                 {id, fmt::format("migration created for {}", m.table_name), m.ddl, m.statement});
    return id;
}

std::optional<Migration> lock_migration(const std::string& id) {
    // Read through the caller's own visibility (row security applies), then
    // lock the row as the catalog owner.
    pg::Spi spi;
    pg::Rows visible =
        spi.query("SELECT 1 FROM heliosmig.helios_migrations WHERE migration_id = $1::uuid", {id});
    if (visible.rows.empty())
        return std::nullopt;

    CatalogWriter writer;
    pg::Rows rows =
        writer.query("SELECT migration_id::text, state, paused_from, table_oid::text, table_name,"
                     "       operation_class, rollback_feasibility"
                     "  FROM heliosmig.helios_migrations WHERE migration_id = $1::uuid FOR UPDATE",
                     {id});
    if (rows.rows.empty())
        return std::nullopt;
    const pg::Row& r = rows.rows.front();
    Migration m;
    m.id = *r[0];
    m.state = parse_state(*r[1]).value_or(State::Failed);
    if (r[2])
        m.paused_from = parse_state(*r[2]);
    m.table_oid = static_cast<Oid>(std::stoul(*r[3]));
    m.table_name = *r[4];
    m.operation_class = *r[5];
    m.rollback_feasibility = *r[6];
    return m;
}

std::optional<std::string> active_migration_for_table(Oid table_oid) {
    // As the catalog owner: a migration on the table blocks DDL whoever started it.
    CatalogWriter reader;
    pg::Rows rows = reader.query("SELECT migration_id::text FROM heliosmig.helios_migrations"
                                 " WHERE table_oid = $1::oid"
                                 "   AND state NOT IN ('COMPLETED', 'ROLLED_BACK', 'FAILED')",
                                 {std::to_string(table_oid)});
    if (rows.rows.empty())
        return std::nullopt;
    return rows.rows.front().front();
}

namespace {

void write_transition(CatalogWriter& writer, const std::string& id, const std::string& from_name,
                      const std::string& to_name, const std::string& message);

} // namespace

void transition(const std::string& id, State to, const std::string& message) {
    const std::string to_name(state_name(to));
    CatalogWriter writer;
    pg::Rows from = writer.query(
        "SELECT state FROM heliosmig.helios_migrations WHERE migration_id = $1::uuid FOR UPDATE",
        {id});
    if (from.rows.empty())
        pg::raise(ERRCODE_UNDEFINED_OBJECT, fmt::format("migration {} does not exist", id));
    write_transition(writer, id, *from.rows.front().front(), to_name, message);
}

bool transition_from(const std::string& id, State from, State to, const std::string& message) {
    CatalogWriter writer;
    pg::Rows current = writer.query(
        "SELECT state FROM heliosmig.helios_migrations WHERE migration_id = $1::uuid FOR UPDATE",
        {id});
    if (current.rows.empty() || *current.rows.front().front() != state_name(from))
        return false;
    write_transition(writer, id, std::string(state_name(from)), std::string(state_name(to)),
                     message);
    return true;
}

namespace {

void write_transition(CatalogWriter& writer, const std::string& id, const std::string& from_name,
                      const std::string& to_name, const std::string& message) {
    // The trigger rejects illegal transitions; PAUSED remembers where to resume.
    writer.query("UPDATE heliosmig.helios_migrations SET"
                 "  state = $2,"
                 "  paused_from = CASE WHEN $2 = 'PAUSED' THEN state END,"
                 "  updated_at = pg_catalog.clock_timestamp(),"
                 "  finished_at = CASE WHEN $2 IN ('COMPLETED', 'ROLLED_BACK', 'FAILED')"
                 "                     THEN pg_catalog.clock_timestamp() END,"
                 "  error = CASE WHEN $2 = 'FAILED' THEN $3 ELSE error END,"
                 "  state_entered_at = state_entered_at"
                 "      || pg_catalog.jsonb_build_object($2, pg_catalog.clock_timestamp())"
                 " WHERE migration_id = $1::uuid",
                 {id, to_name, message});
    writer.query("INSERT INTO heliosmig.helios_migration_logs"
                 " (migration_id, level, event, from_state, to_state, message)"
                 " VALUES ($1::uuid, CASE WHEN $3 = 'FAILED' THEN 'ERROR' ELSE 'INFO' END,"
                 "         'transition', $2, $3, $4)",
                 {id, from_name, to_name, message});
}

} // namespace

void log_event(const std::string& id, LogLevel level, const std::string& event,
               const std::string& message, const std::string& details_json) {
    CatalogWriter writer;
    writer.query("INSERT INTO heliosmig.helios_migration_logs"
                 " (migration_id, level, event, message, details)"
                 " VALUES ($1::uuid, $2, $3, $4, $5::jsonb)",
                 {id, std::string(level_name(level)), event, message,
                  details_json.empty() ? Value() : Value(details_json)});
}

void record_lock_wait(const std::string& id, int attempts, double waited_ms) {
    CatalogWriter writer;
    writer.query("UPDATE heliosmig.helios_migrations SET"
                 "  lock_attempts = lock_attempts + $2::int,"
                 "  lock_wait = lock_wait + pg_catalog.make_interval(secs => $3::float8 / 1000),"
                 "  updated_at = pg_catalog.clock_timestamp()"
                 " WHERE migration_id = $1::uuid",
                 {id, std::to_string(attempts), fmt::format("{:.3f}", waited_ms)});
}

void set_rollback_feasibility(const std::string& id, const std::string& feasibility) {
    CatalogWriter writer;
    writer.query("UPDATE heliosmig.helios_migrations SET rollback_feasibility = $2"
                 " WHERE migration_id = $1::uuid",
                 {id, feasibility});
}

void request_cutover(const std::string& id, bool force) {
    CatalogWriter writer;
    writer.query("UPDATE heliosmig.helios_migrations SET cutover_requested = true,"
                 "  cutover_force = $2::bool, updated_at = pg_catalog.clock_timestamp()"
                 " WHERE migration_id = $1::uuid",
                 {id, bool_text(force)});
}

namespace {

constexpr const char* kTaskColumns =
    "migration_id::text, state, table_oid::text, table_name, operation_class, statement,"
    " search_path, coalesce(object_name, ''), started_by::oid::text, coalesce(worker_pid, 0)::text,"
    " login_role::oid::text";

Task task_from_row(const pg::Row& r) {
    Task t;
    t.id = *r[0];
    t.state = parse_state(*r[1]).value_or(State::Failed);
    t.table_oid = static_cast<Oid>(std::stoul(*r[2]));
    t.table_name = *r[3];
    t.operation_class = *r[4];
    t.statement = *r[5];
    t.search_path = *r[6];
    t.object_name = *r[7];
    t.started_by = static_cast<Oid>(std::stoul(*r[8]));
    t.worker_pid = std::stoi(*r[9]);
    t.login_role = static_cast<Oid>(std::stoul(*r[10]));
    return t;
}

} // namespace

std::optional<Task> load_task(const std::string& id) {
    CatalogWriter reader;
    pg::Rows rows = reader.query(fmt::format("SELECT {} FROM heliosmig.helios_migrations"
                                             " WHERE migration_id = $1::uuid",
                                             kTaskColumns),
                                 {id});
    if (rows.rows.empty())
        return std::nullopt;
    return task_from_row(rows.rows.front());
}

State current_state(const std::string& id) {
    CatalogWriter reader;
    pg::Value state = reader
                          .query("SELECT state FROM heliosmig.helios_migrations"
                                 " WHERE migration_id = $1::uuid",
                                 {id})
                          .rows.at(0)
                          .at(0);
    return parse_state(*state).value_or(State::Failed);
}

std::string failure_reason(const std::string& id) {
    CatalogWriter reader;
    return reader
        .query("SELECT coalesce(error, '') FROM heliosmig.helios_migrations"
               " WHERE migration_id = $1::uuid",
               {id})
        .rows.at(0)
        .at(0)
        .value_or("");
}

void set_worker_pid(const std::string& id, int pid) {
    CatalogWriter writer;
    writer.query("UPDATE heliosmig.helios_migrations SET worker_pid = $2::int,"
                 "  updated_at = pg_catalog.clock_timestamp() WHERE migration_id = $1::uuid",
                 {id, pid > 0 ? Value(std::to_string(pid)) : Value()});
}

void set_phase(const std::string& id, const std::string& phase) {
    CatalogWriter writer;
    writer.query("UPDATE heliosmig.helios_migrations SET phase = $2,"
                 "  updated_at = pg_catalog.clock_timestamp() WHERE migration_id = $1::uuid",
                 {id, phase});
}

void insert_steps(const std::string& id, const std::vector<plan::Step>& steps) {
    CatalogWriter writer;
    int number = 0;
    for (const plan::Step& step : steps) {
        writer.query("INSERT INTO heliosmig.helios_migration_steps"
                     " (migration_id, step_no, state, kind, sql, object_name, lock_mode, undo_sql,"
                     "  undo_concurrently, description)"
                     " VALUES ($1::uuid, $2::int, $3, $4, $5, $6, $7, $8, $9::bool, $10)",
                     {id, std::to_string(++number), step.state, step.kind, step.sql,
                      step.object_name.empty() ? Value() : Value(step.object_name), step.lock_mode,
                      step.undo_sql.empty() ? Value() : Value(step.undo_sql),
                      bool_text(step.undo_concurrently), step.description});
    }
}

std::vector<StoredStep> load_steps(const std::string& id) {
    CatalogWriter reader;
    pg::Rows rows = reader.query(
        "SELECT step_no::text, state, kind, sql, coalesce(object_name, ''), lock_mode,"
        "       coalesce(undo_sql, ''), undo_concurrently::text, description,"
        "       (done_at IS NOT NULL)::text, (started_at IS NOT NULL)::text"
        "  FROM heliosmig.helios_migration_steps WHERE migration_id = $1::uuid ORDER BY step_no",
        {id});
    std::vector<StoredStep> steps;
    for (const pg::Row& r : rows.rows) {
        StoredStep s;
        s.number = std::stoi(*r[0]);
        s.step = {*r[1], *r[2], *r[3], *r[4], *r[5], *r[6], *r[7] == "true", *r[8]};
        s.done = *r[9] == "true";
        s.started = *r[10] == "true";
        steps.push_back(std::move(s));
    }
    return steps;
}

void mark_step(const std::string& id, int number, bool done) {
    CatalogWriter writer;
    writer.query(
        done ? "UPDATE heliosmig.helios_migration_steps SET done_at = pg_catalog.clock_timestamp()"
               " WHERE migration_id = $1::uuid AND step_no = $2::int"
             : "UPDATE heliosmig.helios_migration_steps SET started_at = "
               "pg_catalog.clock_timestamp()"
               " WHERE migration_id = $1::uuid AND step_no = $2::int",
        {id, std::to_string(number)});
}

// A worker is alive if a process of that pid is a heliosmig migration worker.
// Only classes with an online engine run in workers (native_concurrent).
std::vector<Task> orphaned_tasks() {
    CatalogWriter reader;
    pg::Rows rows =
        reader.query(fmt::format("SELECT {} FROM heliosmig.helios_migrations m"
                                 " WHERE m.state NOT IN ('COMPLETED', 'ROLLED_BACK', 'FAILED')"
                                 "   AND m.operation_class IN ('native_concurrent', 'rewrite')"
                                 "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a"
                                 "                    WHERE a.pid = m.worker_pid"
                                 "                      AND a.backend_type = 'heliosmig migration')"
                                 " ORDER BY m.created_at",
                                 kTaskColumns));
    std::vector<Task> tasks;
    for (const auto& row : rows.rows)
        tasks.push_back(task_from_row(row));
    return tasks;
}

} // namespace heliosmig::catalog
