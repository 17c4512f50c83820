// The ghost table (see include/heliosmig/engine/ghost_table.hpp).
#include "heliosmig/engine/ghost_table.hpp"
#include "heliosmig/catalog/rewrite_store.hpp"
#include "heliosmig/engine/ghost_rows.hpp"
#include "heliosmig/engine/lock_retry.hpp"
#include "heliosmig/engine/relation_clone.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/spi.hpp"
#include "heliosmig/pg/transaction.hpp"
#include "heliosmig/pg/utility.hpp"

extern "C" {
#include "access/relation.h"
#include "access/table.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "utils/rel.h"
}

#include <fmt/format.h>

namespace heliosmig::engine {

namespace {

// The ghost's indexes are exactly what the statement makes of the table's
// (PostgreSQL rebuilt them on the empty ghost). Copying into an unindexed
// heap and building each index once afterwards is much faster than keeping
// them up to date row by row, so their definitions are recorded and the
// indexes dropped; build_ghost_key and build_ghost_indexes recreate them
// from the same definitions.
void set_aside_ghost_indexes(RewriteSession& s) {
    const std::string ghost = "heliosmig." + s.ghost_name;
    pg::Spi spi;
    pg::Rows indexes = spi.query(
        "SELECT pg_catalog.pg_get_indexdef(i.indexrelid), i.indisprimary::text,"
        "       pg_catalog.quote_ident(ic.relname), coalesce(pg_catalog.quote_ident(c.conname), '')"
        "  FROM pg_catalog.pg_index i"
        "  JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid"
        "  LEFT JOIN pg_catalog.pg_constraint c"
        "    ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid"
        " WHERE i.indrelid = $1::oid ORDER BY i.indisprimary DESC, i.indexrelid",
        {std::to_string(s.ghost)});
    std::vector<std::string> recipe;
    for (const pg::Row& index : indexes.rows) {
        const bool primary = *index[1] == "true";
        recipe.push_back(*index[0]);
        if (primary)
            recipe.push_back(
                fmt::format("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY USING INDEX {}", ghost,
                            *index[3], *index[2]));
    }
    for (const pg::Row& index : indexes.rows) {
        if (!index[3]->empty())
            spi.query(fmt::format("ALTER TABLE {} DROP CONSTRAINT {}", ghost, *index[3]));
        else
            spi.query(fmt::format("DROP INDEX heliosmig.{}", *index[2]));
    }
    catalog::set_ghost_indexes(s.task.id, recipe);
    s.index_recipe = recipe;
    s.keyed = false;
}

// "CREATE [UNIQUE] INDEX name ..." -> "... INDEX IF NOT EXISTS name ...": a
// worker restarted halfway through the builds repeats them harmlessly.
std::string if_not_exists(const std::string& definition) {
    std::string out = definition;
    const size_t at = out.find(" INDEX ");
    if (at != std::string::npos)
        out.insert(at + 7, "IF NOT EXISTS ");
    return out;
}

// A table keyed by a replica identity index (unique, on NOT NULL columns)
// rather than a primary key: its copy on the ghost becomes the ghost's
// primary key, which apply uses to find rows. (The cutover matches indexes by
// definition, not by constraint, so T's index still pairs with it.)
void promote_ghost_key(RewriteSession& s) {
    pg::Spi spi;
    const std::string ghost = std::to_string(s.ghost);
    if (spi.scalar("SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1::oid AND indisprimary",
                   {ghost}))
        return;
    pg::Value index = spi.scalar(
        "SELECT pg_catalog.quote_ident(c.relname)"
        "  FROM pg_catalog.pg_index g JOIN pg_catalog.pg_class c ON c.oid = g.indexrelid,"
        "       pg_catalog.pg_index t"
        " WHERE g.indrelid = $1::oid AND t.indexrelid = $2::oid AND g.indisunique"
        "   AND g.indkey::text = t.indkey::text AND g.indclass::text = t.indclass::text"
        "   AND g.indpred IS NULL AND g.indexprs IS NULL"
        " ORDER BY g.indexrelid LIMIT 1",
        {ghost, std::to_string(s.key_index)});
    if (!index)
        return; // the key check below says why
    spi.query(
        fmt::format("ALTER TABLE heliosmig.{} ADD CONSTRAINT {}_pkey PRIMARY KEY USING INDEX {}",
                    s.ghost_name, s.ghost_name, *index));
}

} // namespace

void keep_autovacuum_away(const std::string& qualified_name) {
    pg::Spi spi;
    spi.query(fmt::format("ALTER TABLE {} SET (autovacuum_enabled = false, "
                          "toast.autovacuum_enabled = false)",
                          qualified_name));
}

bool ghost_has_key(Oid ghost) {
    return pg::call([&] {
        Relation rel = table_open(ghost, AccessShareLock);
        const bool keyed = OidIsValid(RelationGetPrimaryKeyIndex(rel));
        table_close(rel, AccessShareLock);
        return keyed;
    });
}

// The primary key first: applying captured changes needs it to find rows.
// The ghost is this worker's alone, so its SHARE lock blocks no one.
void build_ghost_key(RewriteSession& s) {
    if (s.keyed)
        return;
    const double started = now_ms();
    pg::in_worker_transaction([&] {
        if (!ghost_has_key(s.ghost)) {
            pg::Spi spi;
            spi.query(if_not_exists(s.index_recipe.at(0)));
            spi.query(s.index_recipe.at(1));
        }
        catalog::log_event(
            s.task.id, catalog::LogLevel::Info, "index_built",
            fmt::format("the ghost's primary key is built ({:.0f} ms)", now_ms() - started));
    });
    s.keyed = true;
}

void build_ghost_indexes(RewriteSession& s) {
    build_ghost_key(s);
    for (size_t i = 2; i < s.index_recipe.size(); i++) {
        const double started = now_ms();
        pg::in_worker_transaction([&] {
            pg::Spi spi;
            spi.query(if_not_exists(s.index_recipe[i]));
            catalog::log_event(s.task.id, catalog::LogLevel::Info, "index_built",
                               fmt::format("ghost index built ({:.0f} ms): {}", now_ms() - started,
                                           s.index_recipe[i]));
        });
    }
    s.indexes_built = true;
}

// The ghost: the table's exact physical layout, its indexes and CHECK
// constraints, then the statement applied to it (it is empty, so this is
// instant). ACCESS SHARE on the table keeps its descriptor stable; DDL on a
// table under migration is refused by the hook anyway.
void create_ghost(RewriteSession& s) {
    const Oid table = s.task.table_oid;
    const std::string name = s.ghost_name;
    AlterTableStmt* alter = parse_alter(s.task.statement);
    s.ghost = pg::call([&] {
        LockRelationOid(table, AccessShareLock);
        Oid ghost = create_layout_clone(table, name.c_str(), false);
        clone_indexes_and_checks(table, ghost);
        return ghost;
    });
    AlterTableStmt* on_ghost = pg::call([&] {
        auto* copy = static_cast<AlterTableStmt*>(copyObjectImpl(alter));
        copy->relation = makeRangeVar(pstrdup("heliosmig"), pstrdup(name.c_str()), -1);
        return copy;
    });
    pg::execute_utility(reinterpret_cast<Node*>(on_ghost), s.task.statement);
    promote_ghost_key(s);
    // Apply finds ghost rows by the table's key: the ghost's primary key
    // must stand on the same columns.
    const Oid ghost = s.ghost;
    const Oid key_index = s.key_index;
    pg::call([&] {
        Relation g = table_open(ghost, AccessShareLock);
        Oid pk = RelationGetPrimaryKeyIndex(g);
        bool same = OidIsValid(pk);
        if (same) {
            Relation gi = relation_open(pk, AccessShareLock);
            Relation ti = relation_open(key_index, AccessShareLock);
            same = gi->rd_index->indnkeyatts == ti->rd_index->indnkeyatts;
            for (int i = 0; same && i < gi->rd_index->indnkeyatts; i++)
                same = gi->rd_index->indkey.values[i] == ti->rd_index->indkey.values[i];
            relation_close(ti, AccessShareLock);
            relation_close(gi, AccessShareLock);
        }
        table_close(g, AccessShareLock);
        if (!same)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("statements that change the table's key columns are not "
                                   "supported online yet")));
    });
    // Compiling the transform now refuses, before any copy, what apply could
    // not do row by row.
    pg::call([&] {
        GhostRows rows;
        rows.open(table, ghost, s.key, alter, s.task.statement.c_str());
        rows.close();
    });
    set_aside_ghost_indexes(s);
    keep_autovacuum_away("heliosmig." + s.ghost_name);
}

} // namespace heliosmig::engine
