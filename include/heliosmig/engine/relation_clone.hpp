// Building the empty tables a cutover needs: the ghost G and the retained table R, each with
// exactly the physical layout of the migrated table T (docs/internals/swap.md section A).
//
// Raw PostgreSQL: these functions call PostgreSQL APIs that ereport(ERROR) and own no C++
// object with a destructor; call them inside pg::call. They take no lock stronger than the
// caller's (see each function), and everything they create is transactional: an error or a
// rollback leaves nothing behind.
#pragma once

#include "heliosmig/pg/postgres.hpp"

namespace heliosmig::engine {

// Creates heliosmig.<relname> (schema "heliosmig" exists): an empty heap with exactly `table`'s
// physical layout — same attnums incl. dropped slots, same attlen/attbyval/attalign/attstorage/
// attcompression/atttypid/atttypmod/attcollation, attnotnull kept on live columns, NO identity/
// generated/defaults — built with heap_create_with_catalog from a CreateTupleDescCopy of T's
// descriptor (not LIKE), same owner, tablespace, access method, persistence, reloptions,
// relrewrite = 0 (its TOAST table's too), then NewHeapCreateToastTable (with T's toast
// reloptions) so a TOAST table exists when needed.
// copy_missing=true (for the retained table): copy atthasmissing + attmissingval byte-exact from T
// (memo A4). Dropped slots get attcollation 0 (no pg_depend on a collation; the layout check
// ignores it there); columns are local (attinhcount 0) even if T inherits them.
// T must be a plain, non-temporary user table (else ERROR FEATURE_NOT_SUPPORTED).
// Locks: takes AccessShareLock on `table` (never more: a no-op when the caller holds a lock),
// held until commit: the descriptor and missing values change only under AccessExclusiveLock,
// so what is copied is consistent (reloptions changed meanwhile under ShareUpdateExclusiveLock
// may be missed; they do not shape the storage). DML goes on. The new relation is invisible to
// other sessions until commit. Returns the new OID. CCI done.
Oid create_layout_clone(Oid table, const char* relname, bool copy_missing);

// Creates on `target` (a layout clone of `source`, same attnums) one index per index of `source`
// with the same definition: generateClonedIndexStmt with an identity attmap + DefineIndex, in
// the index's own tablespace (default_tablespace is ignored, as ALTER TABLE's rebuilds do).
// source's primary key becomes target's PRIMARY KEY constraint (named by PostgreSQL:
// "<targetrelname>_pkey"); a DEFERRABLE unique constraint stays a (deferrable) constraint, as a
// plain index cannot be deferred; other indexes become plain indexes (unique ones stay unique,
// predicates/expressions/opclasses/collations/INCLUDE/options kept). Invalid indexes of source
// are built valid on target. Exclusion-constraint indexes: ERROR FEATURE_NOT_SUPPORTED "tables
// with exclusion constraints are not supported yet" (checked before anything is created).
// Also copies source's CHECK constraints onto target with the same names, NO INHERIT flags and
// validity: validated ones are marked validated without a scan (target is empty); NOT VALID
// ones stay NOT VALID (still enforced on every new row, so copying rows that violate one
// fails). Whole-row references are refused (FEATURE_NOT_SUPPORTED).
// Also usable for the retained table R (see SwapKind::ToRetained).
// Locks: takes AccessShareLock on source (a no-op when the caller holds a lock), under which no
// index, constraint or column can change or disappear; a CREATE INDEX [CONCURRENTLY] on source
// can still add one unless the caller holds ShareUpdateExclusiveLock (or refuses that DDL), and
// FromGhost then errors on the unmatched index. Takes AccessExclusiveLock on target, which must
// be empty (no block yet; else ERROR), so the constraints need no validation scan. CCI done.
void clone_indexes_and_checks(Oid source, Oid target);

} // namespace heliosmig::engine
