// Exchanging the storage of two heaps (see include/heliosmig/engine/storage_swap.hpp and
// docs/internals/swap.md section B).
#include "heliosmig/engine/storage_swap.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/table.h"
#include "access/toast_internals.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "commands/tablecmds.h"
#include "nodes/pg_list.h"
#include "storage/lmgr.h"
#include "storage/predicate.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
}

#include <cstdio>
#include <cstring>
#include <utility>

namespace heliosmig::engine {

namespace {

constexpr const char* kSwapVerb = "swap the storage of";

[[noreturn]] void layout_mismatch(Relation a, Relation b, int attnum, const char* property) {
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("tables \"%s\" and \"%s\" do not have the same physical layout",
                           RelationGetRelationName(a), RelationGetRelationName(b)),
                    errdetail("Attribute %d differs in %s.", attnum, property)));
    pg_unreachable();
}

bool same_bytes(Datum a, Datum b) {
    struct varlena* x =
        pg_detoast_datum_packed(reinterpret_cast<struct varlena*>(DatumGetPointer(a)));
    struct varlena* y =
        pg_detoast_datum_packed(reinterpret_cast<struct varlena*>(DatumGetPointer(b)));
    return VARSIZE_ANY_EXHDR(x) == VARSIZE_ANY_EXHDR(y) &&
           memcmp(VARDATA_ANY(x), VARDATA_ANY(y), VARSIZE_ANY_EXHDR(x)) == 0;
}

// pg_attribute's atthasmissing/attmissingval of attnum, equal on both relations.
bool same_missing_value(Oid a, Oid b, AttrNumber attnum) {
    HeapTuple ta = SearchSysCache2(ATTNUM, ObjectIdGetDatum(a), Int16GetDatum(attnum));
    HeapTuple tb = SearchSysCache2(ATTNUM, ObjectIdGetDatum(b), Int16GetDatum(attnum));
    if (!HeapTupleIsValid(ta) || !HeapTupleIsValid(tb))
        elog(ERROR, "cache lookup failed for attribute %d of relation %u or %u", attnum, a, b);
    bool null_a, null_b;
    Datum value_a = SysCacheGetAttr(ATTNUM, ta, Anum_pg_attribute_attmissingval, &null_a);
    Datum value_b = SysCacheGetAttr(ATTNUM, tb, Anum_pg_attribute_attmissingval, &null_b);
    bool same = ((Form_pg_attribute)GETSTRUCT(ta))->atthasmissing ==
                    ((Form_pg_attribute)GETSTRUCT(tb))->atthasmissing &&
                null_a == null_b && (null_a || same_bytes(value_a, value_b));
    ReleaseSysCache(ta);
    ReleaseSysCache(tb);
    return same;
}

// An options array (reloptions, attoptions) as a list of DefElems, without 15.20's attribute
// version (a property of the OID, not of the storage).
List* options_list(Datum options) {
    List* result = NIL;
    ListCell* cell;
    foreach (cell, untransformRelOptions(options)) {
        auto* option = static_cast<DefElem*>(lfirst(cell));
#ifdef ATTRIBUTE_VERSION_ATTOPTION
        if (strcmp(option->defname, ATTRIBUTE_VERSION_ATTOPTION) == 0)
            continue;
#endif
        result = lappend(result, option);
    }
    return result;
}

List* class_options(Oid relid) {
    HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
    if (!HeapTupleIsValid(tuple))
        elog(ERROR, "cache lookup failed for relation %u", relid);
    bool isnull;
    Datum options = SysCacheGetAttr(RELOID, tuple, Anum_pg_class_reloptions, &isnull);
    List* result = isnull ? NIL : options_list(options);
    ReleaseSysCache(tuple);
    return result;
}

oidvector* index_opclasses(Relation index) {
    bool isnull;
    Datum value =
        SysCacheGetAttr(INDEXRELID, index->rd_indextuple, Anum_pg_index_indclass, &isnull);
    if (isnull)
        elog(ERROR, "null indclass for index %u", RelationGetRelid(index));
    return reinterpret_cast<oidvector*>(DatumGetPointer(value));
}

