// The rewrite engine's steps (see include/heliosmig/engine/rewrite_runner.hpp).
#include "heliosmig/engine/rewrite_runner.hpp"
#include "heliosmig/catalog/rewrite_store.hpp"
#include "heliosmig/decode/change_stream.hpp"
#include "heliosmig/engine/chunk_copier.hpp"
#include "heliosmig/engine/cleanup.hpp"
#include "heliosmig/engine/ghost_rows.hpp"
#include "heliosmig/engine/lock_retry.hpp"
#include "heliosmig/engine/relation_clone.hpp"
#include "heliosmig/engine/rewrite_session.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/sleep.hpp"
#include "heliosmig/pg/spi.hpp"
#include "heliosmig/pg/transaction.hpp"
#include "heliosmig/pg/utility.hpp"

extern "C" {
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "nodes/makefuncs.h"
#include "parser/parser.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
}

#include <fmt/format.h>

#include <algorithm>
#include <climits>

namespace heliosmig::engine {

using catalog::State;

namespace {

std::unique_ptr<RewriteSession> current;

constexpr long kReadyPollMs = 200;
constexpr long kCaughtUpChanges = 1000; // a round this small means the ghost has caught up
constexpr double kConfirmEveryMs = 1000;
constexpr double kStepMs = 250;                 // work between two looks at the migration's state
constexpr long kDeferredChanges = 50000;        // captured changes held before the key is built
constexpr long kApplyBatchChanges = 100000;     // captured changes applied per transaction
constexpr BlockNumber kCountableBlocks = 12800; // 100 MB: counted when never analyzed

std::string lsn_text(XLogRecPtr lsn) {
    return fmt::format("{:X}/{:X}", static_cast<uint32_t>(lsn >> 32), static_cast<uint32_t>(lsn));
}

XLogRecPtr parse_lsn(const std::string& text) {
    const char* value = text.c_str();
    return pg::call([&] {
        bool failed = false;
        XLogRecPtr lsn = pg_lsn_in_internal(value, &failed);
        if (failed)
            elog(ERROR, "invalid WAL position \"%s\"", value);
        return lsn;
    });
}

Oid heliosmig_relation(const std::string& name) {
    return pg::call(
        [&] { return get_relname_relid(name.c_str(), get_namespace_oid("heliosmig", false)); });
}

// The table's copy key: its primary key, else its replica identity index.
Oid key_index_of(Oid table) {
    return pg::call([&] {
        Relation rel = table_open(table, AccessShareLock);
        Oid index = RelationGetPrimaryKeyIndex(rel);
        if (!OidIsValid(index))
            index = RelationGetReplicaIndex(rel);
        table_close(rel, AccessShareLock);
        if (!OidIsValid(index))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("table has no primary key or replica identity index"),
                            errhint("An online rewrite copies the table in key order and matches "
                                    "captured changes by key: add a primary key first.")));
        return index;
    });
}

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

bool ghost_has_key(Oid ghost) {
    return pg::call([&] {
        Relation rel = table_open(ghost, AccessShareLock);
        const bool keyed = OidIsValid(RelationGetPrimaryKeyIndex(rel));
        table_close(rel, AccessShareLock);
        return keyed;
    });
}

// A worker that resumes a copy (after a restart, or its predecessor's
// error) has lost the list of captured transactions the next chunk must see:
// one its predecessor judged "not copied yet" and recorded as applied may
// have committed without yet leaving the proc array. Waiting for every
// transaction running now closes that gap, as slot creation does.
void wait_for_transactions_running_at_resume(RewriteSession& s) {
    const int waited = pg::in_worker_transaction([&] {
        return pg::call([] {
            Snapshot snapshot = GetLatestSnapshot();
            const int count = static_cast<int>(snapshot->xcnt);
            TransactionId* running =
                static_cast<TransactionId*>(palloc(sizeof(TransactionId) * (count + 1)));
            memcpy(running, snapshot->xip, sizeof(TransactionId) * count);
            for (int i = 0; i < count; i++)
                XactLockTableWait(running[i], nullptr, nullptr, XLTW_None);
            return count;
        });
    });
    if (waited > 0)
        pg::in_worker_transaction([&] {
            catalog::log_event(s.task.id, catalog::LogLevel::Info, "resume_wait",
                               fmt::format("waited for {} transaction(s) running at resume before "
                                           "copying on",
                                           waited));
        });
}

