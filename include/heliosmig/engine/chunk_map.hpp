// Which snapshot judges a captured change (DESIGN.md section 3, step 4).
//
// The copy reads the table in key order, one chunk per short transaction,
// each under its own snapshot. A captured change to key k is applied to the
// ghost if and only if its (top-level) transaction is NOT visible in the
// snapshot of the chunk whose key range holds k; a key in no copied range is
// left for the chunk that will read it. Visibility, not WAL order, decides:
// a transaction's commit record reaches WAL before it leaves the proc array.
#pragma once

#include "heliosmig/pg/postgres.hpp"

extern "C" {
#include "access/attnum.h"
#include "access/transam.h"
#include "fmgr.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"
}

#include <boost/container/flat_set.hpp>

#include <optional>
#include <string>
#include <vector>

namespace heliosmig::engine {

// A set of xids, sorted (binary search; the sets are small).
using XidSet = boost::container::flat_set<TransactionId>;

// The xids a snapshot saw as running, copied out of the transaction that took
// it, so the visibility test can run later (and after a restart). Snapshots of
// a primary list top-level xids only; captured transactions are top-level.
struct SnapshotRecord {
    TransactionId xmin = InvalidTransactionId;
    TransactionId xmax = InvalidTransactionId;
    XidSet running;

    static SnapshotRecord of(Snapshot snapshot);
    // Whether the committed transaction xid is visible in the snapshot.
    bool sees(TransactionId xid) const;
};

// The table's copy key: its primary key (or replica identity index) columns,
// compared with the index's own btree support functions and collations.
// Lives for the worker's lifetime, in its own memory context.
class CopyKey {
public:
    // Raw PostgreSQL: call inside pg::call. index is the key index of table.
    void load(Relation index, MemoryContext context);

    int columns() const { return columns_; }
    AttrNumber attnum(int i) const { return attnums_[i]; } // in the table
    Oid type(int i) const { return types_[i]; }
    Oid collation(int i) const { return collations_[i]; }
    Oid opfamily(int i) const { return opfamilies_[i]; }

    // Raw PostgreSQL. -1, 0, 1 like the btree ORDER support function.
    int compare(const Datum* a, const Datum* b) const;
    // Raw PostgreSQL: a copy of key values in the key's memory context.
    Datum* copy(const Datum* values) const;

    // The key in text form (the catalog's last_key) and back.
    std::vector<std::string> to_text(const Datum* values) const;
    Datum* from_text(const std::vector<std::string>& text) const;

private:
    int columns_ = 0;
    AttrNumber attnums_[INDEX_MAX_KEYS] = {};
    Oid types_[INDEX_MAX_KEYS] = {};
    Oid collations_[INDEX_MAX_KEYS] = {};
    Oid opfamilies_[INDEX_MAX_KEYS] = {};
    int16 lengths_[INDEX_MAX_KEYS] = {};
    bool by_value_[INDEX_MAX_KEYS] = {};
    FmgrInfo compare_[INDEX_MAX_KEYS] = {};
    MemoryContext context_ = nullptr;
};

// The copied key ranges, in key order, and single keys re-read on their own.
class ChunkMap {
public:
    explicit ChunkMap(const CopyKey& key) : key_(key) {}

    // A range from the previous one's last key (exclusive) up to last_key
    // (inclusive); last_key null: open above, the copy is complete.
    void add_range(Datum* last_key, SnapshotRecord snapshot);
    void add_single_key(Datum* key, SnapshotRecord snapshot);

    // Raw PostgreSQL (key comparisons). The snapshot that judges changes to
    // key, or null if no copied range holds it yet.
    const SnapshotRecord* judge(const Datum* key) const;

    bool complete() const { return complete_; }
    int ranges() const { return static_cast<int>(ranges_.size()); }
    int single_keys() const { return static_cast<int>(single_keys_.size()); }
    // The last key copied so far (null before the first chunk).
    const Datum* last_key() const {
        return complete_ || ranges_.empty() ? nullptr : ranges_.back().last_key;
    }

private:
    struct Range {
        Datum* last_key;
        SnapshotRecord snapshot;
    };
    const CopyKey& key_;
    std::vector<Range> ranges_;
    std::vector<Range> single_keys_;
    bool complete_ = false;
};

} // namespace heliosmig::engine
