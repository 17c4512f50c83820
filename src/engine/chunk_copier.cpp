// The chunked copy (see include/heliosmig/engine/chunk_copier.hpp).
#include "heliosmig/engine/chunk_copier.hpp"
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "access/genam.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/tableam.h"
#include "access/itup.h"
#include "miscadmin.h"
#include "nodes/tidbitmap.h"
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

Snapshot snapshot_seeing(const XidSet& must_see) {
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

// A chunk is read in two passes, both under the chunk's snapshot and with
// ACCESS SHARE on the table and its key index (as any SELECT: writers are
// never blocked):
//  1. the key index alone, from the key after `after`, collecting heap TIDs
//     into a bitmap until chunk_size entries are seen and then every further
//     entry with the same key as the last (a key's live version may follow
//     its dead ones): the chunk's range is (after, last key];
//  2. the heap, page by page in physical order through the bitmap (as a
//     bitmap heap scan does), keeping the visible rows.
// Reading the heap in index order instead costs a buffer lookup per row:
// several times slower on a large table.
CopiedChunk copy_chunk(GhostRows& rows, Oid key_index, const CopyKey& key, const Datum* after,
                       int chunk_size, Snapshot snapshot) {
    CopiedChunk chunk;
    chunk.snapshot = SnapshotRecord::of(snapshot);
    struct Frame {
        long count;
        Datum* last;
        bool exhausted;
    } frame{0, nullptr, false};
    pg::call([&] {
        Relation table = rows.table();
        Relation index = index_open(key_index, AccessShareLock);
        ScanKeyData keys[INDEX_MAX_KEYS];
        ScanKeyData members[INDEX_MAX_KEYS];
        const int nkeys = after == nullptr
                              ? 0
                              : build_scan_keys(key, after, BTGreaterStrategyNumber, keys, members);

        TIDBitmap* bitmap = tbm_create(work_mem * 1024L, nullptr);
        IndexScanDesc iscan = index_beginscan(table, index, snapshot, nkeys, 0);
        iscan->xs_want_itup = true;
        index_rescan(iscan, keys, nkeys, nullptr, 0);
        long entries = 0;
        Datum current[INDEX_MAX_KEYS];
        for (;;) {
            ItemPointer tid = index_getnext_tid(iscan, ForwardScanDirection);
            if (tid == nullptr) {
                frame.exhausted = true;
                break;
            }
            for (int i = 0; i < key.columns(); i++) {
                bool isnull;
                current[i] = index_getattr(iscan->xs_itup, i + 1, iscan->xs_itupdesc, &isnull);
            }
            if (entries >= chunk_size && key.compare(current, frame.last) != 0)
                break;
            tbm_add_tuples(bitmap, tid, 1, false);
            if (++entries == chunk_size)
                frame.last = key.copy(current);
        }
        index_endscan(iscan);
        index_close(index, NoLock);

        TableScanDesc hscan = table_beginscan_bm(table, snapshot, 0, nullptr);
        TupleTableSlot* slot = table_slot_create(table, nullptr);
        TBMIterator* iterator = tbm_begin_iterate(bitmap);
        Datum row_key[INDEX_MAX_KEYS];
        while (TBMIterateResult* page = tbm_iterate(iterator)) {
            if (!table_scan_bitmap_next_block(hscan, page))
                continue;
            while (table_scan_bitmap_next_tuple(hscan, page, slot)) {
                // Required, not insurance: a bitmap short of memory turns
                // pages lossy, and a lossy page yields every visible row on
                // it, keys outside this chunk included.
                rows.key_of(slot, row_key);
                const bool in_range = (after == nullptr || key.compare(row_key, after) > 0) &&
                                      (frame.exhausted || key.compare(row_key, frame.last) <= 0);
                if (in_range) {
                    rows.insert_copied(rows.transform(slot, nullptr, nullptr));
                    frame.count++;
                }
                rows.next_row();
            }
        }
        rows.flush();
        tbm_end_iterate(iterator);
        ExecDropSingleTupleTableSlot(slot);
        table_endscan(hscan);
        tbm_free(bitmap);
    });
    chunk.rows = frame.count;
    // The index had nothing above the last entry read: this chunk is the
    // last, open above.
    chunk.last_key = frame.exhausted ? nullptr : frame.last;
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