RewriteSession& open_session(const catalog::Task& task) {
    if (current && current->task.id == task.id)
        return *current;
    auto s = std::make_unique<RewriteSession>();
    s->task = task;
    bool resumed_mid_copy = false;
    s->ghost_name = fmt::format("ghost_{}", task.table_oid);
    s->slot = slot_name(task.id);
    s->context = pg::call([] {
        return AllocSetContextCreate(TopMemoryContext, "heliosmig rewrite session",
                                     ALLOCSET_DEFAULT_SIZES);
    });
    pg::in_worker_transaction([&] {
        catalog::RewriteSettings settings = catalog::load_rewrite_settings(task.id);
        s->chunk_size = settings.chunk_size;
        s->throttle_io = settings.throttle_io;
        s->key_index = key_index_of(task.table_oid);
        pg::call([&] {
            Relation index = relation_open(s->key_index, AccessShareLock);
            s->key.load(index, s->context);
            relation_close(index, AccessShareLock);
        });
        s->ghost = heliosmig_relation(s->ghost_name);
        s->index_recipe = settings.ghost_indexes;
        s->keyed = OidIsValid(s->ghost) && ghost_has_key(s->ghost);
        s->chunks = std::make_unique<ChunkMap>(s->key);
        if (!settings.applied_lsn.empty())
            s->applied_upto = parse_lsn(settings.applied_lsn);
        for (const catalog::StoredChunk& stored : catalog::load_chunks(task.id)) {
            SnapshotRecord snapshot;
            snapshot.xmin = stored.xmin;
            snapshot.xmax = stored.xmax;
            snapshot.running.assign(stored.running.begin(), stored.running.end());
            std::sort(snapshot.running.begin(), snapshot.running.end());
            Datum* key = stored.last_key ? s->key.from_text(*stored.last_key) : nullptr;
            if (stored.single_key)
                s->chunks->add_single_key(key, std::move(snapshot));
            else
                s->chunks->add_range(key, std::move(snapshot));
            s->next_chunk = stored.number + 1;
        }
        resumed_mid_copy = s->next_chunk > 0 && !s->chunks->complete();
    });
    // Chunk and apply transactions commit asynchronously: each is atomic
    // with its catalog rows, so a crash loses a suffix of them consistently,
    // and nothing outside the database depends on them until confirm()
    // and the cutover, which flush first.
    pg::call([] { SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION); });
    // Every statement the worker runs is heliosmig's own (on the ghost, or
    // the cutover's, whose locks it already holds): none is intercepted.
    pg::call([] { SetConfigOption("heliosmig.intercept", "off", PGC_USERSET, PGC_S_SESSION); });
    current = std::move(s);
    if (resumed_mid_copy)
        wait_for_transactions_running_at_resume(*current);
    return *current;
}

// A restarted worker (or one that prepared in an earlier step) reattaches to
// the slot, which replays every transaction not yet confirmed.
void open_stream(RewriteSession& s) {
    if (decode::active_capture != nullptr)
        return;
    decode::use_own_origin(s.slot, s.task.table_oid);
    pg::in_worker_transaction([&] { decode::open_slot(s.slot); });
}

