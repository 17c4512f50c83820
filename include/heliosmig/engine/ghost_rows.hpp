// Rows of the table turned into rows of the ghost, and written to it.
//
// The transform is PostgreSQL's own for the statement: per ghost column, the
// ALTER COLUMN TYPE's USING expression (or the column itself) coerced to the
// new type by assignment, as ALTER TABLE does; for an added column its
// default as the ghost has it; generated columns are computed by the
// executor. It is compiled once per transaction and used alike by the chunk
// copy and by the apply of captured changes.
//
// Everything here is raw PostgreSQL (call inside pg::call) and lives in the
// memory of the transaction that opened it.
#pragma once

#include "heliosmig/engine/chunk_map.hpp"

extern "C" {
#include "access/heapam.h"
#include "executor/executor.h"
#include "nodes/parsenodes.h"
}

namespace heliosmig::engine {

class GhostRows {
public:
    // Opens the table (ACCESS SHARE, or whatever the caller already holds)
    // and the ghost (ROW EXCLUSIVE) and compiles the transform of `alter`.
    // Errors for statements whose transform cannot be applied row by row
    // (see check_unchanged_values).
    void open(Oid table, Oid ghost, const CopyKey& key, AlterTableStmt* alter, const char* source);
    void close();

    Relation table() const { return table_; }
    Relation ghost() const { return ghost_; }
    TupleTableSlot* table_slot() const { return table_slot_; } // a heap-tuple slot of the table

    // The key of a table row.
    void key_of(TupleTableSlot* row, Datum* key) const;

    // The ghost row for a table row. Columns in `unchanged` (an UPDATE left
    // their out-of-line value as it was) and added columns (their value was
    // computed once, when the row was first copied) are taken from
    // `existing`, the ghost row being replaced. Returns a slot valid until the
    // next call.
    TupleTableSlot* transform(TupleTableSlot* row, const Bitmapset* unchanged,
                              TupleTableSlot* existing);

    // Finds the ghost row whose key is the (transformed) key of table row
    // `row`, locked; null if there is none.
    TupleTableSlot* find(TupleTableSlot* row);

    void insert(TupleTableSlot* ghost_row);
    // The copy's insert: rows are buffered and written a batch at a time
    // (table_multi_insert with a bulk-insert state, then their index
    // entries), as COPY FROM does. flush() writes what is buffered.
    void insert_copied(TupleTableSlot* ghost_row);
    void flush();
    void update(TupleTableSlot* existing, TupleTableSlot* ghost_row);
    void remove(TupleTableSlot* existing);

    // Frees per-row memory; call after each row.
    void next_row();
    // Makes the writes so far visible to the next find() (a captured change
    // may update a row an earlier one inserted): call after each applied
    // change, as logical replication's apply does.
    void next_command();

private:
    enum class Source { Dropped, Generated, Copy, Expression, Added };
    struct Column {
        Source source;
        ExprState* expression; // Expression and Added
        Bitmapset* reads;      // table columns the expression reads
    };
    void compile(AlterTableStmt* alter, const char* source);
    void check_unchanged_values() const;
    TupleTableSlot* key_search_row(TupleTableSlot* row);

    Relation table_ = nullptr;
    Relation ghost_ = nullptr;
    Oid ghost_key_index_ = InvalidOid;
    const CopyKey* key_ = nullptr;
    EState* estate_ = nullptr;
    ResultRelInfo* result_ = nullptr;
    EPQState epq_{};
    Column* columns_ = nullptr; // by ghost attnum - 1
    int ghost_columns_ = 0;
    TupleTableSlot* table_slot_ = nullptr;
    TupleTableSlot* scan_slot_ = nullptr;
    TupleTableSlot* ghost_slot_ = nullptr;
    TupleTableSlot* search_slot_ = nullptr;
    TupleTableSlot* found_slot_ = nullptr;
    static constexpr int kBatchRows = 100; // about two pages of narrow rows per multi-insert
    TupleTableSlot** batch_ = nullptr;     // kBatchRows slots of the ghost, made on first use
    int batched_ = 0;
    BulkInsertState bulk_ = nullptr;
};

} // namespace heliosmig::engine
