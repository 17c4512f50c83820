// A rewrite migration's session (see include/heliosmig/engine/rewrite_session.hpp).
#include "heliosmig/engine/rewrite_session.hpp"
#include "heliosmig/catalog/rewrite_store.hpp"
#include "heliosmig/decode/change_stream.hpp"
#include "heliosmig/engine/chunk_copier.hpp"
#include "heliosmig/engine/cleanup.hpp"
#include "heliosmig/engine/ghost_rows.hpp"
#include "heliosmig/engine/ghost_table.hpp"
#include "heliosmig/engine/lock_retry.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/plan/statement.hpp"
#include "heliosmig/pg/spi.hpp"
#include "heliosmig/pg/transaction.hpp"

extern "C" {
#include "access/relation.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "parser/parser.h"
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

namespace heliosmig::engine {

namespace {

std::unique_ptr<RewriteSession> current;

constexpr double kConfirmEveryMs = 1000;
constexpr long kApplyBatchChanges = 100000; // captured changes applied per transaction
constexpr int kCatchUpRounds = 10;
constexpr long kFewChanges = 100;

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

// A worker that resumes a copy (after a restart, or its predecessor's
// error) has lost the list of captured transactions the next chunk must see:
// one its predecessor judged "not copied yet" and recorded as applied may
// have committed without yet leaving the proc array. Waiting for every
// transaction running now closes that gap, as slot creation does.
void wait_for_transactions_running_at_resume(RewriteSession& s) {
    // Prepared transactions are not committed: none of them can be the one
    // to wait for, and they may stay prepared for a long time.
    XidSet prepared;
    XidSet running = pg::in_worker_transaction([&] {
        pg::Spi spi;
        for (const pg::Row& row :
             spi.query("SELECT transaction::text FROM pg_catalog.pg_prepared_xacts").rows)
            prepared.insert(static_cast<TransactionId>(std::stoul(*row[0])));
        return SnapshotRecord::of(pg::call([] { return GetLatestSnapshot(); })).running;
    });
    for (TransactionId xid : prepared)
        running.erase(xid);
    if (running.empty())
        return;
    pg::in_worker_transaction([&] {
        catalog::log_event(s.task.id, catalog::LogLevel::Info, "resume_wait",
                           fmt::format("waiting for the {} transaction(s) running at resume "
                                       "before copying on",
                                       running.size()));
    });
    pg::in_worker_transaction([&] {
        for (TransactionId xid : running)
            pg::call([&] { XactLockTableWait(xid, nullptr, nullptr, XLTW_None); });
    });
}

} // namespace

std::string lsn_text(XLogRecPtr lsn) {
    return fmt::format("{:X}/{:X}", static_cast<uint32_t>(lsn >> 32), static_cast<uint32_t>(lsn));
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
            snapshot.running.insert(stored.running.begin(), stored.running.end());
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

void close_session() {
    current.reset();
}

// A restarted worker (or one that prepared in an earlier step) reattaches to
// the slot, which replays every transaction not yet confirmed.
void open_stream(RewriteSession& s) {
    if (decode::active_capture != nullptr)
        return;
    decode::use_own_origin(s.slot, s.task.table_oid);
    pg::in_worker_transaction([&] { decode::open_slot(s.slot); });
}

void note_captured(RewriteSession& s) {
    const decode::Capture& capture = decode::capture();
    for (int i = s.captured_noted; i < list_length(capture.transactions); i++)
        s.must_see.insert(
            static_cast<decode::CapturedTransaction*>(list_nth(capture.transactions, i))->xid);
    s.captured_noted = list_length(capture.transactions);
}

AlterTableStmt* parse_alter(const std::string& sql) {
    const char* text = sql.c_str();
    AlterTableStmt* alter = pg::call([&] {
        List* parsed = raw_parser(text, RAW_PARSE_DEFAULT);
        if (list_length(parsed) != 1)
            elog(ERROR, "migration statement is not a single statement");
        return castNode(AlterTableStmt, linitial_node(RawStmt, parsed)->stmt);
    });
    // The statement as recorded may still carry its migration options
    // (SET (chunk_size = ...)): they are heliosmig's, not PostgreSQL's.
    plan::OptionList options;
    plan::strip_alter_table_options(alter, options);
    return alter;
}

static RoundResult apply_round_upto(RewriteSession& s, XLogRecPtr upto) {
    RoundResult round;
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

RoundResult apply_round(RewriteSession& s) {
    // Flushed first: decoding reads only flushed WAL, and a record that
    // crossed the flushed end would make it wait for the WAL writer.
    return apply_round_upto(s, decode::wal_end(true));
}

RoundResult apply_to_end(RewriteSession& s) {
    const XLogRecPtr upto = decode::wal_end(true);
    RoundResult total;
    for (;;) {
        RoundResult round = apply_round_upto(s, upto);
        total.changes += round.changes;
        total.applied += round.applied;
        total.reached = round.reached;
        if (round.reached >= upto)
            return total;
        // Applied in this transaction: the capture may go, the slot is told
        // after commit (finish_round).
        decode::clear_capture();
        s.captured_noted = 0;
    }
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

// Rounds in their own transactions until one brings few changes (at most
// kCatchUpRounds): few enough to apply in milliseconds under a lock.
bool catch_up(RewriteSession& s) {
    for (int i = 0; i < kCatchUpRounds; i++) {
        RoundResult round = pg::in_worker_transaction([&] { return apply_round(s); });
        finish_round(s, round);
        if (round.changes < kFewChanges)
            return true;
    }
    return false;
}

} // namespace heliosmig::engine
