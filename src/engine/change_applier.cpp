// Applying captured changes (see include/heliosmig/engine/change_applier.hpp).
#include "heliosmig/engine/change_applier.hpp"
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "access/htup_details.h"
#include "lib/stringinfo.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace heliosmig::engine {

namespace {

using decode::CapturedChange;
using decode::CapturedTransaction;
using decode::ChangeKind;

void key_of_tuple(Relation table, const CopyKey& key, HeapTuple tuple, Datum* out) {
    for (int i = 0; i < key.columns(); i++) {
        bool isnull;
        out[i] = heap_getattr(tuple, key.attnum(i), RelationGetDescr(table), &isnull);
        if (isnull)
            elog(ERROR, "captured row of \"%s\" has no key", RelationGetRelationName(table));
    }
}

const char* key_text(const CopyKey& key, const Datum* values) {
    StringInfoData text;
    initStringInfo(&text);
    for (int i = 0; i < key.columns(); i++) {
        Oid output;
        bool varlena;
        getTypeOutputInfo(key.type(i), &output, &varlena);
        appendStringInfo(&text, "%s%s", i > 0 ? ", " : "",
                         OidOutputFunctionCall(output, values[i]));
    }
    return text.data;
}

[[noreturn]] void mismatch(const CopyKey& key, const Datum* values, const char* what,
                           const CapturedTransaction* txn) {
    ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                    errmsg("captured change does not match the ghost table: %s, key (%s)", what,
                           key_text(key, values)),
                    errdetail("Transaction %u, commit at %X/%X. The copy and the captured changes "
                              "disagree; nothing was cut over.",
                              txn->xid, static_cast<uint32>(txn->commit_lsn >> 32),
                              static_cast<uint32>(txn->commit_lsn))));
}

bool applies(const ChunkMap& chunks, const Datum* key, TransactionId xid) {
    const SnapshotRecord* snapshot = chunks.judge(key);
    return snapshot != nullptr && !snapshot->sees(xid);
}

enum class Outcome { Applied, Skipped, Reread };

// One change; raw PostgreSQL. For Reread, *reread_key gets the key to re-read.
Outcome apply_one(const CapturedTransaction* txn, const CapturedChange* change, GhostRows& rows,
                  const CopyKey& key, const ChunkMap& chunks, Datum** reread_key) {
    Relation table = rows.table();
    TupleTableSlot* slot = rows.table_slot();
    Datum new_key[INDEX_MAX_KEYS];
    Datum old_key[INDEX_MAX_KEYS];
    switch (change->kind) {
    case ChangeKind::Truncate:
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("table \"%s\" was truncated during the migration",
                               RelationGetRelationName(table)),
                        errhint("Start the migration again.")));
        return Outcome::Skipped; // not reached
    case ChangeKind::Insert: {
        key_of_tuple(table, key, change->new_tuple, new_key);
        if (!applies(chunks, new_key, txn->xid))
            return Outcome::Skipped;
        ExecStoreHeapTuple(change->new_tuple, slot, false);
        rows.insert(rows.transform(slot, nullptr, nullptr));
        return Outcome::Applied;
    }
    case ChangeKind::Delete: {
        if (change->old_tuple == nullptr)
            elog(ERROR, "captured DELETE on \"%s\" has no key", RelationGetRelationName(table));
        key_of_tuple(table, key, change->old_tuple, old_key);
        if (!applies(chunks, old_key, txn->xid))
            return Outcome::Skipped;
        ExecStoreHeapTuple(change->old_tuple, slot, false);
        TupleTableSlot* existing = rows.find(slot);
        if (existing == nullptr)
            mismatch(key, old_key, "DELETE found no row", txn);
        rows.remove(existing);
        return Outcome::Applied;
    }
    case ChangeKind::Update:
        break;
    }

    key_of_tuple(table, key, change->new_tuple, new_key);
    if (change->old_tuple != nullptr)
        key_of_tuple(table, key, change->old_tuple, old_key);
    else
        memcpy(old_key, new_key, sizeof(Datum) * key.columns());
    if (key.compare(old_key, new_key) == 0) {
        if (!applies(chunks, new_key, txn->xid))
            return Outcome::Skipped;
        ExecStoreHeapTuple(change->new_tuple, slot, false);
        TupleTableSlot* existing = rows.find(slot);
        if (existing == nullptr)
            mismatch(key, new_key, "UPDATE found no row", txn);
        rows.update(existing, rows.transform(slot, change->unchanged, existing));
        return Outcome::Applied;
    }

    // A key change: a delete of the old key and an insert of the new one,
    // each judged by its own key's range.
    TupleTableSlot* existing = nullptr;
    const bool delete_old = applies(chunks, old_key, txn->xid);
    const bool insert_new = applies(chunks, new_key, txn->xid);
    if (!delete_old && !insert_new)
        return Outcome::Skipped;
    if (delete_old) {
        ExecStoreHeapTuple(change->old_tuple, slot, false);
        existing = rows.find(slot);
        if (existing == nullptr)
            mismatch(key, old_key, "UPDATE of the key found no row", txn);
    }
    Outcome outcome = Outcome::Applied;
    if (insert_new) {
        if (existing == nullptr && change->unchanged != nullptr) {
            *reread_key = key.copy(new_key);
            outcome = Outcome::Reread;
        } else {
            ExecStoreHeapTuple(change->new_tuple, slot, false);
            rows.insert(rows.transform(slot, change->unchanged, existing));
        }
    }
    if (existing != nullptr)
        rows.remove(existing);
    return outcome;
}

} // namespace

ApplyResult apply_changes(const decode::Capture& capture, XLogRecPtr from, GhostRows& rows,
                          const CopyKey& key, const ChunkMap& chunks, const RereadKey& reread) {
    ApplyResult result;
    ListCell* tcell;
    foreach (tcell, capture.transactions) {
        const auto* txn = static_cast<const CapturedTransaction*>(lfirst(tcell));
        if (txn->commit_lsn < from)
            continue;
        ListCell* ccell;
        foreach (ccell, txn->changes) {
            const auto* change = static_cast<const CapturedChange*>(lfirst(ccell));
            Datum* reread_key = nullptr;
            const Outcome outcome = pg::call([&] {
                Outcome o = apply_one(txn, change, rows, key, chunks, &reread_key);
                rows.next_row();
                if (o != Outcome::Skipped)
                    rows.next_command();
                return o;
            });
            if (outcome == Outcome::Skipped)
                result.skipped++;
            else
                result.applied++;
            if (outcome == Outcome::Reread)
                reread(reread_key, txn->xid);
        }
    }
    return result;
}

} // namespace heliosmig::engine
