// Table rows into ghost rows (see include/heliosmig/engine/ghost_rows.hpp).
#include "heliosmig/engine/ghost_rows.hpp"

extern "C" {
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_relation.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace heliosmig::engine {

namespace {

// The USING expression of the statement's ALTER COLUMN ... TYPE for column
// `name`; null if the column's type is not changed or changes without USING.
Node* using_expression(AlterTableStmt* alter, const char* name) {
    ListCell* cell;
    foreach (cell, alter->cmds) {
        AlterTableCmd* cmd = lfirst_node(AlterTableCmd, cell);
        if (cmd->subtype == AT_AlterColumnType && strcmp(cmd->name, name) == 0)
            return castNode(ColumnDef, cmd->def)->raw_default;
    }
    return nullptr;
}

Bitmapset* columns_read(Node* expression) {
    Bitmapset* offset = nullptr;
    pull_varattnos(expression, 1, &offset);
    Bitmapset* attnums = nullptr;
    int member = -1;
    while ((member = bms_next_member(offset, member)) >= 0)
        attnums = bms_add_member(attnums, member + FirstLowInvalidHeapAttributeNumber);
    return attnums;
}

} // namespace

// The table is only read (ACCESS SHARE; the migration's callers may hold
// more); the ghost, which only this worker writes, is opened for writing as
// any INSERT would. Indexes are opened as the executor opens them.
void GhostRows::open(Oid table, Oid ghost, const CopyKey& key, AlterTableStmt* alter,
                     const char* source) {
    key_ = &key;
    table_ = table_open(table, AccessShareLock);
    ghost_ = table_open(ghost, RowExclusiveLock);
    // The ghost has no index while it is copied into, until captured
    // changes need to find its rows (see rewrite_runner.cpp).
    ghost_key_index_ = RelationGetPrimaryKeyIndex(ghost_);

    estate_ = CreateExecutorState();
    RangeTblEntry* rte = makeNode(RangeTblEntry);
    rte->rtekind = RTE_RELATION;
    rte->relid = ghost;
    rte->relkind = RELKIND_RELATION;
    rte->rellockmode = RowExclusiveLock;
    ExecInitRangeTable(estate_, list_make1(rte));
    result_ = makeNode(ResultRelInfo);
    InitResultRelInfo(result_, ghost_, 1, nullptr, 0);
    estate_->es_output_cid = GetCurrentCommandId(true);
    ExecOpenIndices(result_, false);
    EvalPlanQualInit(&epq_, estate_, nullptr, NIL, -1);

    table_slot_ = ExecInitExtraTupleSlot(estate_, RelationGetDescr(table_), &TTSOpsHeapTuple);
    scan_slot_ = ExecInitExtraTupleSlot(estate_, RelationGetDescr(table_), &TTSOpsVirtual);
    ghost_slot_ = ExecInitExtraTupleSlot(estate_, RelationGetDescr(ghost_), &TTSOpsVirtual);
    search_slot_ = ExecInitExtraTupleSlot(estate_, RelationGetDescr(ghost_), &TTSOpsVirtual);
    found_slot_ = table_slot_create(ghost_, &estate_->es_tupleTable);

    compile(alter, source);
    check_unchanged_values();
}

void GhostRows::compile(AlterTableStmt* alter, const char* source) {
    ParseState* pstate = make_parsestate(nullptr);
    pstate->p_sourcetext = source;
    ParseNamespaceItem* item =
        addRangeTableEntryForRelation(pstate, table_, AccessShareLock, nullptr, false, true);
    addNSItemToQuery(pstate, item, false, true, true);

    TupleDesc table_desc = RelationGetDescr(table_);
    TupleDesc ghost_desc = RelationGetDescr(ghost_);
    ghost_columns_ = ghost_desc->natts;
    columns_ = static_cast<Column*>(palloc0(ghost_columns_ * sizeof(Column)));
    for (int i = 0; i < ghost_columns_; i++) {
        Form_pg_attribute att = TupleDescAttr(ghost_desc, i);
        Column& column = columns_[i];
        if (att->attisdropped) {
            column.source = Source::Dropped;
            continue;
        }
        if (att->attgenerated) {
            column.source = Source::Generated;
            continue;
        }
        const AttrNumber attnum = i + 1;
        Node* expression;
        if (attnum <= table_desc->natts && !TupleDescAttr(table_desc, i)->attisdropped) {
            column.source = Source::Expression;
            Node* using_expr = using_expression(alter, NameStr(att->attname));
            if (using_expr != nullptr) {
                expression = transformExpr(pstate, static_cast<Node*>(copyObjectImpl(using_expr)),
                                           EXPR_KIND_ALTER_COL_TRANSFORM);
            } else {
                Form_pg_attribute old = TupleDescAttr(table_desc, i);
                expression = reinterpret_cast<Node*>(
                    makeVar(1, attnum, old->atttypid, old->atttypmod, old->attcollation, 0));
            }
        } else {
            // A column the statement adds: its default as the ghost has it
            // (the statement's, or its domain's), as ADD COLUMN computes it.
            column.source = Source::Added;
            expression = build_column_default(ghost_, attnum);
            if (expression == nullptr)
                expression = reinterpret_cast<Node*>(
                    makeNullConst(att->atttypid, att->atttypmod, att->attcollation));
        }
        Node* coerced =
            coerce_to_target_type(pstate, expression, exprType(expression), att->atttypid,
                                  att->atttypmod, COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST, -1);
        if (coerced == nullptr)
            ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                            errmsg("column \"%s\" cannot be cast automatically to type %s",
                                   NameStr(att->attname), format_type_be(att->atttypid)),
                            errhint("Specify a USING expression to perform the conversion.")));
        assign_expr_collations(pstate, coerced);
        if (column.source == Source::Expression && IsA(coerced, Var) &&
            castNode(Var, coerced)->varattno == attnum) {
            column.source = Source::Copy;
            continue;
        }
        column.reads = columns_read(coerced);
        column.expression =
            ExecInitExpr(expression_planner(reinterpret_cast<Expr*>(coerced)), nullptr);
    }
    free_parsestate(pstate);
}

