// Rewrite migrations' catalog rows (see include/heliosmig/catalog/rewrite_store.hpp).
#include "heliosmig/catalog/rewrite_store.hpp"
#include "heliosmig/catalog/writer.hpp"

#include <fmt/format.h>

#include <sstream>

namespace heliosmig::catalog {

namespace {

std::string text_or_empty(const pg::Value& v) {
    return v ? *v : std::string();
}

void update_migration(const std::string& id, const std::string& assignment,
                      const std::vector<pg::Value>& params) {
    CatalogWriter writer;
    std::vector<pg::Value> all{id};
    all.insert(all.end(), params.begin(), params.end());
    writer.query(fmt::format("UPDATE heliosmig.helios_migrations SET {}, updated_at = "
                             "pg_catalog.clock_timestamp() WHERE migration_id = $1::uuid",
                             assignment),
                 all);
}

std::vector<uint32_t> parse_xids(const std::string& list) {
    std::vector<uint32_t> xids;
    std::stringstream in(list);
    std::string item;
    while (std::getline(in, item, ','))
        if (!item.empty())
            xids.push_back(static_cast<uint32_t>(std::stoul(item)));
    return xids;
}

} // namespace

RewriteSettings load_rewrite_settings(const std::string& id) {
    CatalogWriter reader;
    pg::Rows rows = reader.query("SELECT chunk_size::text, throttle_io::text, applied_lsn::text,"
                                 "       pg_catalog.array_length(ghost_indexes, 1)::text"
                                 "  FROM heliosmig.helios_migrations WHERE migration_id = $1::uuid",
                                 {id});
    RewriteSettings s;
    if (rows.rows.empty())
        return s;
    const pg::Row& r = rows.rows.front();
    s.chunk_size = std::stoi(*r[0]);
    s.throttle_io = std::stoi(*r[1]);
    s.applied_lsn = text_or_empty(r[2]);
    if (r[3]) {
        pg::Rows statements =
            reader.query("SELECT s FROM heliosmig.helios_migrations m,"
                         "       pg_catalog.unnest(m.ghost_indexes) WITH ORDINALITY AS u(s, n)"
                         " WHERE m.migration_id = $1::uuid ORDER BY u.n",
                         {id});
        for (const pg::Row& statement : statements.rows)
            s.ghost_indexes.push_back(*statement[0]);
    }
    return s;
}

CutoverRequest load_cutover_request(const std::string& id) {
    CatalogWriter reader;
    pg::Rows rows = reader.query("SELECT auto_cutover::text, cutover_requested::text,"
                                 "       cutover_force::text"
                                 "  FROM heliosmig.helios_migrations WHERE migration_id = $1::uuid",
                                 {id});
    CutoverRequest request;
    if (rows.rows.empty())
        return request;
    const pg::Row& r = rows.rows.front();
    request.automatic = *r[0] == "true";
    request.requested = *r[1] == "true";
    request.force = *r[2] == "true";
    return request;
}

void set_slot_name(const std::string& id, const std::string& slot) {
    update_migration(id, "slot_name = $2", {slot});
}

void set_applied_lsn(const std::string& id, const std::string& lsn) {
    update_migration(id, "applied_lsn = $2::pg_lsn", {lsn});
}

void set_rows_total(const std::string& id, int64_t rows) {
    update_migration(id, "rows_total = $2::bigint", {std::to_string(rows)});
}

void set_retained_table(const std::string& id, const std::string& name) {
    update_migration(id, "retained_table = $2", {name});
}

void set_ghost_indexes(const std::string& id, const std::vector<std::string>& statements) {
    std::vector<pg::Value> params;
    std::string array = "ARRAY[";
    for (size_t i = 0; i < statements.size(); i++) {
        params.push_back(statements[i]);
        array += fmt::format("{}${}", i ? ", " : "", i + 2);
    }
    array += "]::text[]";
    update_migration(id, "ghost_indexes = " + array, params);
}

void record_chunk(const std::string& id, const StoredChunk& chunk) {
    std::vector<pg::Value> params{id,
                                  std::to_string(chunk.number),
                                  std::to_string(chunk.rows),
                                  std::to_string(chunk.xmin),
                                  std::to_string(chunk.xmax),
                                  chunk.single_key ? "true" : "false"};
    std::string running = "{";
    for (size_t i = 0; i < chunk.running.size(); i++)
        running += (i ? "," : "") + std::to_string(chunk.running[i]);
    running += "}";
    params.push_back(running);
    std::string key = "NULL";
    if (chunk.last_key) {
        key = "ARRAY[";
        for (size_t i = 0; i < chunk.last_key->size(); i++) {
            params.push_back((*chunk.last_key)[i]);
            key += fmt::format("{}${}", i ? ", " : "", params.size());
        }
        key += "]::text[]";
    }
    // The chunk and the progress it makes, in one statement.
    CatalogWriter writer;
    writer.query(fmt::format("WITH chunk AS (INSERT INTO heliosmig.helios_migration_chunks"
                             " (migration_id, chunk_no, rows_copied, snapshot_xmin, snapshot_xmax,"
                             " single_key, snapshot_xip, last_key) VALUES ($1::uuid, $2::int,"
                             " $3::int, $4::bigint, $5::bigint, $6::boolean, $7::bigint[], {}))"
                             " UPDATE heliosmig.helios_migrations"
                             "    SET rows_copied = rows_copied + $3::bigint,"
                             "        updated_at = pg_catalog.clock_timestamp()"
                             "  WHERE migration_id = $1::uuid",
                             key),
                 params);
}

std::vector<StoredChunk> load_chunks(const std::string& id) {
    CatalogWriter reader;
    pg::Rows rows = reader.query(
        "SELECT c.chunk_no::text, c.rows_copied::text, c.snapshot_xmin::text,"
        "       c.snapshot_xmax::text, pg_catalog.array_to_string(c.snapshot_xip, ','),"
        "       c.single_key::text, (c.last_key IS NULL)::text, k.value"
        "  FROM heliosmig.helios_migration_chunks c"
        "  LEFT JOIN LATERAL pg_catalog.unnest(c.last_key) WITH ORDINALITY k(value, n) ON true"
        " WHERE c.migration_id = $1::uuid ORDER BY c.chunk_no, k.n",
        {id});
    std::vector<StoredChunk> chunks;
    for (const pg::Row& r : rows.rows) {
        const int number = std::stoi(*r[0]);
        if (chunks.empty() || chunks.back().number != number) {
            StoredChunk c;
            c.number = number;
            c.rows = std::stoll(*r[1]);
            c.xmin = static_cast<uint32_t>(std::stoul(*r[2]));
            c.xmax = static_cast<uint32_t>(std::stoul(*r[3]));
            c.running = parse_xids(text_or_empty(r[4]));
            c.single_key = *r[5] == "true";
            if (*r[6] == "false")
                c.last_key = std::vector<std::string>{};
            chunks.push_back(std::move(c));
        }
        if (chunks.back().last_key && r[7])
            chunks.back().last_key->push_back(*r[7]);
    }
    return chunks;
}

void forget_chunks(const std::string& id) {
    CatalogWriter writer;
    writer.query("DELETE FROM heliosmig.helios_migration_chunks WHERE migration_id = $1::uuid",
                 {id});
}

std::vector<RetainedTable> expired_retained_tables(int retention_seconds) {
    CatalogWriter reader;
    pg::Rows rows = reader.query(
        "SELECT migration_id::text, retained_table FROM heliosmig.helios_migrations"
        " WHERE retained_table IS NOT NULL AND state = 'COMPLETED'"
        "   AND finished_at < pg_catalog.clock_timestamp() - $1::int * interval '1 second'",
        {std::to_string(retention_seconds)});
    std::vector<RetainedTable> out;
    for (const pg::Row& r : rows.rows)
        out.push_back({*r[0], *r[1]});
    return out;
}

void forget_retained_table(const std::string& id) {
    update_migration(id, "retained_table = NULL", {});
}

} // namespace heliosmig::catalog
