// ChangeApplier: replays captured transactions on the ghost, in commit order,
// by the visibility rule of chunk_map.hpp. Apply is strict: an INSERT whose
// key exists, or an UPDATE/DELETE that finds no row, means the rule's
// invariant is broken, and the migration fails with the key and the WAL
// position rather than papering over it.
#pragma once

#include "heliosmig/decode/captured_changes.hpp"
#include "heliosmig/engine/chunk_map.hpp"
#include "heliosmig/engine/ghost_rows.hpp"

#include <functional>

namespace heliosmig::engine {

struct ApplyResult {
    long applied = 0; // changes written to the ghost
    long skipped = 0; // changes the copy already holds, or will read
};

// Called when an UPDATE moved a row into a copied range while leaving an
// out-of-line value unchanged and the ghost has no old row to take it from:
// the key must be re-read from the table, and judged by that read from then
// on. Gets the key (in the key's memory) and the transaction's xid.
using RereadKey = std::function<void(Datum* key, TransactionId xid)>;

// Applies the captured transactions whose commit record starts at or after
// `from` (earlier ones were applied before a restart). In the caller's
// transaction; rows must be open.
ApplyResult apply_changes(const decode::Capture& capture, XLogRecPtr from, GhostRows& rows,
                          const CopyKey& key, const ChunkMap& chunks, const RereadKey& reread);

} // namespace heliosmig::engine