// An UPDATE that leaves an out-of-line value unchanged does not log it: the
// decoded row lacks it. The ghost row being replaced supplies it when the
// ghost column is a plain copy, or when the ghost column is computed from
// that column alone (same input, same result). A ghost column computed from
// several columns, one of which may be out of line, cannot be recomputed from
// the decoded row: refused before any row is copied.
void GhostRows::check_unchanged_values() const {
    TupleDesc table_desc = RelationGetDescr(table_);
    for (int u = 0; u < table_desc->natts; u++) {
        Form_pg_attribute att = TupleDescAttr(table_desc, u);
        if (att->attisdropped || att->attlen != -1 || att->attstorage == TYPSTORAGE_PLAIN)
            continue;
        const AttrNumber attnum = u + 1;
        for (int j = 0; j < ghost_columns_; j++) {
            const Column& column = columns_[j];
            if (column.source != Source::Expression && column.source != Source::Added)
                continue;
            if (!bms_is_member(attnum, column.reads))
                continue;
            const bool alone = j == u && bms_num_members(column.reads) == 1;
            if (!alone)
                ereport(ERROR,
                        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                         errmsg("the new value of column \"%s\" is computed from column \"%s\", "
                                "which may be stored out of line: not supported online yet",
                                NameStr(TupleDescAttr(RelationGetDescr(ghost_), j)->attname),
                                NameStr(att->attname)),
                         errdetail("An UPDATE that leaves \"%s\" unchanged does not log its "
                                   "value, so the new value could not be recomputed.",
                                   NameStr(att->attname))));
        }
    }
}

void GhostRows::close() {
    flush();
    if (bulk_ != nullptr) {
        FreeBulkInsertState(bulk_);
        bulk_ = nullptr;
    }
    ExecCloseIndices(result_);
    EvalPlanQualEnd(&epq_);
    ExecResetTupleTable(estate_->es_tupleTable, false);
    FreeExecutorState(estate_);
    table_close(ghost_, NoLock);
    table_close(table_, NoLock);
    estate_ = nullptr;
}

void GhostRows::key_of(TupleTableSlot* row, Datum* key) const {
    for (int i = 0; i < key_->columns(); i++) {
        bool isnull;
        key[i] = slot_getattr(row, key_->attnum(i), &isnull);
        if (isnull)
            elog(ERROR, "captured row of \"%s\" has no key", RelationGetRelationName(table_));
    }
}

TupleTableSlot* GhostRows::transform(TupleTableSlot* row, const Bitmapset* unchanged,
                                     TupleTableSlot* existing) {
    if (unchanged != nullptr && existing == nullptr)
        elog(ERROR, "an unchanged out-of-line value needs the ghost row it replaces");
    const int natts = RelationGetDescr(table_)->natts;
    slot_getallattrs(row);
    ExecClearTuple(scan_slot_);
    memcpy(scan_slot_->tts_values, row->tts_values, natts * sizeof(Datum));
    memcpy(scan_slot_->tts_isnull, row->tts_isnull, natts * sizeof(bool));
    int member = -1;
    while ((member = bms_next_member(unchanged, member)) >= 0) {
        if (member <= ghost_columns_ && columns_[member - 1].source == Source::Copy)
            scan_slot_->tts_values[member - 1] =
                slot_getattr(existing, member, &scan_slot_->tts_isnull[member - 1]);
    }
    ExecStoreVirtualTuple(scan_slot_);

    ExprContext* econtext = GetPerTupleExprContext(estate_);
    econtext->ecxt_scantuple = scan_slot_;
    ExecClearTuple(ghost_slot_);
    Datum* values = ghost_slot_->tts_values;
    bool* nulls = ghost_slot_->tts_isnull;
    for (int i = 0; i < ghost_columns_; i++) {
        const Column& column = columns_[i];
        const AttrNumber attnum = i + 1;
        switch (column.source) {
        case Source::Dropped:
        case Source::Generated:
            values[i] = 0;
            nulls[i] = true;
            break;
        case Source::Copy:
            values[i] = scan_slot_->tts_values[i];
            nulls[i] = scan_slot_->tts_isnull[i];
            break;
        case Source::Added:
        case Source::Expression:
            if (existing != nullptr &&
                (column.source == Source::Added || bms_is_member(attnum, unchanged)))
                values[i] = slot_getattr(existing, attnum, &nulls[i]);
            else
                values[i] = ExecEvalExprSwitchContext(column.expression, econtext, &nulls[i]);
            break;
        }
    }
    return ExecStoreVirtualTuple(ghost_slot_);
}