// The ghost's indexes are exactly what the statement makes of the table's
// (PostgreSQL rebuilt them on the empty ghost). Copying into an unindexed
// heap and building each index once afterwards is much faster than keeping
// them up to date row by row, so their definitions are recorded and the
// indexes dropped; build_ghost_key and build_ghost_indexes recreate them
// from the same definitions.
void set_aside_ghost_indexes(RewriteSession& s) {
    const std::string ghost = "heliosmig." + s.ghost_name;
    pg::Spi spi;
    pg::Rows indexes = spi.query(
        "SELECT pg_catalog.pg_get_indexdef(i.indexrelid), i.indisprimary::text,"
        "       pg_catalog.quote_ident(ic.relname), coalesce(pg_catalog.quote_ident(c.conname), '')"
        "  FROM pg_catalog.pg_index i"
        "  JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid"
        "  LEFT JOIN pg_catalog.pg_constraint c"
        "    ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid"
        " WHERE i.indrelid = $1::oid ORDER BY i.indisprimary DESC, i.indexrelid",
        {std::to_string(s.ghost)});
    std::vector<std::string> recipe;
    for (const pg::Row& index : indexes.rows) {
        const bool primary = *index[1] == "true";
        recipe.push_back(*index[0]);
        if (primary)
            recipe.push_back(
                fmt::format("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY USING INDEX {}", ghost,
                            *index[3], *index[2]));
    }
    for (const pg::Row& index : indexes.rows) {
        if (!index[3]->empty())
            spi.query(fmt::format("ALTER TABLE {} DROP CONSTRAINT {}", ghost, *index[3]));
        else
            spi.query(fmt::format("DROP INDEX heliosmig.{}", *index[2]));
    }
    catalog::set_ghost_indexes(s.task.id, recipe);
    s.index_recipe = recipe;
    s.keyed = false;
}

// "CREATE [UNIQUE] INDEX name ..." -> "... INDEX IF NOT EXISTS name ...": a
// worker restarted halfway through the builds repeats them harmlessly.
std::string if_not_exists(const std::string& definition) {
    std::string out = definition;
    const size_t at = out.find(" INDEX ");
    if (at != std::string::npos)
        out.insert(at + 7, "IF NOT EXISTS ");
    return out;
}

// The primary key first: applying captured changes needs it to find rows.
// The ghost is this worker's alone, so its SHARE lock blocks no one.
void build_ghost_key(RewriteSession& s) {
    if (s.keyed)
        return;
    const double started = now_ms();
    pg::in_worker_transaction([&] {
        if (!ghost_has_key(s.ghost)) {
            pg::Spi spi;
            spi.query(if_not_exists(s.index_recipe.at(0)));
            spi.query(s.index_recipe.at(1));
        }
        catalog::log_event(
            s.task.id, catalog::LogLevel::Info, "index_built",
            fmt::format("the ghost's primary key is built ({:.0f} ms)", now_ms() - started));
    });
    s.keyed = true;
}

void build_ghost_indexes(RewriteSession& s) {
    build_ghost_key(s);
    for (size_t i = 2; i < s.index_recipe.size(); i++) {
        const double started = now_ms();
        pg::in_worker_transaction([&] {
            pg::Spi spi;
            spi.query(if_not_exists(s.index_recipe[i]));
            catalog::log_event(s.task.id, catalog::LogLevel::Info, "index_built",
                               fmt::format("ghost index built ({:.0f} ms): {}", now_ms() - started,
                                           s.index_recipe[i]));
        });
    }
    s.indexes_built = true;
}

// A table keyed by a replica identity index (unique, on NOT NULL columns)
// rather than a primary key: its copy on the ghost becomes the ghost's
// primary key, which apply uses to find rows. (The cutover matches indexes by
// definition, not by constraint, so T's index still pairs with it.)
void promote_ghost_key(RewriteSession& s) {
    pg::Spi spi;
    const std::string ghost = std::to_string(s.ghost);
    if (spi.scalar("SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1::oid AND indisprimary",
                   {ghost}))
        return;
    pg::Value index = spi.scalar(
        "SELECT pg_catalog.quote_ident(c.relname)"
        "  FROM pg_catalog.pg_index g JOIN pg_catalog.pg_class c ON c.oid = g.indexrelid,"
        "       pg_catalog.pg_index t"
        " WHERE g.indrelid = $1::oid AND t.indexrelid = $2::oid AND g.indisunique"
        "   AND g.indkey::text = t.indkey::text AND g.indclass::text = t.indclass::text"
        "   AND g.indpred IS NULL AND g.indexprs IS NULL"
        " ORDER BY g.indexrelid LIMIT 1",
        {ghost, std::to_string(s.key_index)});
    if (!index)
        return; // the key check below says why
    spi.query(
        fmt::format("ALTER TABLE heliosmig.{} ADD CONSTRAINT {}_pkey PRIMARY KEY USING INDEX {}",
                    s.ghost_name, s.ghost_name, *index));
}

