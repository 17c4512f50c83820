// ChunkCopier: copies the table into the ghost in key order, one chunk per
// call (one short transaction each), under a snapshot that the caller's
// rule requires to see every captured transaction so far.
#pragma once

#include "heliosmig/engine/chunk_map.hpp"
#include "heliosmig/engine/ghost_rows.hpp"

#include <vector>

namespace heliosmig::engine {

struct CopiedChunk {
    Datum* last_key = nullptr; // in the key's memory; null: nothing above it (the copy is done)
    SnapshotRecord snapshot;
    long rows = 0;
};

// A fresh snapshot in which every transaction of `must_see` (committed, as
// decoded) is visible: PostgreSQL writes a commit record before the
// transaction leaves the proc array, so a snapshot taken right after the
// decoder saw the commit may still see it running. Waits for those on their
// transaction lock and retakes the snapshot. The snapshot is registered with
// the current transaction's resource owner; the caller unregisters it.
Snapshot snapshot_seeing(const XidSet& must_see);

// Copies the rows of about chunk_size keys above `after` (null: from the
// first) into the ghost, under `snapshot` (see chunk_copier.cpp for how).
// In the caller's transaction; rows must be open.
CopiedChunk copy_chunk(GhostRows& rows, Oid key_index, const CopyKey& key, const Datum* after,
                       int chunk_size, Snapshot snapshot);

// Re-reads one key of the table under `snapshot` and inserts its ghost row
// if the table has it. Returns whether it did.
bool copy_key(GhostRows& rows, Oid key_index, const CopyKey& key, const Datum* value,
              Snapshot snapshot);

} // namespace heliosmig::engine
