// What the output plugin captures of one table's changes, for the worker to
// apply once decoding returns. Plain palloc'd structs in the capture's memory
// context: the plugin's callbacks run in PostgreSQL frames (no C++ objects),
// and the whole batch is freed by resetting that context after it is applied.
#pragma once

#include "heliosmig/pg/postgres.hpp"

extern "C" {
#include "access/htup.h"
#include "access/xlogdefs.h"
#include "nodes/bitmapset.h"
#include "nodes/pg_list.h"
}

namespace heliosmig::decode {

enum class ChangeKind { Insert, Update, Delete, Truncate };

struct CapturedChange {
    ChangeKind kind;
    // Old row: for an UPDATE only when its key changed (or with REPLICA
    // IDENTITY FULL); for a DELETE the key (non-key columns NULL). May be null.
    HeapTuple old_tuple;
    // New row of an INSERT/UPDATE, every value inline (TOAST chunks written by
    // the same transaction are copied in), except the columns in `unchanged`.
    HeapTuple new_tuple;
    // Columns an UPDATE left as they were and whose value is stored out of
    // line: the decoded row has no value for them (they read as NULL here).
    Bitmapset* unchanged; // attribute numbers
};

// One committed transaction's changes to the table, in order.
struct CapturedTransaction {
    TransactionId xid;     // top-level
    XLogRecPtr commit_lsn; // start of its commit record
    List* changes;         // of CapturedChange*
};

// Where the plugin puts what it captures. One per worker process.
struct Capture {
    Oid relid;                 // the table whose changes are kept
    uint16 own_origin;         // the worker's replication origin: its own writes are skipped
    MemoryContext context;     // captured rows live here until the batch is applied
    List* transactions;        // of CapturedTransaction*, in commit order
    CapturedTransaction* open; // the transaction being replayed, if it touched the table
    long change_count;         // changes in `transactions`
    long replayed;             // transactions replayed so far (of any table)
};

// The capture the plugin fills; null outside heliosmig's own migration
// workers, where the plugin refuses to start.
extern Capture* active_capture;

} // namespace heliosmig::decode