// The ghost: the table's exact physical layout, its indexes and CHECK
// constraints, then the statement applied to it (it is empty, so this is
// instant). ACCESS SHARE on the table keeps its descriptor stable; DDL on a
// table under migration is refused by the hook anyway.
void create_ghost(RewriteSession& s) {
    const Oid table = s.task.table_oid;
    const std::string name = s.ghost_name;
    AlterTableStmt* alter = parse_alter(s.task.statement);
    s.ghost = pg::call([&] {
        LockRelationOid(table, AccessShareLock);
        Oid ghost = create_layout_clone(table, name.c_str(), false);
        clone_indexes_and_checks(table, ghost);
        return ghost;
    });
    AlterTableStmt* on_ghost = pg::call([&] {
        auto* copy = static_cast<AlterTableStmt*>(copyObjectImpl(alter));
        copy->relation = makeRangeVar(pstrdup("heliosmig"), pstrdup(name.c_str()), -1);
        return copy;
    });
    pg::execute_utility(reinterpret_cast<Node*>(on_ghost), s.task.statement);
    promote_ghost_key(s);
    // Apply finds ghost rows by the table's key: the ghost's primary key
    // must stand on the same columns.
    const Oid ghost = s.ghost;
    const Oid key_index = s.key_index;
    pg::call([&] {
        Relation g = table_open(ghost, AccessShareLock);
        Oid pk = RelationGetPrimaryKeyIndex(g);
        bool same = OidIsValid(pk);
        if (same) {
            Relation gi = relation_open(pk, AccessShareLock);
            Relation ti = relation_open(key_index, AccessShareLock);
            same = gi->rd_index->indnkeyatts == ti->rd_index->indnkeyatts;
            for (int i = 0; same && i < gi->rd_index->indnkeyatts; i++)
                same = gi->rd_index->indkey.values[i] == ti->rd_index->indkey.values[i];
            relation_close(ti, AccessShareLock);
            relation_close(gi, AccessShareLock);
        }
        table_close(g, AccessShareLock);
        if (!same)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("statements that change the table's key columns are not "
                                   "supported online yet")));
    });
    // Compiling the transform now refuses, before any copy, what apply could
    // not do row by row.
    pg::call([&] {
        GhostRows rows;
        rows.open(table, ghost, s.key, alter, s.task.statement.c_str());
        rows.close();
    });
    set_aside_ghost_indexes(s);
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
    decode::release_stream();
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

