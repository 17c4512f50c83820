// The worker's change stream (see include/heliosmig/decode/change_stream.hpp).
//
// Everything here calls PostgreSQL's replication internals directly, inside
// pg::call: the slot, the decoding context and the captured rows are
// PostgreSQL objects in long-lived memory contexts, never C++ ones.
#include "heliosmig/decode/change_stream.hpp"
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "replication/decode.h"
#include "replication/logical.h"
#include "replication/origin.h"
#include "replication/slot.h"
#include "replication/snapbuild.h"
#include "storage/lmgr.h"
#include "storage/spin.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
}

namespace heliosmig::decode {

namespace {

constexpr const char* kPluginName = "heliosmig";

// The decoding context and its reorder buffer live under this context, for
// the worker's lifetime; captured rows under a child reset after each batch.
MemoryContext stream_context = nullptr;
LogicalDecodingContext* decoding = nullptr;
Capture the_capture{};

XLogReaderRoutine wal_reader() {
    XLogReaderRoutine routine{};
    routine.page_read = read_local_xlog_page;
    routine.segment_open = wal_segment_open;
    routine.segment_close = wal_segment_close;
    return routine;
}

void ensure_capture(Oid relid) {
    if (stream_context == nullptr) {
        stream_context = AllocSetContextCreate(TopMemoryContext, "heliosmig change stream",
                                               ALLOCSET_DEFAULT_SIZES);
        the_capture.context = AllocSetContextCreate(stream_context, "heliosmig captured changes",
                                                    ALLOCSET_DEFAULT_SIZES);
    }
    the_capture.relid = relid;
    active_capture = &the_capture;
}

// Raw PostgreSQL. Waits for the transactions `committed` sees as committed
// that the proc array still lists as running.
void wait_for_committed_but_running(Snapshot committed) {
    Snapshot latest = GetLatestSnapshot();
    const uint32 count = latest->xcnt;
    TransactionId* running =
        static_cast<TransactionId*>(palloc((count + 1) * sizeof(TransactionId)));
    memcpy(running, latest->xip, count * sizeof(TransactionId));
    for (uint32 i = 0; i < count; i++)
        if (!XidInMVCCSnapshot(running[i], committed))
            XactLockTableWait(running[i], nullptr, nullptr, XLTW_None);
    pfree(running);
}

} // namespace

// The origin's catalog row is created in its own committed transaction, so a
// later session setup (shared memory only) can always find it.
void use_own_origin(const std::string& name, Oid relid) {
    pg::call([&] {
        ensure_capture(relid);
        StartTransactionCommand();
        RepOriginId origin = replorigin_by_name(name.c_str(), true);
        if (origin == InvalidRepOriginId)
            origin = replorigin_create(name.c_str());
        CommitTransactionCommand();
        replorigin_session_setup(origin);
        replorigin_session_origin = origin;
        the_capture.own_origin = origin;
    });
}

// Slot creation, as PostgreSQL's walsender does it for CREATE_REPLICATION_SLOT
// ... SNAPSHOT 'use': in a REPEATABLE READ transaction that has no xid and
// has taken no snapshot yet. The slot is EPHEMERAL until the end, so an error
// (the output_plugin_libraries check, a cancel while waiting for running
// transactions) drops it instead of leaving a slot that pins WAL.
XLogRecPtr create_slot(const std::string& name) {
    return pg::call([&] {
        StartTransactionCommand();
        XactIsoLevel = XACT_REPEATABLE_READ;
        CheckLogicalDecodingRequirements();
        ReplicationSlotCreate(name.c_str(), true, RS_EPHEMERAL, false);
        XLogReaderRoutine routine = wal_reader();
        MemoryContext old = MemoryContextSwitchTo(stream_context);
        decoding = CreateInitDecodingContext(kPluginName, NIL, true, InvalidXLogRecPtr, &routine,
                                             nullptr, nullptr, nullptr);
        DecodingContextFindStartpoint(decoding);
        MemoryContextSwitchTo(old);
        // A transaction whose commit record precedes the consistent point is
        // never decoded, yet it may still be in the proc array (a synchronous
        // standby has not answered): a chunk snapshot taken now would not see
        // it either, and its rows would be lost. The initial snapshot says
        // which transactions decoding counts as committed; wait for each of
        // them that a fresh snapshot still lists as running. From then on
        // every new snapshot sees them all.
        InvalidateCatalogSnapshot();
        wait_for_committed_but_running(SnapBuildInitialSnapshot(decoding->snapshot_builder));
        const XLogRecPtr consistent = MyReplicationSlot->data.confirmed_flush;
        ReplicationSlotPersist();
        // The full snapshot pinned the data horizon (effective_xmin) for the
        // whole cluster; only the catalog horizon is needed from now on.
        SpinLockAcquire(&MyReplicationSlot->mutex);
        MyReplicationSlot->effective_xmin = InvalidTransactionId;
        SpinLockRelease(&MyReplicationSlot->mutex);
        ReplicationSlotsComputeRequiredXmin(false);
        CommitTransactionCommand();
        return consistent;
    });
}

void open_slot(const std::string& name) {
    pg::call([&] {
        ReplicationSlotAcquire(name.c_str(), true);
        if (XLogRecPtrIsInvalid(MyReplicationSlot->data.restart_lsn))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("replication slot \"%s\" of the migration was invalidated",
                                   name.c_str()),
                            errdetail("The WAL it needed was removed (max_slot_wal_keep_size)."),
                            errhint("Roll the migration back and start it again.")));
        XLogReaderRoutine routine = wal_reader();
        MemoryContext old = MemoryContextSwitchTo(stream_context);
        decoding = CreateDecodingContext(InvalidXLogRecPtr, NIL, false, &routine, nullptr, nullptr,
                                         nullptr);
        MemoryContextSwitchTo(old);
        XLogBeginRead(decoding->reader, MyReplicationSlot->data.restart_lsn);
    });
}