// Whether two indexes over heaps with the same attnums store the same entries in the same
// format: what DESIGN.md lists (access method, key and INCLUDE columns, opclasses, collations,
// ordering options, storage and opclass options, uniqueness, nulls-not-distinct, exclusion,
// equal() expressions and predicate). Not compared, as they do not shape the storage:
// names, constraints, indimmediate, indisprimary, indisclustered, indisreplident.
bool same_index_definition(Relation x, Relation y) {
    Form_pg_index fx = x->rd_index;
    Form_pg_index fy = y->rd_index;
    if (x->rd_rel->relam != y->rd_rel->relam ||
        x->rd_rel->relpersistence != y->rd_rel->relpersistence || fx->indnatts != fy->indnatts ||
        fx->indnkeyatts != fy->indnkeyatts || fx->indisunique != fy->indisunique ||
        fx->indnullsnotdistinct != fy->indnullsnotdistinct ||
        fx->indisexclusion != fy->indisexclusion)
        return false;
    for (int i = 0; i < fx->indnatts; i++)
        if (fx->indkey.values[i] != fy->indkey.values[i])
            return false;
    oidvector* opclasses_x = index_opclasses(x);
    oidvector* opclasses_y = index_opclasses(y);
    if (opclasses_x->dim1 != opclasses_y->dim1)
        return false;
    for (int i = 0; i < opclasses_x->dim1; i++)
        if (opclasses_x->values[i] != opclasses_y->values[i])
            return false;
    for (int i = 0; i < fx->indnkeyatts; i++)
        if (x->rd_indcollation[i] != y->rd_indcollation[i] ||
            x->rd_indoption[i] != y->rd_indoption[i])
            return false;
    if (!equal(RelationGetIndexExpressions(x), RelationGetIndexExpressions(y)) ||
        !equal(RelationGetIndexPredicate(x), RelationGetIndexPredicate(y)))
        return false;
    if (!equal(class_options(RelationGetRelid(x)), class_options(RelationGetRelid(y))))
        return false;
    for (AttrNumber attnum = 1; attnum <= fx->indnatts; attnum++)
        if (!equal(options_list(get_attoptions(RelationGetRelid(x), attnum)),
                   options_list(get_attoptions(RelationGetRelid(y), attnum))))
            return false;
    return true;
}

void require_usable_index(Relation index, Relation heap) {
    Form_pg_index form = index->rd_index;
    if (!form->indisvalid || !form->indisready || !form->indislive)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("index \"%s\" of table \"%s\" is not valid",
                               RelationGetRelationName(index), RelationGetRelationName(heap)),
                        errhint("REINDEX or drop the index first.")));
}

// Opens every index of heap (the list RelationGetIndexList gives) with AccessExclusiveLock,
// held until commit. *count receives their number.
Relation* open_indexes(Relation heap, int* count) {
    List* oids = RelationGetIndexList(heap);
    *count = list_length(oids);
    auto* indexes = static_cast<Relation*>(palloc0(sizeof(Relation) * (*count + 1)));
    int i = 0;
    ListCell* cell;
    foreach (cell, oids)
        indexes[i++] = index_open(lfirst_oid(cell), AccessExclusiveLock);
    return indexes;
}

// Pairs each index of table with one index of other of the same definition; every index on
// either side must find a partner. All pairs are known before anything is changed.
// pairs[i] is the partner in others of mine[i].
void match_indexes(Relation table, Relation other, Relation* mine, Relation* others, int count,
                   int other_count, Relation* pairs) {
    auto* taken = static_cast<bool*>(palloc0(sizeof(bool) * (other_count + 1)));
    for (int i = 0; i < count; i++) {
        require_usable_index(mine[i], table);
        pairs[i] = nullptr;
        for (int j = 0; j < other_count && pairs[i] == nullptr; j++) {
            if (!taken[j] && same_index_definition(mine[i], others[j])) {
                taken[j] = true;
                pairs[i] = others[j];
            }
        }
        if (pairs[i] == nullptr)
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("index \"%s\" of table \"%s\" has no matching index on \"%s\"",
                                   RelationGetRelationName(mine[i]), RelationGetRelationName(table),
                                   RelationGetRelationName(other))));
        require_usable_index(pairs[i], other);
    }
    for (int j = 0; j < other_count; j++)
        if (!taken[j])
            ereport(ERROR,
                    (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                     errmsg("index \"%s\" of table \"%s\" has no matching index on \"%s\"",
                            RelationGetRelationName(others[j]), RelationGetRelationName(other),
                            RelationGetRelationName(table))));
}

// Whether rel's current storage was created in this transaction (as far as the relcache
// knows; a forgotten newness only makes a later TRUNCATE take the safe, transactional path).
bool storage_is_new(Relation rel) {
    return rel->rd_createSubid != InvalidSubTransactionId ||
           rel->rd_newRelfilenodeSubid != InvalidSubTransactionId;
}

