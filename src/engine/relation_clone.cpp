// Building empty tables with a table's physical layout (see
// include/heliosmig/engine/relation_clone.hpp and docs/internals/swap.md section A).
#include "heliosmig/engine/relation_clone.hpp"

extern "C" {
#include "access/attmap.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tupdesc.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/heap.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/toasting.h"
#include "commands/defrem.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_utilcmd.h"
#include "rewrite/rewriteManip.h"
#include "storage/bufmgr.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

#include <cstring>

namespace heliosmig::engine {

namespace {

// A relation option array (pg_class.reloptions) of relid, copied out of the syscache, or 0.
Datum class_reloptions(Oid relid) {
    HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
    if (!HeapTupleIsValid(tuple))
        elog(ERROR, "cache lookup failed for relation %u", relid);
    bool isnull;
    Datum options = SysCacheGetAttr(RELOID, tuple, Anum_pg_class_reloptions, &isnull);
    Datum copy = isnull ? (Datum)0 : PointerGetDatum(PG_DETOAST_DATUM_COPY(options));
    ReleaseSysCache(tuple);
    return copy;
}

// Copies atthasmissing + attmissingval of every attribute of `table` that has one onto the
// same attnum of `clone`, byte for byte (memo A4; the same catalog update as SetAttrMissing,
// without going through text). Safe: missing values change only under AccessExclusiveLock (ADD
// COLUMN, ALTER TYPE, DROP COLUMN), which our lock on `table` keeps out until commit, and
// `clone` was created in this transaction, so no other session can see it.
void copy_missing_values(Oid table, Oid clone, int natts) {
    Relation attribute_rel = table_open(AttributeRelationId, RowExclusiveLock);
    for (AttrNumber attnum = 1; attnum <= natts; attnum++) {
        HeapTuple source = SearchSysCache2(ATTNUM, ObjectIdGetDatum(table), Int16GetDatum(attnum));
        if (!HeapTupleIsValid(source))
            elog(ERROR, "cache lookup failed for attribute %d of relation %u", attnum, table);
        if (!((Form_pg_attribute)GETSTRUCT(source))->atthasmissing) {
            ReleaseSysCache(source);
            continue;
        }
        bool isnull;
        Datum missing = SysCacheGetAttr(ATTNUM, source, Anum_pg_attribute_attmissingval, &isnull);

        HeapTuple target =
            SearchSysCacheCopy2(ATTNUM, ObjectIdGetDatum(clone), Int16GetDatum(attnum));
        if (!HeapTupleIsValid(target))
            elog(ERROR, "cache lookup failed for attribute %d of relation %u", attnum, clone);

        Datum values[Natts_pg_attribute] = {};
        bool nulls[Natts_pg_attribute] = {};
        bool replace[Natts_pg_attribute] = {};
        values[Anum_pg_attribute_atthasmissing - 1] = BoolGetDatum(true);
        replace[Anum_pg_attribute_atthasmissing - 1] = true;
        values[Anum_pg_attribute_attmissingval - 1] = missing;
        nulls[Anum_pg_attribute_attmissingval - 1] = isnull;
        replace[Anum_pg_attribute_attmissingval - 1] = true;
        HeapTuple updated =
            heap_modify_tuple(target, RelationGetDescr(attribute_rel), values, nulls, replace);
        CatalogTupleUpdate(attribute_rel, &updated->t_self, updated);

        heap_freetuple(updated);
        heap_freetuple(target);
        ReleaseSysCache(source);
    }
    table_close(attribute_rel, RowExclusiveLock);
}

// The map between two relations with identical attnums (a layout clone and its source).
AttrMap* identity_attrmap(int natts) {
    AttrMap* map = make_attrmap(natts);
    for (int i = 0; i < natts; i++)
        map->attnums[i] = static_cast<AttrNumber>(i + 1);
    return map;
}

// The CHECK constraints of `source` as cooked Constraint nodes for `target`, copied out of the
// relcache entry (which may be rebuilt while indexes are created).
List* cloned_check_constraints(Relation source, const AttrMap* map) {
    TupleConstr* constr = RelationGetDescr(source)->constr;
    List* result = NIL;
    if (constr == nullptr)
        return result;
    for (int i = 0; i < constr->num_check; i++) {
        const ConstrCheck* check = &constr->check[i];
        bool found_whole_row = false;
        Node* expr = map_variable_attnos(static_cast<Node*>(stringToNode(check->ccbin)), 1, 0, map,
                                         InvalidOid, &found_whole_row);
        if (found_whole_row)
            ereport(ERROR,
                    (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                     errmsg("tables with whole-row references in CHECK constraints are not "
                            "supported yet"),
                     errdetail("Constraint \"%s\" of table \"%s\" contains a whole-row reference.",
                               check->ccname, RelationGetRelationName(source))));

        Constraint* constraint = makeNode(Constraint);
        constraint->contype = CONSTR_CHECK;
        constraint->conname = pstrdup(check->ccname);
        constraint->location = -1;
        constraint->is_no_inherit = check->ccnoinherit;
        constraint->raw_expr = nullptr;
        constraint->cooked_expr = nodeToString(expr);
        // The target is empty, so nothing is scanned; a NOT VALID constraint stays NOT VALID
        // (it is enforced on new rows all the same), so that a retained table holding T's old
        // rows does not claim they were checked.
        constraint->skip_validation = true;
        constraint->initially_valid = check->ccvalid;
        result = lappend(result, constraint);
    }
    return result;
}

} // namespace

// Safe: see the header. Everything copied from T's descriptor and pg_attribute rows changes only
// under AccessExclusiveLock, which our AccessShareLock keeps out; the new relation (and its TOAST
// table) exist only in this transaction until commit.
Oid create_layout_clone(Oid table, const char* relname, bool copy_missing) {
    if (strlen(relname) >= NAMEDATALEN)
        ereport(ERROR, (errcode(ERRCODE_NAME_TOO_LONG),
                        errmsg("relation name \"%s\" is too long", relname)));

    Relation rel = table_open(table, AccessShareLock);
    if (rel->rd_rel->relkind != RELKIND_RELATION || IsSystemRelation(rel))
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("\"%s\" is not a plain user table", RelationGetRelationName(rel))));
    if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("temporary tables are not supported")));

    // CreateTupleDescCopy keeps every physical property (and attisdropped, the dropped slots'
    // names and their atttypid 0) and clears identity, generated, defaults, missing values and
    // NOT NULL; only NOT NULL is put back. heap_create_with_catalog accepts dropped slots, as
    // for make_new_heap's transient heaps (memo A1).
    TupleDesc source_desc = RelationGetDescr(rel);
    TupleDesc desc = CreateTupleDescCopy(source_desc);
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        att->attislocal = true;
        att->attinhcount = 0;
        if (att->attisdropped)
            att->attcollation = InvalidOid;
        else
            att->attnotnull = TupleDescAttr(source_desc, i)->attnotnull;
    }

    Datum reloptions = class_reloptions(table);
    Datum toast_reloptions = OidIsValid(rel->rd_rel->reltoastrelid)
                                 ? class_reloptions(rel->rd_rel->reltoastrelid)
                                 : (Datum)0;

    Oid clone = heap_create_with_catalog(
        relname, get_namespace_oid("heliosmig", false), rel->rd_rel->reltablespace, InvalidOid,
        InvalidOid, InvalidOid, rel->rd_rel->relowner, rel->rd_rel->relam, desc, NIL,
        RELKIND_RELATION, rel->rd_rel->relpersistence, false /* shared_relation */,
        false /* mapped_relation */, ONCOMMIT_NOOP, reloptions, false /* use_user_acl */,
        false /* allow_system_table_mods */, true /* is_internal */, InvalidOid /* relrewrite */,
        nullptr);
    CommandCounterIncrement();

    // Creates the TOAST table only if the layout needs one (dropped slots do not count). No old
    // TOAST table is named, so its relrewrite is 0 too: a TOAST table with relrewrite set has its
    // changes skipped by logical decoding, and G's ends up as T's (memo A3, B2.9). The clone is
    // ours alone, so AccessExclusiveLock on it costs nothing.
    NewHeapCreateToastTable(clone, toast_reloptions, AccessExclusiveLock, InvalidOid);

    if (copy_missing)
        copy_missing_values(table, clone, desc->natts);

    table_close(rel, NoLock);
    CommandCounterIncrement();
    return clone;
}

