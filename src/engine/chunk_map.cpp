// Chunk snapshots and key ranges (see include/heliosmig/engine/chunk_map.hpp).
#include "heliosmig/engine/chunk_map.hpp"
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "access/nbtree.h"
#include "access/transam.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

#include <algorithm>

namespace heliosmig::engine {

SnapshotRecord SnapshotRecord::of(Snapshot snapshot) {
    SnapshotRecord record;
    record.xmin = snapshot->xmin;
    record.xmax = snapshot->xmax;
    record.running.insert(snapshot->xip, snapshot->xip + snapshot->xcnt);
    return record;
}

// A snapshot of a primary lists running top-level xids in xip; committed
// xids below xmin are visible, those at or above xmax are not. Valid while
// the xids are within 2^31 of each other, which a running migration's are.
bool SnapshotRecord::sees(TransactionId xid) const {
    if (TransactionIdPrecedes(xid, xmin))
        return true;
    if (!TransactionIdPrecedes(xid, xmax))
        return false;
    return !running.contains(xid);
}

void CopyKey::load(Relation index, MemoryContext context) {
    context_ = context;
    columns_ = index->rd_index->indnkeyatts;
    for (int i = 0; i < columns_; i++) {
        attnums_[i] = index->rd_index->indkey.values[i];
        if (attnums_[i] == 0)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("the key index \"%s\" has an expression column",
                                   RelationGetRelationName(index))));
        types_[i] = index->rd_opcintype[i];
        collations_[i] = index->rd_indcollation[i];
        opfamilies_[i] = index->rd_opfamily[i];
        get_typlenbyval(TupleDescAttr(RelationGetDescr(index), i)->atttypid, &lengths_[i],
                        &by_value_[i]);
        fmgr_info_cxt(index_getprocid(index, i + 1, BTORDER_PROC), &compare_[i], context);
    }
}

int CopyKey::compare(const Datum* a, const Datum* b) const {
    for (int i = 0; i < columns_; i++) {
        const int32 result = DatumGetInt32(
            FunctionCall2Coll(const_cast<FmgrInfo*>(&compare_[i]), collations_[i], a[i], b[i]));
        if (result != 0)
            return result < 0 ? -1 : 1;
    }
    return 0;
}

Datum* CopyKey::copy(const Datum* values) const {
    MemoryContext old = MemoryContextSwitchTo(context_);
    Datum* out = static_cast<Datum*>(palloc(columns_ * sizeof(Datum)));
    for (int i = 0; i < columns_; i++)
        out[i] = datumCopy(values[i], by_value_[i], lengths_[i]);
    MemoryContextSwitchTo(old);
    return out;
}

std::vector<std::string> CopyKey::to_text(const Datum* values) const {
    std::vector<std::string> text;
    for (int i = 0; i < columns_; i++) {
        const char* out = pg::call([&] {
            Oid output;
            bool varlena;
            getTypeOutputInfo(types_[i], &output, &varlena);
            return static_cast<const char*>(OidOutputFunctionCall(output, values[i]));
        });
        text.emplace_back(out);
    }
    return text;
}

Datum* CopyKey::from_text(const std::vector<std::string>& text) const {
    Datum* values = pg::call([&] {
        MemoryContext old = MemoryContextSwitchTo(context_);
        Datum* out = static_cast<Datum*>(palloc(columns_ * sizeof(Datum)));
        MemoryContextSwitchTo(old);
        return out;
    });
    for (int i = 0; i < columns_; i++) {
        const char* value = text[i].c_str();
        values[i] = pg::call([&] {
            Oid input;
            Oid ioparam;
            getTypeInputInfo(types_[i], &input, &ioparam);
            MemoryContext old = MemoryContextSwitchTo(context_);
            Datum d = OidInputFunctionCall(input, const_cast<char*>(value), ioparam, -1);
            MemoryContextSwitchTo(old);
            return d;
        });
    }
    return values;
}

void ChunkMap::add_range(Datum* last_key, SnapshotRecord snapshot) {
    ranges_.push_back({last_key, std::move(snapshot)});
    if (last_key == nullptr)
        complete_ = true;
}

void ChunkMap::add_single_key(Datum* key, SnapshotRecord snapshot) {
    single_keys_.push_back({key, std::move(snapshot)});
}

const SnapshotRecord* ChunkMap::judge(const Datum* key) const {
    // A key re-read on its own is judged by that read's snapshot from then on;
    // the latest read wins.
    for (auto it = single_keys_.rbegin(); it != single_keys_.rend(); ++it)
        if (key_.compare(key, it->last_key) == 0)
            return &it->snapshot;
    // The first range whose last key is >= key holds it; the final, open
    // range holds everything above the keys before it.
    const auto bounded_end = complete_ ? ranges_.end() - 1 : ranges_.end();
    auto it =
        std::lower_bound(ranges_.begin(), bounded_end, key, [&](const Range& r, const Datum* k) {
            return key_.compare(r.last_key, k) < 0;
        });
    if (it != bounded_end)
        return &it->snapshot;
    return complete_ ? &ranges_.back().snapshot : nullptr;
}

} // namespace heliosmig::engine