// The insert position is where the next record will start: on a fresh page
// that is past the page header, which is not written yet (and cannot be
// flushed) until that record is. WAL inserted so far ends before the header.
XLogRecPtr wal_end(bool flush) {
    return pg::call([&] {
        if (flush) {
            XLogRecPtr inserted = GetXLogInsertRecPtr();
            if (XLogSegmentOffset(inserted, wal_segment_size) == SizeOfXLogLongPHD)
                inserted -= SizeOfXLogLongPHD;
            else if (inserted % XLOG_BLCKSZ == SizeOfXLogShortPHD)
                inserted -= SizeOfXLogShortPHD;
            XLogFlush(inserted);
        }
        return GetFlushRecPtr(nullptr);
    });
}

// Replaying a decoded transaction opens and closes its own subtransaction and
// may leave CurrentResourceOwner and CurrentMemoryContext pointing elsewhere:
// both are restored after every record. Replay reads catalogs with historic
// snapshots, so the system caches are rebuilt after a batch that replayed
// anything. Not before: the only relation whose descriptor matters to the
// plugin is the table, whose schema is locked while it is migrated, and
// decoding itself applies the invalidations of the transactions it replays.
// (A batch that replays nothing, e.g. only the worker's own writes, which
// the origin filter drops, leaves the caches alone: rebuilding them every
// chunk would cost more than the copy.)
XLogRecPtr read_changes(XLogRecPtr upto, long max_changes) {
    return pg::call([&] {
        ResourceOwner owner = CurrentResourceOwner;
        MemoryContext context = CurrentMemoryContext;
        const long replayed = the_capture.replayed;
        while (decoding->reader->EndRecPtr < upto && the_capture.change_count < max_changes) {
            // The reader allocates its record and decode buffers on demand,
            // in the current context: they must outlive this transaction.
            char* message = nullptr;
            MemoryContextSwitchTo(stream_context);
            XLogRecord* record = XLogReadRecord(decoding->reader, &message);
            MemoryContextSwitchTo(context);
            if (message != nullptr)
                elog(ERROR, "could not read WAL for the migration: %s", message);
            if (record != nullptr)
                LogicalDecodingProcessRecord(decoding, decoding->reader);
            CurrentResourceOwner = owner;
            MemoryContextSwitchTo(context);
            CHECK_FOR_INTERRUPTS();
        }
        if (the_capture.replayed != replayed)
            InvalidateSystemCaches();
        return decoding->reader->EndRecPtr;
    });
}

uint64 decoding_lag(XLogRecPtr upto) {
    if (decoding == nullptr || decoding->reader->EndRecPtr >= upto)
        return 0;
    return upto - decoding->reader->EndRecPtr;
}

Capture& capture() {
    return the_capture;
}

void clear_capture() {
    pg::call([] { MemoryContextReset(the_capture.context); });
    the_capture.transactions = NIL;
    the_capture.open = nullptr;
    the_capture.change_count = 0;
}

void confirm(XLogRecPtr lsn) {
    pg::call([&] {
        // The worker commits asynchronously: what the slot is told is applied
        // must first be durable, or a crash could lose ghost rows whose
        // changes the slot would never deliver again.
        XLogFlush(XactLastCommitEnd);
        LogicalConfirmReceivedLocation(lsn);
        ReplicationSlotMarkDirty();
        ReplicationSlotSave();
    });
}

void release_stream(bool orderly) {
    // After an error inside replay the decoding context is not trustworthy:
    // it is dropped with its memory, never shut down through the plugin.
    // At an orderly end it is freed properly, which also closes its WAL
    // segment and removes the reorder buffer's spill files.
    if (orderly && decoding != nullptr)
        FreeDecodingContext(decoding);
    decoding = nullptr;
    active_capture = nullptr;
    if (stream_context != nullptr) {
        MemoryContextDelete(stream_context);
        stream_context = nullptr;
        the_capture = Capture{};
    }
    if (MyReplicationSlot != nullptr)
        ReplicationSlotRelease();
    if (replorigin_session_origin != InvalidRepOriginId) {
        replorigin_session_origin = InvalidRepOriginId;
        // Session teardown only touches shared memory; it cannot fail once
        // set up.
        replorigin_session_reset();
    }
}

void drop_slot_and_origin(const std::string& name) {
    pg::call([&] {
        if (SearchNamedReplicationSlot(name.c_str(), true) != nullptr)
            ReplicationSlotDrop(name.c_str(), true);
        replorigin_drop_by_name(name.c_str(), true, true);
    });
}

} // namespace heliosmig::decode