TupleTableSlot* GhostRows::key_search_row(TupleTableSlot* row) {
    ExprContext* econtext = GetPerTupleExprContext(estate_);
    econtext->ecxt_scantuple = row;
    ExecClearTuple(search_slot_);
    for (int i = 0; i < ghost_columns_; i++) {
        search_slot_->tts_values[i] = 0;
        search_slot_->tts_isnull[i] = true;
    }
    for (int k = 0; k < key_->columns(); k++) {
        const int i = key_->attnum(k) - 1;
        const Column& column = columns_[i];
        if (column.source == Source::Copy)
            search_slot_->tts_values[i] = slot_getattr(row, i + 1, &search_slot_->tts_isnull[i]);
        else
            search_slot_->tts_values[i] = ExecEvalExprSwitchContext(column.expression, econtext,
                                                                    &search_slot_->tts_isnull[i]);
    }
    return ExecStoreVirtualTuple(search_slot_);
}

// The ghost's primary key has the table key's columns (checked when the
// ghost was prepared); the row found is locked, as logical replication's
// apply does.
TupleTableSlot* GhostRows::find(TupleTableSlot* row) {
    if (!OidIsValid(ghost_key_index_))
        elog(ERROR, "ghost table \"%s\" has no primary key yet", RelationGetRelationName(ghost_));
    TupleTableSlot* search = key_search_row(row);
    if (!RelationFindReplTupleByIndex(ghost_, ghost_key_index_, LockTupleExclusive, search,
                                      found_slot_))
        return nullptr;
    return found_slot_;
}

void GhostRows::insert(TupleTableSlot* ghost_row) {
    ExecSimpleRelationInsert(result_, estate_, ghost_row);
}

void GhostRows::insert_copied(TupleTableSlot* ghost_row) {
    if (batch_ == nullptr) {
        batch_ = static_cast<TupleTableSlot**>(palloc(kBatchRows * sizeof(TupleTableSlot*)));
        for (int i = 0; i < kBatchRows; i++)
            batch_[i] = table_slot_create(ghost_, &estate_->es_tupleTable);
        bulk_ = GetBulkInsertState();
    }
    TupleTableSlot* slot = batch_[batched_++];
    ExecCopySlot(slot, ghost_row);
    Relation rel = result_->ri_RelationDesc;
    if (rel->rd_att->constr != nullptr && rel->rd_att->constr->has_generated_stored)
        ExecComputeStoredGenerated(result_, estate_, slot, CMD_INSERT);
    if (rel->rd_att->constr != nullptr)
        ExecConstraints(result_, slot, estate_);
    if (batched_ == kBatchRows)
        flush();
}

void GhostRows::flush() {
    if (batched_ == 0)
        return;
    table_multi_insert(ghost_, batch_, batched_, estate_->es_output_cid, 0, bulk_);
    for (int i = 0; i < batched_; i++) {
        if (result_->ri_NumIndices > 0) {
            List* recheck =
                ExecInsertIndexTuples(result_, batch_[i], estate_, false, false, nullptr, NIL);
            list_free(recheck);
        }
        ExecClearTuple(batch_[i]);
    }
    batched_ = 0;
}

void GhostRows::update(TupleTableSlot* existing, TupleTableSlot* ghost_row) {
    ExecSimpleRelationUpdate(result_, estate_, &epq_, existing, ghost_row);
}

void GhostRows::remove(TupleTableSlot* existing) {
    ExecSimpleRelationDelete(result_, estate_, &epq_, existing);
}

void GhostRows::next_row() {
    ResetPerTupleExprContext(estate_);
}

void GhostRows::next_command() {
    CommandCounterIncrement();
    estate_->es_output_cid = GetCurrentCommandId(true);
}

} // namespace heliosmig::engine