// The transactions captured since the last call: every later chunk's
// snapshot must see them (see snapshot_seeing).
void note_captured(RewriteSession& s) {
    const decode::Capture& capture = decode::capture();
    for (int i = s.captured_noted; i < list_length(capture.transactions); i++)
        s.must_see.push_back(
            static_cast<decode::CapturedTransaction*>(list_nth(capture.transactions, i))->xid);
    s.captured_noted = list_length(capture.transactions);
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
    std::erase_if(s.must_see, [&](TransactionId xid) { return chunk.snapshot.sees(xid); });
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
        catalog::RewriteSettings settings = catalog::load_rewrite_settings(s.task.id);
        if (!settings.cutover_requested || !settings.cutover_force)
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
    const Oid table = s.task.table_oid;
    const Oid ghost = s.ghost;
    int64 table_rows = 0;
    int64 ghost_rows = 0;
    LockWait wait;
    RoundResult round = pg::in_worker_transaction([&] {
        wait = run_with_lock_retries(fmt::format("validation of {}", s.task.table_name),
                                     [&] { pg::call([&] { LockRelationOid(table, ShareLock); }); });
        RoundResult r = apply_round(s);
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
        catalog::RewriteSettings settings = catalog::load_rewrite_settings(s.task.id);
        if (!settings.auto_cutover && !settings.cutover_requested)
            return false;
        return catalog::transition_from(s.task.id, State::Ready, State::Cutover,
                                        settings.auto_cutover ? "automatic cutover"
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
    pg::call([] { XLogFlush(XactLastCommitEnd); });
    decode::release_stream();
    pg::in_worker_transaction([&] {
        decode::drop_slot_and_origin(s.slot);
        catalog::forget_chunks(s.task.id);
    });
    pg::in_worker_transaction([&] {
        pg::Spi spi;
        spi.query(fmt::format("ANALYZE {}", s.task.table_name));
    });
    current.reset();
}

} // namespace

AlterTableStmt* parse_alter(const std::string& sql) {
    const char* text = sql.c_str();
    return pg::call([&] {
        List* parsed = raw_parser(text, RAW_PARSE_DEFAULT);
        if (list_length(parsed) != 1)
            elog(ERROR, "migration statement is not a single statement");
        return castNode(AlterTableStmt, linitial_node(RawStmt, parsed)->stmt);
    });
}

RoundResult apply_round(RewriteSession& s) {
    RoundResult round;
    // Flushed first: decoding reads only flushed WAL, and a record that
    // crossed the flushed end would make it wait for the WAL writer.
    const XLogRecPtr upto = decode::wal_end(true);
    round.reached = decode::read_changes(upto, kApplyBatchChanges);
    note_captured(s);
    decode::Capture& capture = decode::capture();
    round.changes = capture.change_count;
    if (capture.transactions != NIL) {
        AlterTableStmt* alter = parse_alter(s.task.statement);
        GhostRows rows;
        pg::call(
            [&] { rows.open(s.task.table_oid, s.ghost, s.key, alter, s.task.statement.c_str()); });
        auto reread = [&](Datum* key, TransactionId xid) {
            Snapshot snapshot = snapshot_seeing({xid});
            copy_key(rows, s.key_index, s.key, key, snapshot);
            pg::call([&] { rows.next_command(); });
            SnapshotRecord record = SnapshotRecord::of(snapshot);
            pg::call([&] { UnregisterSnapshot(snapshot); });
            catalog::StoredChunk stored;
            stored.number = s.next_chunk++;
            stored.last_key = s.key.to_text(key);
            stored.xmin = record.xmin;
            stored.xmax = record.xmax;
            stored.running.assign(record.running.begin(), record.running.end());
            stored.single_key = true;
            catalog::record_chunk(s.task.id, stored);
            s.chunks->add_single_key(key, std::move(record));
        };
        ApplyResult result = apply_changes(capture, s.applied_upto, rows, s.key, *s.chunks, reread);
        pg::call([&] { rows.close(); });
        round.applied = result.applied;
    }
    if (round.reached != s.applied_upto)
        catalog::set_applied_lsn(s.task.id, lsn_text(round.reached));
    return round;
}

void finish_round(RewriteSession& s, const RoundResult& round) {
    decode::clear_capture();
    s.captured_noted = 0;
    if (round.reached > s.applied_upto)
        s.applied_upto = round.reached;
    // Confirming saves the slot (an fsync): once a second is enough to let
    // WAL be recycled. Until then a restart re-reads a little more, and
    // skips what applied_lsn says is applied.
    const double now = now_ms();
    if (s.applied_upto > s.confirmed_upto && now - s.confirmed_at_ms >= kConfirmEveryMs) {
        decode::confirm(s.applied_upto);
        s.confirmed_upto = s.applied_upto;
        s.confirmed_at_ms = now;
    }
}

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
    decode::release_stream();
    current.reset();
    pg::in_worker_transaction([&] {
        remove_migration_artifacts(task.id, task.table_oid);
        catalog::forget_chunks(task.id);
    });
    return true;
}

} // namespace heliosmig::engine
