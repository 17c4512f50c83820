// The cutover (see DESIGN.md "Cutover (keeps the table's OID)"):
//
//   before the lock: catch up, and create the retained table R empty with the
//   table's exact layout;
//   one transaction: ACCESS EXCLUSIVE on the table T with lock_timeout and
//   retries (never queueing in front of the application), apply the last
//   captured changes to the ghost G, swap T's storage into R, run the user's
//   ALTER on the now empty T (PostgreSQL does every catalog change itself, in
//   milliseconds), swap G's storage into T, drop G;
//   after commit: validate foreign keys that had to be re-added NOT VALID.
#include "heliosmig/catalog/rewrite_store.hpp"
#include "heliosmig/decode/change_stream.hpp"
#include "heliosmig/engine/cleanup.hpp"
#include "heliosmig/engine/ghost_table.hpp"
#include "heliosmig/engine/lock_retry.hpp"
#include "heliosmig/engine/relation_clone.hpp"
#include "heliosmig/engine/rewrite_session.hpp"
#include "heliosmig/engine/storage_swap.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/spi.hpp"
#include "heliosmig/pg/subtransaction.hpp"
#include "heliosmig/pg/transaction.hpp"
#include "heliosmig/pg/utility.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

#include <fmt/format.h>

namespace heliosmig::engine {

using catalog::State;

namespace {

// A foreign key that PostgreSQL's ALTER would re-validate against the empty
// table at cutover (it references, or is made of, a column whose type
// changes): dropped before the ALTER, re-added NOT VALID after, validated
// once the cutover has committed.
struct ForeignKey {
    std::string table; // the referencing table, qualified and quoted
    Oid table_oid = InvalidOid;
    std::string name; // quoted
    std::string definition;
    bool validated = true;
};

std::vector<ForeignKey> foreign_keys_on_changed_columns(const RewriteSession& s,
                                                        AlterTableStmt* alter) {
    std::vector<std::string> columns;
    ListCell* cell;
    foreach (cell, alter->cmds) {
        AlterTableCmd* cmd = lfirst_node(AlterTableCmd, cell);
        if (cmd->subtype == AT_AlterColumnType)
            columns.emplace_back(cmd->name);
    }
    std::vector<ForeignKey> keys;
    if (columns.empty())
        return keys;
    // The column names travel as parameters, one each: no literal to quote.
    std::vector<pg::Value> params{std::to_string(s.task.table_oid)};
    std::string names = "ARRAY[";
    for (size_t i = 0; i < columns.size(); i++) {
        params.emplace_back(columns[i]);
        names += fmt::format("{}${}::text", i ? ", " : "", i + 2);
    }
    names += "]";
    pg::Spi spi;
    pg::Rows rows = spi.query(
        fmt::format("WITH changed AS (SELECT a.attnum FROM pg_catalog.pg_attribute a"
                    "                  WHERE a.attrelid = $1::oid AND a.attname = ANY ({}))",
                    names) +
            "SELECT c.conrelid::regclass::text, c.conrelid::text, "
            "pg_catalog.quote_ident(c.conname),"
            "       pg_catalog.pg_get_constraintdef(c.oid), c.convalidated::text"
            "  FROM pg_catalog.pg_constraint c"
            " WHERE c.contype = 'f'"
            "   AND ((c.confrelid = $1::oid AND c.confkey && ARRAY(SELECT attnum FROM changed))"
            "     OR (c.conrelid = $1::oid AND c.conkey && ARRAY(SELECT attnum FROM changed)))"
            " ORDER BY c.oid",
        params);
    for (const pg::Row& r : rows.rows) {
        ForeignKey key;
        key.table = *r[0];
        key.table_oid = static_cast<Oid>(std::stoul(*r[1]));
        key.name = *r[2];
        key.definition = *r[3];
        key.validated = *r[4] == "true";
        keys.push_back(std::move(key));
    }
    return keys;
}

// R is created before the lock, from the table's layout as it is now (with
// its missing values); the swap checks under the lock that nothing changed.
Oid prepare_retained_table(RewriteSession& s) {
    const std::string qualified = retained_table_name(s.task.table_oid, s.task.id);
    const std::string name = qualified.substr(qualified.find('.') + 1);
    return pg::in_worker_transaction([&] {
        const Oid table = s.task.table_oid;
        Oid retained = pg::call([&] {
            Oid existing = get_relname_relid(name.c_str(), get_namespace_oid("heliosmig", false));
            if (OidIsValid(existing))
                return existing;
            // R gets the table's indexes (empty): the swap then gives T's
            // index storage to R instead of leaving it to be unlinked by the
            // cutover's commit, under the lock (about 100 ms for a few tens
            // of MB of indexes), and the retained data stays indexed.
            LockRelationOid(table, AccessShareLock);
            Oid created = create_layout_clone(table, name.c_str(), true);
            clone_indexes_and_checks(table, created);
            return created;
        });
        keep_autovacuum_away(qualified);
        catalog::set_retained_table(s.task.id, qualified);
        return retained;
    });
}

// Raw PostgreSQL: the TOAST table of a heap (InvalidOid if none). The
// caller holds a lock on the heap, so the answer stays true.
Oid toast_of(Oid heap) {
    HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(heap));
    if (!HeapTupleIsValid(tuple))
        elog(ERROR, "cache lookup failed for relation %u", heap);
    const Oid toast = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->reltoastrelid;
    ReleaseSysCache(tuple);
    return toast;
}

AlterTableStmt* statement_on_table(const RewriteSession& s) {
    AlterTableStmt* alter = parse_alter(s.task.statement);
    const Oid table = s.task.table_oid;
    pg::call([&] {
        alter->relation =
            makeRangeVar(get_namespace_name(get_rel_namespace(table)), get_rel_name(table), -1);
        alter->relation->inh = false;
    });
    return alter;
}

} // namespace

