// The rewrite engine's steps (see include/heliosmig/engine/rewrite_runner.hpp).
#include "heliosmig/engine/rewrite_runner.hpp"
#include "heliosmig/catalog/rewrite_store.hpp"
#include "heliosmig/decode/change_stream.hpp"
#include "heliosmig/engine/chunk_copier.hpp"
#include "heliosmig/engine/cleanup.hpp"
#include "heliosmig/engine/ghost_rows.hpp"
#include "heliosmig/engine/ghost_table.hpp"
#include "heliosmig/engine/lock_retry.hpp"
#include "heliosmig/engine/rewrite_session.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/sleep.hpp"
#include "heliosmig/pg/spi.hpp"
#include "heliosmig/pg/transaction.hpp"

extern "C" {
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "executor/tuptable.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
}

#include <fmt/format.h>

#include <climits>

namespace heliosmig::engine {

using catalog::State;

namespace {

constexpr long kReadyPollMs = 200;
constexpr long kCaughtUpChanges = 1000;         // a round this small means the ghost has caught up
constexpr double kStepMs = 250;                 // work between two looks at the migration's state
constexpr long kDeferredChanges = 50000;        // captured changes held before the key is built
constexpr BlockNumber kCountableBlocks = 12800; // 100 MB: counted when never analyzed

// The duty cycle of throttle_io: after work that took `worked` ms, pause so
// that work is throttle_io percent of wall time.
void throttle(const RewriteSession& s, double worked_ms) {
    if (s.throttle_io >= 100 || worked_ms <= 0)
        return;
    pg::sleep_ms(static_cast<long>(worked_ms * (100 - s.throttle_io) / s.throttle_io));
}

// Raw PostgreSQL: the rows of one relation (not its children) visible in snapshot.
int64 count_rows(Oid relid, Snapshot snapshot) {
    Relation rel = table_open(relid, AccessShareLock);
    TableScanDesc scan = table_beginscan(rel, snapshot, 0, nullptr);
    TupleTableSlot* slot = table_slot_create(rel, nullptr);
    int64 rows = 0;
    while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
        rows++;
    ExecDropSingleTupleTableSlot(slot);
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    return rows;
}

void prepare(const catalog::Task& task, State state) {
    if (state == State::Planning)
        pg::in_worker_transaction([&] {
            catalog::transition_from(task.id, State::Planning, State::Preparing,
                                     "creating the ghost table and the replication slot");
        });
    RewriteSession& s = open_session(task);
    // A worker that died while preparing left a partial ghost or slot behind:
    // start preparing from scratch.
    pg::call([] { decode::release_stream(); });
    pg::in_worker_transaction([&] {
        remove_migration_artifacts(task.id, task.table_oid);
        catalog::forget_chunks(task.id);
    });
    pg::in_worker_transaction([&] {
        create_ghost(s);
        const Oid table = task.table_oid;
        // The planner's estimate; a table never analyzed has none, and is
        // counted if it is small (a large one shows progress without a total).
        const double tuples = pg::call([&] {
            Relation rel = table_open(table, AccessShareLock);
            double t = rel->rd_rel->reltuples;
            const bool small = RelationGetNumberOfBlocks(rel) <= kCountableBlocks;
            table_close(rel, AccessShareLock);
            if (t < 0 && small) {
                Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
                t = static_cast<double>(count_rows(table, snapshot));
                UnregisterSnapshot(snapshot);
            }
            return t;
        });
        catalog::set_rows_total(task.id, tuples > 0 ? static_cast<int64_t>(tuples) : 0);
        catalog::log_event(
            task.id, catalog::LogLevel::Info, "ghost_created",
            fmt::format("ghost table heliosmig.{} created with the new layout", s.ghost_name));
    });
    decode::use_own_origin(s.slot, task.table_oid);
    const XLogRecPtr consistent = decode::create_slot(s.slot);
    s.applied_upto = consistent;
    pg::in_worker_transaction([&] {
        catalog::set_slot_name(task.id, s.slot);
        catalog::set_applied_lsn(task.id, lsn_text(consistent));
        catalog::log_event(task.id, catalog::LogLevel::Info, "slot_created",
                           fmt::format("replication slot {} captures changes from {}", s.slot,
                                       lsn_text(consistent)));
        catalog::transition_from(task.id, State::Preparing, State::Copying,
                                 "copying rows in key order while changes are captured");
    });
}

void copy_one_chunk(RewriteSession& s) {
    CopiedChunk chunk;
    pg::in_worker_transaction([&] {
        Snapshot snapshot = snapshot_seeing(s.must_see);
        AlterTableStmt* alter = parse_alter(s.task.statement);
        GhostRows rows;
        pg::call(
            [&] { rows.open(s.task.table_oid, s.ghost, s.key, alter, s.task.statement.c_str()); });
        chunk = copy_chunk(rows, s.key_index, s.key, s.chunks->last_key(), s.chunk_size, snapshot);
        pg::call([&] {
            rows.close();
            UnregisterSnapshot(snapshot);
        });
        catalog::StoredChunk stored;
        stored.number = s.next_chunk;
        if (chunk.last_key != nullptr)
            stored.last_key = s.key.to_text(chunk.last_key);
        stored.rows = chunk.rows;
        stored.xmin = chunk.snapshot.xmin;
        stored.xmax = chunk.snapshot.xmax;
        stored.running.assign(chunk.snapshot.running.begin(), chunk.snapshot.running.end());
        catalog::record_chunk(s.task.id, stored);
    });
    s.next_chunk++;
    // Transactions this snapshot sees, every later one sees too.
    for (auto it = s.must_see.begin(); it != s.must_see.end();)
        it = chunk.snapshot.sees(*it) ? s.must_see.erase(it) : std::next(it);
    s.chunks->add_range(chunk.last_key, std::move(chunk.snapshot));
}

RoundResult round_in_transaction(RewriteSession& s) {
    RoundResult round = pg::in_worker_transaction([&] { return apply_round(s); });
    finish_round(s, round);
    return round;
}

// Decodes what was committed since the last round without applying it
// (the ghost has no key yet): the captured transactions stay in memory, and
// every later chunk's snapshot must see them.
void capture_round(RewriteSession& s) {
    pg::in_worker_transaction([&] { decode::read_changes(decode::wal_end(true), LONG_MAX); });
    note_captured(s);
}

// While the ghost has no key, captured changes wait in memory; once they
// are many, the key is built and from then on they are applied between
// chunks. Either way a change is judged by the chunk snapshots, so the
// result is the same; only the time and memory differ.
void copy_and_capture(RewriteSession& s) {
    const double started = now_ms();
    copy_one_chunk(s);
    if (s.keyed) {
        round_in_transaction(s);
    } else {
        capture_round(s);
        if (decode::capture().change_count >= kDeferredChanges) {
            build_ghost_key(s);
            round_in_transaction(s);
        }
    }
    throttle(s, now_ms() - started);
}

// Several chunks per step (the worker's loop looks for pause and rollback
// requests between steps), for about kStepMs.
void copying(RewriteSession& s) {
    const double started = now_ms();
    do
        copy_and_capture(s);
    while (!s.chunks->complete() && now_ms() - started < kStepMs);
    if (s.chunks->complete())
        pg::in_worker_transaction([&] {
            catalog::transition_from(s.task.id, State::Copying, State::Synchronizing,
                                     "every row is copied; building the ghost's indexes and "
                                     "applying the remaining changes");
        });
}

// cutover(id, force => true) skips validation: the cutover still applies
// every captured change under its lock; only the comparison is not made.
bool forced_cutover(RewriteSession& s, State from) {
    return pg::in_worker_transaction([&] {
        const catalog::CutoverRequest request = catalog::load_cutover_request(s.task.id);
        if (!request.requested || !request.force)
            return false;
        return catalog::transition_from(s.task.id, from, State::Cutover,
                                        "forced cutover: validation skipped");
    });
}

void synchronizing(RewriteSession& s) {
    if (!s.indexes_built)
        build_ghost_indexes(s);
    const double started = now_ms();
    RoundResult round = round_in_transaction(s);
    if (forced_cutover(s, State::Synchronizing))
        return;
    if (round.changes < kCaughtUpChanges)
        pg::in_worker_transaction([&] {
            catalog::transition_from(s.task.id, State::Synchronizing, State::Validating,
                                     "caught up; comparing the ghost with the table");
        });
    throttle(s, now_ms() - started);
}

// Both tables must agree in one snapshot: taken while SHARE on the table
// keeps writers out just long enough to apply the last captured changes. The
// lock is released before counting: writers wait for the tail, never for the
// scans.
void validating(RewriteSession& s) {
    if (forced_cutover(s, State::Validating))
        return;
    if (!catch_up(s))
        return; // still far behind: the SHARE lock would be held too long
    const Oid table = s.task.table_oid;
    const Oid ghost = s.ghost;
    int64 table_rows = 0;
    int64 ghost_rows = 0;
    LockWait wait;
    RoundResult round = pg::in_worker_transaction([&] {
        wait = run_with_lock_retries(fmt::format("validation of {}", s.task.table_name),
                                     [&] { pg::call([&] { LockRelationOid(table, ShareLock); }); });
        RoundResult r = apply_to_end(s);
        pg::call([&] {
            CommandCounterIncrement();
            Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
            UnlockRelationOid(table, ShareLock);
            table_rows = count_rows(table, snapshot);
            ghost_rows = count_rows(ghost, snapshot);
            UnregisterSnapshot(snapshot);
        });
        return r;
    });
    finish_round(s, round);
    pg::in_worker_transaction([&] {
        catalog::log_event(
            s.task.id, catalog::LogLevel::Info, "validated",
            fmt::format("{} rows in the table, {} in the ghost (SHARE lock after "
                        "{} attempt(s), {:.1f} ms waiting)",
                        table_rows, ghost_rows, wait.attempts, wait.waited_ms),
            fmt::format(R"({{"table_rows": {}, "ghost_rows": {}}})", table_rows, ghost_rows));
    });
    if (table_rows != ghost_rows)
        pg::raise(ERRCODE_DATA_CORRUPTED,
                  fmt::format("validation failed: the table has {} rows, the ghost {}", table_rows,
                              ghost_rows),
                  "Nothing was cut over; the table is unchanged.");
    pg::in_worker_transaction([&] {
        catalog::transition_from(s.task.id, State::Validating, State::Ready,
                                 "the ghost matches the table; ready for cutover");
    });
}

void ready(RewriteSession& s) {
    round_in_transaction(s);
    const bool go = pg::in_worker_transaction([&] {
        const catalog::CutoverRequest request = catalog::load_cutover_request(s.task.id);
        if (!request.automatic && !request.requested)
            return false;
        return catalog::transition_from(s.task.id, State::Ready, State::Cutover,
                                        request.automatic ? "automatic cutover"
                                                          : "cutover requested");
    });
    if (!go)
        pg::sleep_ms(kReadyPollMs);
}

// After the cutover committed: the slot and origin go at once (they pin WAL
// and catalog rows), then statistics for the new column types.
void finish(RewriteSession& s) {
    // The cutover committed asynchronously: make it durable before the slot,
    // which a restarted cutover would need, goes.
    pg::call([] {
        XLogFlush(XactLastCommitEnd);
        decode::release_stream(true);
    });
    pg::in_worker_transaction([&] {
        decode::drop_slot_and_origin(s.slot);
        catalog::forget_chunks(s.task.id);
    });
    pg::in_worker_transaction([&] {
        pg::Spi spi;
        spi.query(fmt::format("ANALYZE {}", s.task.table_name));
    });
    close_session();
}

} // namespace

void run_rewrite_step(const catalog::Task& task, State state) {
    if (state == State::Planning || state == State::Preparing) {
        prepare(task, state);
        return;
    }
    RewriteSession& s = open_session(task);
    open_stream(s);
    switch (state) {
    case State::Copying:
        copying(s);
        break;
    case State::Synchronizing:
        synchronizing(s);
        break;
    case State::Validating:
        validating(s);
        break;
    case State::Ready:
        ready(s);
        break;
    case State::Cutover:
        if (run_cutover(s))
            finish(s);
        break;
    default:
        pg::raise(ERRCODE_INTERNAL_ERROR, fmt::format("rewrite migration in unexpected state {}",
                                                      catalog::state_name(state)));
    }
}

bool undo_rewrite(const catalog::Task& task) {
    pg::call([] { decode::release_stream(); });
    close_session();
    pg::in_worker_transaction([&] {
        remove_migration_artifacts(task.id, task.table_oid);
        catalog::forget_chunks(task.id);
    });
    return true;
}

} // namespace heliosmig::engine