// Gives rel the newness of the storage it now has (memo B2.5). The subids survive relcache
// rebuilds, so they must be set explicitly; a non-Invalid value only through
// RelationAssumeNewRelfilenode, which also queues the end-of-transaction reset.
// rd_createSubid is left alone: it says the relation itself is new.
void set_storage_newness(Relation rel, bool is_new) {
    if (is_new) {
        RelationAssumeNewRelfilenode(rel);
    } else {
        rel->rd_newRelfilenodeSubid = InvalidSubTransactionId;
        rel->rd_firstRelfilenodeSubid = InvalidSubTransactionId;
    }
}

// Exchanges the storage columns of the pg_class rows of a and b (memo B1.2, B1.5, B2.4). For
// heaps also the TOAST link and relfrozenxid/relminmxid, which describe the tuples in the
// storage: they are swapped, not set, as nothing is rewritten or frozen here. Safe: the caller
// holds AccessExclusiveLock on both (15.20's rule for pg_class heap_update callers asks for
// ShareRowExclusiveLock or stricter), so neither VACUUM's in-place updates nor any other
// session can touch these rows. Both rows are updated in the caller's command.
void swap_class_rows(Relation class_rel, CatalogIndexState indstate, Oid a, Oid b, bool heaps) {
    HeapTuple ta = SearchSysCacheCopy1(RELOID, ObjectIdGetDatum(a));
    HeapTuple tb = SearchSysCacheCopy1(RELOID, ObjectIdGetDatum(b));
    if (!HeapTupleIsValid(ta) || !HeapTupleIsValid(tb))
        elog(ERROR, "cache lookup failed for relation %u or %u", a, b);
    auto* fa = reinterpret_cast<Form_pg_class>(GETSTRUCT(ta));
    auto* fb = reinterpret_cast<Form_pg_class>(GETSTRUCT(tb));
    if (!OidIsValid(fa->relfilenode) || !OidIsValid(fb->relfilenode))
        elog(ERROR, "cannot swap the storage of mapped relation \"%s\" or \"%s\"",
             NameStr(fa->relname), NameStr(fb->relname));
    if (fa->relam != fb->relam || fa->relpersistence != fb->relpersistence)
        elog(ERROR, "relations \"%s\" and \"%s\" differ in access method or persistence",
             NameStr(fa->relname), NameStr(fb->relname));

    std::swap(fa->relfilenode, fb->relfilenode);
    std::swap(fa->reltablespace, fb->reltablespace);
    std::swap(fa->relpages, fb->relpages);
    std::swap(fa->reltuples, fb->reltuples);
    std::swap(fa->relallvisible, fb->relallvisible);
    if (heaps) {
        std::swap(fa->reltoastrelid, fb->reltoastrelid);
        std::swap(fa->relfrozenxid, fb->relfrozenxid);
        std::swap(fa->relminmxid, fb->relminmxid);
    }
    CatalogTupleUpdateWithInfo(class_rel, &ta->t_self, ta, indstate);
    CatalogTupleUpdateWithInfo(class_rel, &tb->t_self, tb, indstate);
    InvokeObjectPostAlterHookArg(RelationRelationId, a, 0, InvalidOid, true);
    InvokeObjectPostAlterHookArg(RelationRelationId, b, 0, InvalidOid, true);
    heap_freetuple(ta);
    heap_freetuple(tb);
}

// Makes the TOAST table `toast` (now linked from new_owner's pg_class row) an INTERNAL
// dependent of new_owner, so that it is dropped with its owner (memo B1.9). A TOAST table has
// exactly that one dependency.
void move_toast_dependency(Oid toast, Oid new_owner) {
    if (deleteDependencyRecordsFor(RelationRelationId, toast, false) != 1)
        elog(ERROR, "expected one dependency record for TOAST table %u", toast);
    ObjectAddress owner{RelationRelationId, new_owner, 0};
    ObjectAddress toast_table{RelationRelationId, toast, 0};
    recordDependencyOn(&toast_table, &owner, DEPENDENCY_INTERNAL);
}

// Renames a TOAST table and its valid index to <prefix>_<number> and <prefix>_<number>_index.
// RenameRelationInternal locks each (AccessExclusiveLock, ShareUpdateExclusiveLock: already
// held) and refuses a name in use, so a CCI must separate renames that free and take a name.
void rename_toast(Oid toast, const char* prefix, Oid number) {
    char name[NAMEDATALEN];
    Oid index = toast_get_valid_index(toast, AccessExclusiveLock);
    snprintf(name, sizeof name, "%s_%u", prefix, number);
    RenameRelationInternal(toast, name, true, false);
    snprintf(name, sizeof name, "%s_%u_index", prefix, number);
    RenameRelationInternal(index, name, true, true);
}