bool run_cutover(RewriteSession& s) {
    const Oid retained = prepare_retained_table(s);
    if (!catch_up(s))
        return false; // still far behind: try again rather than apply much under the lock
    const Oid table = s.task.table_oid;
    const Oid ghost = s.ghost;
    std::vector<ForeignKey> foreign_keys;
    bool committed = false;

    RoundResult round = pg::in_worker_transaction([&] {
        AlterTableStmt* alter = statement_on_table(s);
        foreign_keys = foreign_keys_on_changed_columns(s, alter);
        // Every lock is taken like every heliosmig lock: a short lock_timeout,
        // then let the queue drain, then try again. G, R and the TOAST tables
        // first (autovacuum may be working on them: waiting for it must not
        // happen while the table is locked), then the table, then the
        // referencing tables whose foreign keys are re-created, so that a
        // busy one cannot hold the table's lock hostage.
        const double started = now_ms();
        double locked = 0;
        LockWait wait = run_with_lock_retries(fmt::format("cutover of {}", s.task.table_name), [&] {
            pg::call([&] {
                for (Oid heap : {ghost, retained, table}) {
                    LockRelationOid(heap, AccessExclusiveLock);
                    const Oid toast = toast_of(heap);
                    if (OidIsValid(toast))
                        LockRelationOid(toast, AccessExclusiveLock);
                }
                for (const ForeignKey& key : foreign_keys)
                    if (key.table_oid != table)
                        LockRelationOid(key.table_oid, AccessExclusiveLock);
            });
            locked = now_ms();
        });
        // Every change committed before the lock is in WAL: apply all of it
        // before the first catalog change of this transaction (decoding reads
        // catalogs with historic snapshots and must not see ours half-done).
        RoundResult tail = apply_to_end(s);
        {
            pg::Spi spi;
            for (const ForeignKey& key : foreign_keys)
                spi.query(fmt::format("ALTER TABLE {} DROP CONSTRAINT {}", key.table, key.name));
        }
        pg::call([&] { cutover_swap_storage(table, retained, SwapKind::ToRetained); });
        pg::execute_utility(reinterpret_cast<Node*>(alter), s.task.statement);
        pg::call([&] {
            require_same_layout(table, ghost, false);
            cutover_swap_storage(table, ghost, SwapKind::FromGhost);
        });
        {
            pg::Spi spi;
            spi.query(fmt::format("DROP TABLE heliosmig.{}", s.ghost_name));
            for (const ForeignKey& key : foreign_keys)
                // pg_get_constraintdef already ends in NOT VALID for a key
                // that was not validated; a validated one is re-added NOT
                // VALID here and validated after the commit.
                spi.query(fmt::format("ALTER TABLE {} ADD CONSTRAINT {} {}{}", key.table, key.name,
                                      key.definition, key.validated ? " NOT VALID" : ""));
        }
        const double held = now_ms() - locked;
        catalog::record_lock_wait(s.task.id, wait.attempts, wait.waited_ms);
        catalog::log_event(
            s.task.id, catalog::LogLevel::Info, "cutover",
            fmt::format("ACCESS EXCLUSIVE after {} attempt(s) ({:.1f} ms waiting), held {:.1f} ms; "
                        "{} last change(s) applied under the lock",
                        wait.attempts, wait.waited_ms, held, tail.applied),
            fmt::format(R"({{"attempts": {}, "waited_ms": {:.3f}, "held_ms": {:.3f}, )"
                        R"("total_ms": {:.3f}, "tail_changes": {}}})",
                        wait.attempts, wait.waited_ms, held, now_ms() - started, tail.applied));
        // Going back would need the writes made since cutover replayed into
        // the old storage: not built, so say so rather than offer it.
        catalog::set_rollback_feasibility(s.task.id, "IMPOSSIBLE");
        committed = catalog::transition_from(s.task.id, State::Cutover, State::Completed,
                                             "the table has its new layout and kept its OID; the "
                                             "old storage is kept as " +
                                                 retained_table_name(s.task.table_oid, s.task.id));
        if (!committed)
            pg::raise(ERRCODE_QUERY_CANCELED, "the migration was rolled back before its cutover");
        return tail;
    });
    (void)round;

    for (const ForeignKey& key : foreign_keys) {
        if (!key.validated)
            continue;
        // The cutover has committed: a foreign key that no longer holds stays
        // NOT VALID, with a warning, as if it had been added NOT VALID.
        pg::in_worker_transaction([&] {
            std::optional<pg::Error> failed = pg::in_subtransaction([&] {
                pg::Spi spi;
                spi.query(
                    fmt::format("ALTER TABLE {} VALIDATE CONSTRAINT {}", key.table, key.name));
            });
            if (failed)
                catalog::log_event(s.task.id, catalog::LogLevel::Warning, "foreign_key_not_valid",
                                   fmt::format("foreign key {} on {} stays NOT VALID: {}", key.name,
                                               key.table, failed->message()));
        });
    }
    return committed;
}

} // namespace heliosmig::engine
