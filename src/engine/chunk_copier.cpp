// The chunked copy (see include/heliosmig/engine/chunk_copier.hpp).
#include "heliosmig/engine/chunk_copier.hpp"
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "access/genam.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/tableam.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
}

namespace heliosmig::engine {

namespace {

// Scan keys on the key index: key > after (a row comparison for a composite
// key, which btree runs as one range), or key = value.
int build_scan_keys(const CopyKey& key, const Datum* values, StrategyNumber strategy,
                    ScanKeyData* keys, ScanKeyData* members) {
    const int n = key.columns();
    if (strategy == BTEqualStrategyNumber || n == 1) {
        for (int i = 0; i < n; i++) {
            Oid op = get_opfamily_member(key.opfamily(i), key.type(i), key.type(i), strategy);
            if (!OidIsValid(op))
                elog(ERROR, "missing operator %d for key column %d", strategy, i + 1);
            ScanKeyEntryInitialize(&keys[i], 0, i + 1, strategy, key.type(i), key.collation(i),
                                   get_opcode(op), values[i]);
        }
        return n;
    }
    for (int i = 0; i < n; i++) {
        Oid proc = get_opfamily_proc(key.opfamily(i), key.type(i), key.type(i), BTORDER_PROC);
        ScanKeyEntryInitialize(&members[i], SK_ROW_MEMBER | (i == n - 1 ? SK_ROW_END : 0), i + 1,
                               strategy, key.type(i), key.collation(i), proc, values[i]);
    }
    ScanKeyEntryInitialize(&keys[0], SK_ROW_HEADER, 1, strategy, InvalidOid, InvalidOid, InvalidOid,
                           PointerGetDatum(members));
    return 1;
}

} // namespace

Snapshot snapshot_seeing(const std::vector<TransactionId>& must_see) {
    for (;;) {
        Snapshot snapshot = pg::call([] { return RegisterSnapshot(GetLatestSnapshot()); });
        SnapshotRecord record = SnapshotRecord::of(snapshot);
        TransactionId missing = InvalidTransactionId;
        for (TransactionId xid : must_see)
            if (!record.sees(xid)) {
                missing = xid;
                break;
            }
        if (!TransactionIdIsValid(missing))
            return snapshot;
        pg::call([&] {
            UnregisterSnapshot(snapshot);
            XactLockTableWait(missing, nullptr, nullptr, XLTW_None);
        });
    }
}

// Reads the table under the chunk's snapshot through its key index (ACCESS
// SHARE on both, as any SELECT): writers are never blocked.
CopiedChunk copy_chunk(GhostRows& rows, Oid key_index, const CopyKey& key, const Datum* after,
                       int chunk_size, Snapshot snapshot) {
    CopiedChunk chunk;
    chunk.snapshot = SnapshotRecord::of(snapshot);
    struct Frame {
        long count;
        Datum* last;
    } frame{0, nullptr};
    pg::call([&] {
        Relation index = index_open(key_index, AccessShareLock);
        ScanKeyData keys[INDEX_MAX_KEYS];
        ScanKeyData members[INDEX_MAX_KEYS];
        const int nkeys = after == nullptr
                              ? 0
                              : build_scan_keys(key, after, BTGreaterStrategyNumber, keys, members);
        IndexScanDesc scan = index_beginscan(rows.table(), index, snapshot, nkeys, 0);
        index_rescan(scan, keys, nkeys, nullptr, 0);
        TupleTableSlot* slot = table_slot_create(rows.table(), nullptr);
        Datum last[INDEX_MAX_KEYS];
        while (frame.count < chunk_size && index_getnext_slot(scan, ForwardScanDirection, slot)) {
            rows.insert_copied(rows.transform(slot, nullptr, nullptr));
            frame.count++;
            if (frame.count == chunk_size) {
                rows.key_of(slot, last);
                frame.last = key.copy(last);
            }
            rows.next_row();
        }
        rows.flush();
        ExecDropSingleTupleTableSlot(slot);
        index_endscan(scan);
        index_close(index, NoLock);
    });
    chunk.rows = frame.count;
    // A short chunk read everything above `after`: it is the last, open above.
    chunk.last_key = frame.count == chunk_size ? frame.last : nullptr;
    return chunk;
}

bool copy_key(GhostRows& rows, Oid key_index, const CopyKey& key, const Datum* value,
              Snapshot snapshot) {
    return pg::call([&] {
        Relation index = index_open(key_index, AccessShareLock);
        ScanKeyData keys[INDEX_MAX_KEYS];
        ScanKeyData members[INDEX_MAX_KEYS];
        const int nkeys = build_scan_keys(key, value, BTEqualStrategyNumber, keys, members);
        IndexScanDesc scan = index_beginscan(rows.table(), index, snapshot, nkeys, 0);
        index_rescan(scan, keys, nkeys, nullptr, 0);
        TupleTableSlot* slot = table_slot_create(rows.table(), nullptr);
        bool found = index_getnext_slot(scan, ForwardScanDirection, slot);
        if (found) {
            rows.insert(rows.transform(slot, nullptr, nullptr));
            rows.next_row();
        }
        ExecDropSingleTupleTableSlot(slot);
        index_endscan(scan);
        index_close(index, NoLock);
        return found;
    });
}

} // namespace heliosmig::engine