// After the links were swapped: names each TOAST table after its new owner (memo B2.8), going
// through a temporary name when both exist, since each then holds the other's name.
void rename_toast_tables(Oid table, Oid table_toast, Oid other, Oid other_toast) {
    if (OidIsValid(table_toast) && OidIsValid(other_toast)) {
        rename_toast(other_toast, "heliosmig_swap", other_toast);
        CommandCounterIncrement();
    }
    if (OidIsValid(table_toast)) {
        rename_toast(table_toast, "pg_toast", table);
        CommandCounterIncrement();
    }
    if (OidIsValid(other_toast)) {
        rename_toast(other_toast, "pg_toast", other);
        CommandCounterIncrement();
    }
}

// A TOAST table whose relrewrite is set has its changes skipped by logical decoding (memo B6),
// so the one that is now the table's must have none (memo B2.9). Its row was renamed in an
// earlier command, so it can be updated again.
void reset_toast_relrewrite(Oid toast) {
    HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(toast));
    if (!HeapTupleIsValid(tuple))
        elog(ERROR, "cache lookup failed for relation %u", toast);
    bool rewrite = OidIsValid(reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relrewrite);
    ReleaseSysCache(tuple);
    if (rewrite) {
        ResetRelRewrite(toast);
        CommandCounterIncrement();
    }
}

// The checks every swapped heap must pass (memo B2.3).
void require_swappable_heap(Relation rel) {
    if (rel->rd_rel->relkind != RELKIND_RELATION || IsSystemRelation(rel) ||
        RelationIsMapped(rel) || rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("cannot swap the storage of \"%s\"", RelationGetRelationName(rel)),
                        errdetail("Only the storage of plain, non-temporary user tables can be "
                                  "swapped.")));
    if (rel->rd_createSubid != InvalidSubTransactionId)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("cannot swap the storage of \"%s\", created in the current transaction",
                        RelationGetRelationName(rel))));
    // Our own reference is the only one, and no AFTER trigger event waits on a tuple of the
    // storage about to leave.
    CheckTableNotInUse(rel, kSwapVerb);
}

// Locks the TOAST table of heap (if any) and its indexes until commit, before any change.
void lock_toast(Relation heap) {
    if (OidIsValid(heap->rd_rel->reltoastrelid))
        (void)toast_get_valid_index(heap->rd_rel->reltoastrelid, AccessExclusiveLock);
}

} // namespace

// Safe: reads only descriptors and pg_attribute rows, under AccessShareLock on both; callers
// that act on the answer hold locks that keep both from being altered (see the header).
void require_same_layout(Oid a, Oid b, bool compare_missing) {
    Relation ra = table_open(a, AccessShareLock);
    Relation rb = table_open(b, AccessShareLock);
    TupleDesc da = RelationGetDescr(ra);
    TupleDesc db = RelationGetDescr(rb);
    if (da->natts != db->natts)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("tables \"%s\" and \"%s\" do not have the same physical layout",
                        RelationGetRelationName(ra), RelationGetRelationName(rb)),
                 errdetail("\"%s\" has %d attributes, \"%s\" has %d.", RelationGetRelationName(ra),
                           da->natts, RelationGetRelationName(rb), db->natts)));
    for (int i = 0; i < da->natts; i++) {
        Form_pg_attribute x = TupleDescAttr(da, i);
        Form_pg_attribute y = TupleDescAttr(db, i);
        int attnum = i + 1;
        if (x->attisdropped != y->attisdropped)
            layout_mismatch(ra, rb, attnum, "being dropped");
        if (x->attlen != y->attlen || x->attbyval != y->attbyval || x->attalign != y->attalign)
            layout_mismatch(ra, rb, attnum, "length, alignment or passing by value");
        if (!x->attisdropped) {
            if (x->atttypid != y->atttypid || x->atttypmod != y->atttypmod)
                layout_mismatch(ra, rb, attnum, "type or type modifier");
            if (x->attcollation != y->attcollation)
                layout_mismatch(ra, rb, attnum, "collation");
        }
        if (compare_missing && !same_missing_value(a, b, static_cast<AttrNumber>(attnum)))
            layout_mismatch(ra, rb, attnum,
                            "missing value (the value of rows stored before it "
                            "was added)");
    }
    table_close(ra, NoLock);
    table_close(rb, NoLock);
}