// Safe: see the header. Nothing read from source can change or disappear under our lock on it
// (DROP INDEX, ADD/DROP CONSTRAINT and column changes need AccessExclusiveLock); only a new index
// could appear unless the caller holds ShareUpdateExclusiveLock, and the swap then refuses.
// target is empty and exclusively ours.
void clone_indexes_and_checks(Oid source, Oid target) {
    Relation source_rel = table_open(source, AccessShareLock);
    Relation target_rel = table_open(target, AccessExclusiveLock);
    int natts = RelationGetDescr(source_rel)->natts;
    if (RelationGetDescr(target_rel)->natts != natts)
        elog(ERROR, "\"%s\" is not a layout clone of \"%s\"", RelationGetRelationName(target_rel),
             RelationGetRelationName(source_rel));
    if (RelationGetNumberOfBlocks(target_rel) != 0)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("table \"%s\" is not empty", RelationGetRelationName(target_rel))));

    List* index_oids = RelationGetIndexList(source_rel);
    ListCell* cell;
    foreach (cell, index_oids) {
        Relation index = index_open(lfirst_oid(cell), AccessShareLock);
        if (index->rd_index->indisexclusion)
            ereport(
                ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("tables with exclusion constraints are not supported yet"),
                 errdetail("Index \"%s\" of table \"%s\" belongs to an exclusion constraint.",
                           RelationGetRelationName(index), RelationGetRelationName(source_rel))));
        index_close(index, NoLock);
    }

    AttrMap* map = identity_attrmap(natts);
    List* checks = cloned_check_constraints(source_rel, map);
    if (checks != NIL)
        AddRelationNewConstraints(target_rel, NIL, checks, false /* allow_merge */,
                                  true /* is_local */, true /* is_internal */, nullptr);
    CommandCounterIncrement();

    RangeVar* target_rv = makeRangeVar(get_namespace_name(RelationGetNamespace(target_rel)),
                                       pstrdup(RelationGetRelationName(target_rel)), -1);
    // DefineIndex opens the table itself; ours stays open, so it must not insist on being the
    // only user (check_not_in_use = false).
    foreach (cell, index_oids) {
        Relation index = index_open(lfirst_oid(cell), AccessShareLock);
        IndexStmt* stmt = generateClonedIndexStmt(target_rv, index, map, nullptr);
        index_close(index, NoLock);

        if (!stmt->primary && !stmt->deferrable) {
            stmt->isconstraint = false;
            stmt->initdeferred = false;
        }
        // An index in the database's default tablespace stays there, whatever the session's
        // default_tablespace says (as ALTER TABLE does when it recreates indexes).
        stmt->reset_default_tblspc = true;
        DefineIndex(target, stmt, InvalidOid, InvalidOid, InvalidOid, false /* is_alter_table */,
                    false /* check_rights */, false /* check_not_in_use */, false /* skip_build */,
                    true /* quiet */);
        CommandCounterIncrement();
    }

    free_attrmap(map);
    table_close(target_rel, NoLock);
    table_close(source_rel, NoLock);
}

} // namespace heliosmig::engine
