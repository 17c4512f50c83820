// A migration worker's change stream: the replication slot that captures the
// table's changes from before the first chunk is copied, and the one decoding
// context, kept for the worker's lifetime, that reads it in process (no SQL
// polling, no walsender). Decoding runs only between the worker's other work,
// never concurrently with it.
//
// One stream per worker process. The slot stays acquired by the worker until
// release_stream(); a worker that dies releases it on exit (a persistent slot
// survives, for the next worker to resume from).
#pragma once

#include "heliosmig/decode/captured_changes.hpp"

#include <string>

namespace heliosmig::decode {

// Replication origin of the worker's own writes (named like the slot), so
// decoding skips them before they reach the reorder buffer. Created if
// missing; set up for this session. Its own transaction: call between
// transactions.
void use_own_origin(const std::string& name, Oid relid);

// Creates the slot and decodes up to its consistent point. Every transaction
// that committed before that point is visible in any snapshot taken after
// this returns (it waits for those still leaving the proc array), so the
// first chunk cannot miss one. Runs its own transaction (no snapshot may
// be taken before the slot's initial snapshot): call between transactions.
// Returns the consistent point.
XLogRecPtr create_slot(const std::string& name);

// Resumes decoding from an existing slot (a restarted worker): acquires it and
// reads again from its restart point; transactions committed before its
// confirmed position are skipped by PostgreSQL, later ones are re-delivered.
// In a transaction.
void open_slot(const std::string& name);

// The current end of durable WAL. With flush, first flushes everything
// inserted so far (asynchronous commits included), for a final catch-up.
XLogRecPtr wal_end(bool flush);

// Decodes WAL up to `upto`, capturing the table's committed changes into
// capture(), stopping early once the capture holds max_changes changes (a
// whole transaction is captured at once, so it may hold more). Returns the
// position reached: every transaction that committed before it is captured.
// In a transaction (the replay of each decoded transaction runs in a
// subtransaction of it), with no relation of the migration open.
XLogRecPtr read_changes(XLogRecPtr upto, long max_changes);

// How much WAL lies between the decoder and `upto`, in bytes.
uint64 decoding_lag(XLogRecPtr upto);

Capture& capture();
void clear_capture(); // frees the captured changes once applied

// Tells the slot that everything before lsn is applied and committed: WAL and
// catalog rows older than it may be recycled. Flushes this process's last
// commit first (the worker commits asynchronously), then saves the slot.
void confirm(XLogRecPtr lsn);

// Releases the slot and the origin session, if this process holds them:
// orderly at the end of a migration, or after an error (then the decoding
// context is only dropped with its memory). Raw PostgreSQL: call inside
// pg::call (or from a PostgreSQL error handler).
void release_stream(bool orderly = false);

// Drops the slot and the origin if they exist; the slot must not be in use by
// another process. In a transaction (the origin's catalog row).
void drop_slot_and_origin(const std::string& name);

} // namespace heliosmig::decode
