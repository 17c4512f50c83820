// What a rewrite migration's worker keeps between its transactions: the copy
// key, the chunk map, the change stream's position, and the transactions
// captured so far that the next chunk's snapshot must see.
#pragma once

#include "heliosmig/catalog/store.hpp"
#include "heliosmig/engine/change_applier.hpp"
#include "heliosmig/engine/chunk_map.hpp"

extern "C" {
#include "access/xlogdefs.h"
#include "nodes/parsenodes.h"
}

#include <memory>
#include <string>
#include <vector>

namespace heliosmig::engine {

struct RewriteSession {
    catalog::Task task;
    Oid ghost = InvalidOid;
    Oid key_index = InvalidOid;
    std::string ghost_name; // relation name in schema heliosmig
    std::string slot;
    int chunk_size = 10000;
    int throttle_io = 100;
    MemoryContext context = nullptr; // key values, for the worker's lifetime
    CopyKey key;
    std::unique_ptr<ChunkMap> chunks;
    XLogRecPtr applied_upto = InvalidXLogRecPtr;   // captured commits before this are applied
    XLogRecPtr confirmed_upto = InvalidXLogRecPtr; // what the slot was last told
    double confirmed_at_ms = 0;
    XidSet must_see;        // captured, not yet seen by every snapshot
    int captured_noted = 0; // captured transactions already in must_see
    int next_chunk = 0;
    std::vector<std::string> index_recipe; // the ghost's indexes, built after the copy
    bool keyed = false;                    // the ghost has its primary key
    bool indexes_built = false;            // ... and all its other indexes
};

// The worker's session for the migration: made on first use, from the
// catalog when the worker resumes one (its chunks, how far changes are
// applied, whether the ghost has its key). close_session() forgets it.
RewriteSession& open_session(const catalog::Task& task);
void close_session();

// Attaches the session to its replication slot if this process does not hold
// it yet (a resumed worker): decoding continues from the slot.
void open_stream(RewriteSession& s);

// The statement, parsed again in the current transaction's memory.
AlterTableStmt* parse_alter(const std::string& sql);

std::string lsn_text(XLogRecPtr lsn);

// Adds the transactions captured since the last call to must_see: every
// later chunk's snapshot must see them (see snapshot_seeing).
void note_captured(RewriteSession& s);

struct RoundResult {
    long changes = 0; // captured changes to the table in this round
    long applied = 0;
    XLogRecPtr reached = InvalidXLogRecPtr;
};

// Flushes WAL, decodes up to its end and applies what was captured to the
// ghost, in the caller's transaction. The caller commits, then calls
// finish_round. A round stops early once it holds many changes (memory):
// `reached` then lies before the end.
RoundResult apply_round(RewriteSession& session);

// Under a lock that keeps writers out: rounds until everything committed
// before the call is applied, however many changes that is.
RoundResult apply_to_end(RewriteSession& session);
void finish_round(RewriteSession& session, const RoundResult& round);

// Applies what was captured, round after round, until the ghost is nearly
// caught up: done before taking a lock under which the rest is applied.
// False if it is still behind after a few rounds (the caller tries later
// rather than hold a lock while much is left to apply).
bool catch_up(RewriteSession& session);

// The cutover transaction (cutover.cpp): see DESIGN.md "Cutover". Returns
// whether it committed; false if the migration was rolled back meanwhile.
bool run_cutover(RewriteSession& session);

} // namespace heliosmig::engine
