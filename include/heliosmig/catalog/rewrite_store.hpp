// The catalog rows of a rewrite migration: its slot, how far captured
// changes are applied, the chunks copied (with their snapshots), and the
// table that keeps the old storage. Written in the same transaction as the
// ghost rows they describe, so a restarted worker resumes exactly.
#pragma once

#include "heliosmig/pg/postgres.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace heliosmig::catalog {

// What a worker needs to (re)open a rewrite migration's session.
struct RewriteSettings {
    int chunk_size = 0;
    int throttle_io = 100;
    std::string applied_lsn;                // empty until the first apply
    std::vector<std::string> ghost_indexes; // see set_ghost_indexes
};

RewriteSettings load_rewrite_settings(const std::string& id);

// Whether and how the migration may cut over: polled by the worker while
// READY, and for a forced cutover while SYNCHRONIZING or VALIDATING.
struct CutoverRequest {
    bool automatic = true; // auto_cutover
    bool requested = false;
    bool force = false; // requested with force => true: skip validation
};

CutoverRequest load_cutover_request(const std::string& id);

void set_slot_name(const std::string& id, const std::string& slot);
void set_applied_lsn(const std::string& id, const std::string& lsn);
void set_rows_total(const std::string& id, int64_t rows);
void set_retained_table(const std::string& id, const std::string& name);
// How to build the ghost's indexes after the copy: the primary key's two
// statements first, then one per other index.
void set_ghost_indexes(const std::string& id, const std::vector<std::string>& statements);

struct StoredChunk {
    int number = 0;
    std::optional<std::vector<std::string>> last_key; // nullopt: open above
    int64_t rows = 0;
    uint32_t xmin = 0;
    uint32_t xmax = 0;
    std::vector<uint32_t> running;
    bool single_key = false;
};

// Records a chunk and adds its rows to the migration's rows_copied.
void record_chunk(const std::string& id, const StoredChunk& chunk);
std::vector<StoredChunk> load_chunks(const std::string& id); // by number
void forget_chunks(const std::string& id);

// Old storage kept after cutover, older than the retention period.
struct RetainedTable {
    std::string id;
    std::string name;
};
std::vector<RetainedTable> expired_retained_tables(int retention_seconds);
void forget_retained_table(const std::string& id);

} // namespace heliosmig::catalog
