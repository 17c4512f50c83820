// heliosmig's logical decoding output plugin: keeps the changes of one table
// (the migration's), with every value inline, for the worker that decodes in
// process. It serves only heliosmig's migration workers: anyone else who
// loads it (pg_logical_slot_get_changes on a heliosmig slot) is refused, so
// no one can consume a migration's changes behind its back.
//
// The callbacks are entered from PostgreSQL's reorder buffer: C frames, so
// they hold no C++ objects and report errors with ereport. They run inside
// the replay's own (sub)transaction, which is rolled back afterwards: they
// must not write to the database, only copy into the capture's memory.
#include "heliosmig/decode/captured_changes.hpp"

extern "C" {
#include "access/detoast.h"
#include "access/heaptoast.h"
#include "access/htup_details.h"
#include "replication/logical.h"
#include "replication/origin.h"
#include "replication/output_plugin.h"
#include "replication/reorderbuffer.h"
#include "utils/memutils.h"
#include "utils/rel.h"

PGDLLEXPORT void _PG_output_plugin_init(OutputPluginCallbacks* cb);
}

namespace heliosmig::decode {

Capture* active_capture = nullptr;

namespace {

void plugin_startup(LogicalDecodingContext*, OutputPluginOptions* options, bool) {
    if (active_capture == nullptr)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("the heliosmig output plugin serves only heliosmig's migration workers"),
                 errhint("A heliosmig replication slot belongs to a running migration: consuming "
                         "it elsewhere would lose the migration's changes.")));
    options->output_type = OUTPUT_PLUGIN_BINARY_OUTPUT;
    options->receive_rewrites = false;
}

void plugin_begin(LogicalDecodingContext*, ReorderBufferTXN*) {
    active_capture->replayed++;
}

// A copy of a decoded row whose values are all inline. Values whose TOAST
// chunks this transaction wrote arrive as indirect pointers into the reorder
// buffer's memory, freed after the callback: copy them. Values an UPDATE did
// not change arrive as pointers into the table's own TOAST relation: they mean
// "unchanged", are left out (NULL) and listed in *unchanged.
HeapTuple copy_inline(Relation relation, HeapTuple tuple, Bitmapset** unchanged) {
    TupleDesc desc = RelationGetDescr(relation);
    Datum* values = static_cast<Datum*>(palloc(desc->natts * sizeof(Datum)));
    bool* nulls = static_cast<bool*>(palloc(desc->natts * sizeof(bool)));
    heap_deform_tuple(tuple, desc, values, nulls);
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (att->attisdropped || att->attlen != -1 || nulls[i])
            continue;
        struct varlena* value = reinterpret_cast<struct varlena*>(DatumGetPointer(values[i]));
        if (VARATT_IS_EXTERNAL_ONDISK(value)) {
            nulls[i] = true;
            if (unchanged != nullptr)
                *unchanged = bms_add_member(*unchanged, att->attnum);
        } else if (VARATT_IS_EXTERNAL(value)) {
            values[i] = PointerGetDatum(detoast_external_attr(value));
        }
    }
    HeapTuple copy = heap_form_tuple(desc, values, nulls);
    pfree(values);
    pfree(nulls);
    return copy;
}

CapturedTransaction* open_transaction(Capture* capture, ReorderBufferTXN* txn) {
    if (capture->open == nullptr || capture->open->xid != txn->xid) {
        auto* captured = static_cast<CapturedTransaction*>(palloc0(sizeof(CapturedTransaction)));
        captured->xid = txn->xid;
        captured->commit_lsn = txn->final_lsn;
        capture->open = captured;
    }
    return capture->open;
}

void plugin_change(LogicalDecodingContext*, ReorderBufferTXN* txn, Relation relation,
                   ReorderBufferChange* change) {
    Capture* capture = active_capture;
    if (RelationGetRelid(relation) != capture->relid)
        return;
    MemoryContext old = MemoryContextSwitchTo(capture->context);
    CapturedTransaction* captured = open_transaction(capture, txn);
    auto* out = static_cast<CapturedChange*>(palloc0(sizeof(CapturedChange)));
    ReorderBufferTupleBuf* old_buf = change->data.tp.oldtuple;
    ReorderBufferTupleBuf* new_buf = change->data.tp.newtuple;
    switch (change->action) {
    case REORDER_BUFFER_CHANGE_INSERT:
        out->kind = ChangeKind::Insert;
        break;
    case REORDER_BUFFER_CHANGE_UPDATE:
        out->kind = ChangeKind::Update;
        break;
    case REORDER_BUFFER_CHANGE_DELETE:
        out->kind = ChangeKind::Delete;
        break;
    default:
        elog(ERROR, "unexpected change action %d", static_cast<int>(change->action));
    }
    if (old_buf != nullptr)
        out->old_tuple = copy_inline(relation, &old_buf->tuple, nullptr);
    if (new_buf != nullptr)
        out->new_tuple = copy_inline(relation, &new_buf->tuple, &out->unchanged);
    if (out->kind != ChangeKind::Delete && out->new_tuple == nullptr)
        elog(ERROR, "decoded change of relation %u has no new row", capture->relid);
    captured->changes = lappend(captured->changes, out);
    capture->change_count++;
    MemoryContextSwitchTo(old);
}

// A TRUNCATE cannot be replayed key by key: it is captured as such, and the
// worker fails the migration rather than guess.
void plugin_truncate(LogicalDecodingContext*, ReorderBufferTXN* txn, int nrelations,
                     Relation relations[], ReorderBufferChange*) {
    Capture* capture = active_capture;
    for (int i = 0; i < nrelations; i++) {
        if (RelationGetRelid(relations[i]) != capture->relid)
            continue;
        MemoryContext old = MemoryContextSwitchTo(capture->context);
        CapturedTransaction* captured = open_transaction(capture, txn);
        auto* out = static_cast<CapturedChange*>(palloc0(sizeof(CapturedChange)));
        out->kind = ChangeKind::Truncate;
        captured->changes = lappend(captured->changes, out);
        capture->change_count++;
        MemoryContextSwitchTo(old);
    }
}

void plugin_commit(LogicalDecodingContext*, ReorderBufferTXN* txn, XLogRecPtr) {
    Capture* capture = active_capture;
    if (capture->open == nullptr || capture->open->xid != txn->xid)
        return;
    MemoryContext old = MemoryContextSwitchTo(capture->context);
    capture->transactions = lappend(capture->transactions, capture->open);
    capture->open = nullptr;
    MemoryContextSwitchTo(old);
}

// The worker writes the ghost under its own replication origin: skipping those
// records here keeps them out of the reorder buffer altogether.
bool plugin_filter_by_origin(LogicalDecodingContext*, RepOriginId origin) {
    return origin != InvalidRepOriginId && origin == active_capture->own_origin;
}

} // namespace
} // namespace heliosmig::decode

void _PG_output_plugin_init(OutputPluginCallbacks* cb) {
    using namespace heliosmig::decode;
    // No streaming and no two-phase callbacks: transactions arrive whole, at
    // commit (prepared ones at COMMIT PREPARED).
    cb->startup_cb = plugin_startup;
    cb->begin_cb = plugin_begin;
    cb->change_cb = plugin_change;
    cb->truncate_cb = plugin_truncate;
    cb->commit_cb = plugin_commit;
    cb->filter_by_origin_cb = plugin_filter_by_origin;
}
