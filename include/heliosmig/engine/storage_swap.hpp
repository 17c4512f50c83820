// Exchanging the storage of two heaps in one transaction, keeping both OIDs
// (DESIGN.md "Cutover (keeps the table's OID)", docs/internals/swap.md section B).
//
// Raw PostgreSQL: these functions call PostgreSQL APIs that ereport(ERROR) and own no C++
// object with a destructor; call them inside pg::call. Every change is a transactional catalog
// update: on rollback both relations point at their old storage again.
#pragma once

#include "heliosmig/pg/postgres.hpp"

namespace heliosmig::engine {

// Errors (never silently continues) unless a and b have the same physical layout attribute by
// attribute: natts, attisdropped, attlen, attbyval, attalign, atttypid, atttypmod, attcollation
// (dropped: only len/align/byval/dropped), and, when compare_missing, equal atthasmissing and
// attmissingval (compared byte for byte after detoasting). Attribute versions (15.20's
// attoptions "pg_attver"), attstorage and attcompression are not compared: they do not decide
// how stored tuples are read. Locks: takes AccessShareLock on both (the caller normally holds
// more); the answer only stays true while the caller keeps both from being altered.
void require_same_layout(Oid a, Oid b, bool compare_missing);

enum class SwapKind {
    // T <-> R: T's data goes to the empty retained table R; layout + missing values checked.
    // If R has no index, T's indexes are left alone: until T's ALTER rebuilds them (a rewrite
    // does) or FromGhost swaps them away to G, they still hold T's old entries, which point into
    // R's storage, so nothing may use them in between (while nothing writes T, its heap stays
    // empty: an index scan errors out, "could not read block", never returns a wrong row), and
    // their storage is unlinked at commit, under the locks (costly for big indexes, see below).
    // If R has indexes (clone_indexes_and_checks(T, R)), they are matched and swapped as for
    // FromGhost: T gets R's empty indexes, R keeps T's, and nothing big is unlinked at commit.
    ToRetained,
    // T <-> G: after PostgreSQL's own ALTER ran on the (empty) T in this transaction, T takes
    // G's data; layout checked without missing values. Every index of T is matched by definition
    // to exactly one index of G and vice versa (memo B2.10: all matched before any is swapped;
    // ERROR naming the unmatched index otherwise; both sides must be valid, ready and live) and
    // each pair's storage is swapped (relfilenode, reltablespace, relpages, reltuples,
    // relallvisible).
    FromGhost,
};

// Swaps the storage of heap `table` with heap `other` (memo B1/B2): pg_class relfilenode,
// reltablespace, relpages, reltuples, relallvisible, reltoastrelid AND relfrozenxid/relminmxid
// swapped (not set), all rows updated in one command (no CCI between, so no snapshot sees two
// rows with one relfilenode); TOAST by links: the pg_depend INTERNAL deps moved, TOAST tables +
// their indexes renamed so each owner's is pg_toast_<owner oid> (via a temporary name; either
// side may have no TOAST table), and the relrewrite of table's new TOAST table reset to 0;
// TransferPredicateLocksToHeapRelation on table and its indexes; RelationCloseSmgrByOid on every
// swapped relation; CCI.
// Relcache "new storage" state moves with the storage: the side receiving storage created in
// this transaction gets RelationAssumeNewRelfilenode, the other its new-storage subids cleared
// (memo B2.5; in the cutover: nothing changes for ToRetained; FromGhost marks G new when T's
// ALTER gave T new storage, as a rewrite does, and each G index whose partner was rebuilt or
// recreated by it). So a later TRUNCATE in this transaction never truncates old data in place.
// Refuses (ERROR): wal_level minimal (storage newness would decide WAL skipping), either heap
// created in this transaction, system/mapped/temporary or non-plain relations, differing access
// method or persistence, a relation open or with pending trigger events in this session.
// Cost: catalog updates only, about 1 ms whatever the size (a few ms when the relcache entries of
// many indexes must first be built); but storage that leaves for good in the transaction (T's
// old indexes when R has none) is truncated and unlinked by its COMMIT, still under the locks:
// about 100 ms for five 25 MB indexes on a loaded VM disk.
// Locks: the caller holds AccessExclusiveLock on both heaps; this takes AccessExclusiveLock on
// their indexes, TOAST tables and TOAST indexes (instantly unless autovacuum is working on a
// TOAST table: the caller's lock_timeout applies) and holds all until commit. Nothing else can
// then read or write either relation, so the exchange is atomic for every other session (they
// see it after commit, when waiting for the lock processes the invalidations).
void cutover_swap_storage(Oid table, Oid other, SwapKind kind);

} // namespace heliosmig::engine