// Safe: see the header. Under AccessExclusiveLock on both heaps, their indexes and their TOAST
// relations, no other session reads or writes any of them, and every change is a transactional
// catalog update (no storage file is touched: storage that leaves for good is unlinked at
// commit, by whoever drops or rewrites its new owner).
void cutover_swap_storage(Oid table, Oid other, SwapKind kind) {
    if (!XLogIsNeeded())
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("swapping table storage requires wal_level \"replica\" or higher")));
    if (table == other)
        elog(ERROR, "cannot swap the storage of relation %u with itself", table);

    // Already held by the caller: these only count the local locks.
    LockRelationOid(table, AccessExclusiveLock);
    LockRelationOid(other, AccessExclusiveLock);
    Relation rt = table_open(table, NoLock);
    Relation ro = table_open(other, NoLock);
    require_swappable_heap(rt);
    require_swappable_heap(ro);
    if (rt->rd_rel->relam != ro->rd_rel->relam ||
        rt->rd_rel->relpersistence != ro->rd_rel->relpersistence)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("tables \"%s\" and \"%s\" differ in access method or persistence",
                               RelationGetRelationName(rt), RelationGetRelationName(ro))));
    require_same_layout(table, other, kind == SwapKind::ToRetained);
    lock_toast(rt);
    lock_toast(ro);

    int count = 0;
    int other_count = 0;
    Relation* mine = open_indexes(rt, &count);
    Relation* others = open_indexes(ro, &other_count);
    // A retained table without indexes leaves table's indexes alone; otherwise every index
    // must have its partner, matched before anything changes.
    Relation* pairs = nullptr;
    if (kind == SwapKind::FromGhost || other_count > 0) {
        pairs = static_cast<Relation*>(palloc0(sizeof(Relation) * (count + 1)));
        match_indexes(rt, ro, mine, others, count, other_count, pairs);
    }

    // Page and tuple predicate locks name places in the storage that leaves: make them
    // relation-level ones (as CLUSTER and ALTER TABLE's rewrite do).
    TransferPredicateLocksToHeapRelation(rt);
    for (int i = 0; i < count; i++)
        TransferPredicateLocksToHeapRelation(mine[i]);

    bool table_new = storage_is_new(rt);
    bool other_new = storage_is_new(ro);
    auto* mine_new = static_cast<bool*>(palloc0(sizeof(bool) * (count + 1)));
    auto* pair_new = static_cast<bool*>(palloc0(sizeof(bool) * (count + 1)));
    for (int i = 0; pairs != nullptr && i < count; i++) {
        mine_new[i] = storage_is_new(mine[i]);
        pair_new[i] = storage_is_new(pairs[i]);
    }
    Oid table_toast = rt->rd_rel->reltoastrelid; // leaves to other
    Oid other_toast = ro->rd_rel->reltoastrelid; // comes to table

    // One command: every pg_class row changes before the next CCI, so no catalog snapshot
    // (e.g. logical decoding's RelidByRelfilenode) sees one relfilenode twice.
    Relation class_rel = table_open(RelationRelationId, RowExclusiveLock);
    CatalogIndexState indstate = CatalogOpenIndexes(class_rel);
    swap_class_rows(class_rel, indstate, table, other, true);
    for (int i = 0; pairs != nullptr && i < count; i++)
        swap_class_rows(class_rel, indstate, RelationGetRelid(mine[i]), RelationGetRelid(pairs[i]),
                        false);
    CatalogCloseIndexes(indstate);
    table_close(class_rel, RowExclusiveLock);

    if (OidIsValid(table_toast))
        move_toast_dependency(table_toast, other);
    if (OidIsValid(other_toast))
        move_toast_dependency(other_toast, table);

    set_storage_newness(rt, other_new);
    set_storage_newness(ro, table_new);
    for (int i = 0; pairs != nullptr && i < count; i++) {
        set_storage_newness(mine[i], pair_new[i]);
        set_storage_newness(pairs[i], mine_new[i]);
    }

    // Close every smgr link before the CCI rebuilds the entries: otherwise the second rebuilt
    // entry could keep a reference to the smgr entry of the first (memo B1.11).
    for (int i = 0; i < count; i++) {
        Oid index = RelationGetRelid(mine[i]);
        index_close(mine[i], NoLock);
        RelationCloseSmgrByOid(index);
    }
    for (int i = 0; i < other_count; i++) {
        Oid index = RelationGetRelid(others[i]);
        index_close(others[i], NoLock);
        RelationCloseSmgrByOid(index);
    }
    table_close(rt, NoLock);
    table_close(ro, NoLock);
    RelationCloseSmgrByOid(table);
    RelationCloseSmgrByOid(other);
    CommandCounterIncrement();

    rename_toast_tables(table, other_toast, other, table_toast);
    if (OidIsValid(other_toast))
        reset_toast_relrewrite(other_toast);
}

} // namespace heliosmig::engine
