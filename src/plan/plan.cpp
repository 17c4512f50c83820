// Classification and planning (see include/heliosmig/plan/plan.hpp).
#include "heliosmig/plan/plan.hpp"
#include "heliosmig/plan/rewrite_checks.hpp"
#include "heliosmig/plan/concurrent_steps.hpp"
#include "heliosmig/plan/probe.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/settings/settings.hpp"

extern "C" {
#include "commands/tablecmds.h"
#include "storage/lock.h"
#include "storage/lockdefs.h"
}

#include <fmt/format.h>

#include <algorithm>

namespace heliosmig::plan {

namespace {

constexpr const char* kCatalogOnly = "catalog-only change";

struct Verdict {
    OperationClass cls;
    std::string reason;
};

// Severity order for combining subcommands: the worst one decides.
int severity(OperationClass cls) {
    switch (cls) {
    case OperationClass::Metadata:
        return 0;
    case OperationClass::Other:
        return 1;
    case OperationClass::NativeConcurrent:
        return 2;
    case OperationClass::Rewrite:
        return 3;
    }
    return 3;
}

// Subcommands that change only the catalog whatever the table holds.
bool is_catalog_only(AlterTableType t) {
    switch (t) {
    case AT_DropColumn:
    case AT_ColumnDefault:
    case AT_DropNotNull:
    case AT_SetStatistics:
    case AT_SetOptions:
    case AT_ResetOptions:
    case AT_SetStorage:
    case AT_SetCompression:
    case AT_DropConstraint:
    case AT_SetRelOptions:
    case AT_ResetRelOptions:
    case AT_ReplaceRelOptions:
    case AT_EnableTrig:
    case AT_EnableAlwaysTrig:
    case AT_EnableReplicaTrig:
    case AT_DisableTrig:
    case AT_EnableTrigAll:
    case AT_DisableTrigAll:
    case AT_EnableTrigUser:
    case AT_DisableTrigUser:
    case AT_EnableRule:
    case AT_EnableAlwaysRule:
    case AT_EnableReplicaRule:
    case AT_DisableRule:
    case AT_ReplicaIdentity:
    case AT_EnableRowSecurity:
    case AT_DisableRowSecurity:
    case AT_ForceRowSecurity:
    case AT_NoForceRowSecurity:
    case AT_ChangeOwner:
    case AT_ClusterOn:
    case AT_DropCluster:
    case AT_AlterConstraint:
    case AT_DropOids:
    case AT_DropExpression:
    case AT_GenericOptions:
    case AT_AddIdentity:
    case AT_SetIdentity:
    case AT_DropIdentity:
    case AT_DropInherit:
    case AT_DropOf:
    case AT_DetachPartitionFinalize:
        return true;
    default:
        return false;
    }
}

Verdict classify_add_constraint(const Constraint* con) {
    switch (con->contype) {
    case CONSTR_CHECK:
    case CONSTR_FOREIGN:
        if (con->skip_validation)
            return {OperationClass::Metadata, "a NOT VALID constraint is not checked against "
                                              "existing rows"};
        return {OperationClass::NativeConcurrent,
                fmt::format("ADD CONSTRAINT {} scans the whole table under a lock that blocks "
                            "writes",
                            con->contype == CONSTR_CHECK ? "CHECK" : "FOREIGN KEY")};
    case CONSTR_UNIQUE:
    case CONSTR_PRIMARY:
    case CONSTR_EXCLUSION:
        if (con->indexname != nullptr && con->contype == CONSTR_UNIQUE)
            return {OperationClass::Metadata, "the constraint takes over an existing index"};
        return {OperationClass::NativeConcurrent,
                "the constraint's index is built while writes are blocked"};
    default:
        return {OperationClass::Other, "heliosmig does not classify this constraint kind"};
    }
}

Verdict classify_subcommand(const AlterTableCmd* cmd) {
    const AlterTableType t = cmd->subtype;
    if (is_catalog_only(t))
        return {OperationClass::Metadata, kCatalogOnly};
    switch (t) {
    case AT_ValidateConstraint:
        return {OperationClass::Metadata,
                "VALIDATE CONSTRAINT scans without blocking writes (SHARE UPDATE EXCLUSIVE)"};
    case AT_SetTableSpace:
    case AT_SetLogged:
    case AT_SetUnLogged:
    case AT_SetAccessMethod:
        return {OperationClass::Rewrite, "PostgreSQL copies the whole table to new storage"};
    case AT_SetNotNull:
        return {OperationClass::NativeConcurrent,
                "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE"};
    case AT_AddConstraint:
        return classify_add_constraint(castNode(Constraint, cmd->def));
    case AT_AddIndex:
    case AT_AddIndexConstraint:
        return {OperationClass::NativeConcurrent, "the index is built while writes are blocked"};
    case AT_AddColumn: {
        const ColumnDef* col = castNode(ColumnDef, cmd->def);
        ListCell* c;
        foreach (c, col->constraints) {
            const Constraint* con = lfirst_node(Constraint, c);
            if (con->contype == CONSTR_FOREIGN && !con->skip_validation)
                return {OperationClass::NativeConcurrent,
                        "the new column's foreign key is validated by scanning the table"};
        }
        return {OperationClass::Metadata, ""}; // the probe decides the rest
    }
    case AT_AlterColumnType:
        return {OperationClass::Metadata, ""}; // the probe decides
    default:
        return {OperationClass::Other,
                "heliosmig does not know how to run this ALTER TABLE subcommand online"};
    }
}

void consider(Verdict& worst, Verdict v) {
    if (severity(v.cls) > severity(worst.cls) || (worst.reason.empty() && v.cls == worst.cls))
        worst = std::move(v);
}

Verdict classify_alter_table(const Statement& st) {
    const AlterTableStmt* stmt = castNode(AlterTableStmt, st.tree);
    Verdict worst{OperationClass::Metadata, ""};
    bool probe = false;
    ListCell* cell;
    foreach (cell, stmt->cmds) {
        const AlterTableCmd* cmd = lfirst_node(AlterTableCmd, cell);
        consider(worst, classify_subcommand(cmd));
        probe = probe || needs_probe(cmd);
    }
    if (probe && severity(worst.cls) < severity(OperationClass::Rewrite)) {
        ProbeResult answer = probe_alter_table(st.relid, stmt, st.source);
        if (answer.rewrites_table)
            consider(worst, {OperationClass::Rewrite,
                             "PostgreSQL would rewrite the whole table under ACCESS EXCLUSIVE "
                             "(asked of PostgreSQL on an empty copy of the table)"});
        else if (answer.builds_index)
            consider(worst, {OperationClass::NativeConcurrent,
                             "PostgreSQL would build an index while writes are blocked"});
        else if (answer.validates_constraint)
            consider(worst, {OperationClass::NativeConcurrent,
                             "PostgreSQL would check a constraint by scanning the table while "
                             "writes are blocked"});
    }
    if (worst.cls == OperationClass::Metadata &&
        (worst.reason.empty() || worst.reason == kCatalogOnly))
        worst.reason = "catalog-only change: no row is read or rewritten (asked of PostgreSQL)";
    return worst;
}

Verdict classify(const Statement& st) {
    switch (st.kind) {
    case StatementKind::AlterTable:
        return classify_alter_table(st);
    case StatementKind::Rename:
        return {OperationClass::Metadata, "renaming changes only the catalog"};
    case StatementKind::DropIndex:
        return {OperationClass::Metadata, "dropping an index changes only the catalog"};
    case StatementKind::CreateIndex:
        return {OperationClass::NativeConcurrent,
                "an index build reads the whole table; heliosmig builds it CONCURRENTLY"};
    }
    return {OperationClass::Other, ""};
}

int lock_for(const Statement& st) {
    switch (st.kind) {
    case StatementKind::AlterTable: {
        List* cmds = castNode(AlterTableStmt, st.tree)->cmds;
        return pg::call([&] { return AlterTableGetLockLevel(cmds); });
    }
    case StatementKind::CreateIndex:
        return castNode(IndexStmt, st.tree)->concurrent ? ShareUpdateExclusiveLock : ShareLock;
    case StatementKind::Rename:
    case StatementKind::DropIndex:
        return AccessExclusiveLock;
    }
    return AccessExclusiveLock;
}

// Orders the lock names the steps report, weakest first.
int lock_rank(const std::string& lock) {
    if (lock == "AccessExclusiveLock")
        return 3;
    if (lock == "ShareRowExclusiveLock")
        return 2;
    if (lock == "ShareUpdateExclusiveLock")
        return 1;
    return 0;
}

std::string lock_safety_step(const std::string& lock, const std::string& table) {
    return fmt::format("take {} on {}: each attempt waits at most heliosmig.lock_timeout ({} ms), "
                       "then backs off with jitter and retries (up to {} times), so the "
                       "application's queries never queue behind it",
                       lock, table, settings::lock_timeout_ms(), settings::lock_retries());
}

} // namespace

std::string_view class_name(OperationClass cls) {
    switch (cls) {
    case OperationClass::Metadata:
        return "metadata";
    case OperationClass::NativeConcurrent:
        return "native_concurrent";
    case OperationClass::Rewrite:
        return "rewrite";
    case OperationClass::Other:
        return "other";
    }
    return "other";
}

Plan make_plan(const Statement& st, const MigrationOptions& options) {
    Verdict verdict = classify(st);
    Plan plan;
    plan.cls = verdict.cls;
    plan.reason = verdict.reason;
    plan.lock_mode = lock_for(st);
    const int lock = plan.lock_mode;
    plan.lock_name = pg::call([&] { return GetLockmodeName(DEFAULT_LOCKMETHOD, lock); });
    plan.copies_data = plan.cls == OperationClass::Rewrite;

    if (options.mode == Mode::Offline) {
        plan.supported = true;
        plan.runs_online = plan.cls == OperationClass::Metadata;
        plan.steps = {lock_safety_step(plan.lock_name, st.table_name),
                      fmt::format("run the statement as PostgreSQL does{}",
                                  plan.runs_online
                                      ? ""
                                      : ", holding the lock for the whole scan or rewrite "
                                        "(offline: the table is blocked meanwhile)"),
                      "commit, releasing the lock"};
        return plan;
    }

    switch (plan.cls) {
    case OperationClass::Metadata:
        plan.supported = true;
        plan.runs_online = true;
        plan.steps = {lock_safety_step(plan.lock_name, st.table_name),
                      "run the statement: a catalog change that holds the lock for "
                      "milliseconds",
                      "commit, releasing the lock"};
        break;
    case OperationClass::NativeConcurrent: {
        std::string why_not;
        if (!steps_supported(st, why_not)) {
            plan.unsupported_why = why_not;
            plan.steps = {"add the constraint NOT VALID, or build its index CONCURRENTLY",
                          "validate without blocking writes (SHARE UPDATE EXCLUSIVE)",
                          "attach under a short lock with lock_timeout and retries"};
            break;
        }
        // Planned on a copy: planning names what the steps create in the tree.
        Statement copy = st;
        copy.tree = static_cast<Node*>(pg::call([&] { return copyObjectImpl(st.tree); }));
        plan.supported = true;
        plan.runs_online = true;
        plan.asynchronous = true;
        plan.steps = {"record the migration; a background worker starts once this transaction "
                      "commits"};
        int strongest = 0;
        for (const Step& step : plan_steps(copy)) {
            plan.steps.push_back(
                fmt::format("{}: {} ({})", step.state, step.description,
                            step.lock_mode == "none" ? "no lock" : step.lock_mode));
            const int rank = lock_rank(step.lock_mode);
            if (rank > strongest) {
                strongest = rank;
                plan.lock_name = step.lock_mode;
            }
        }
        plan.steps.push_back("on failure or rollback: undo every step (no INVALID index, no NOT "
                             "VALID constraint is left)");
        break;
    }
    case OperationClass::Rewrite:
        plan.unsupported_why = rewrite_blocker(st);
        plan.supported = plan.unsupported_why.empty();
        plan.runs_online = true;
        plan.asynchronous = plan.supported;
        plan.lock_name = "AccessExclusiveLock";
        plan.steps = {
            "record the migration; a background worker starts once this transaction commits",
            "PREPARING: create heliosmig.ghost_<oid> with the table's exact layout, its indexes "
            "and CHECK constraints, apply the statement to it (empty: instant); create a logical "
            "replication slot (no lock on the table)",
            "COPYING: copy rows in primary-key order, chunk_size rows per short transaction, "
            "transformed as ALTER TABLE would; between chunks apply the captured changes "
            "(ACCESS SHARE on the table)",
            "SYNCHRONIZING: apply captured changes until caught up",
            "VALIDATING: SHARE lock (lock_timeout, retries) only to apply the last changes; "
            "compare row counts of table and ghost in one snapshot",
            "READY: wait for heliosmig.cutover() unless auto_cutover",
            "CUTOVER: ACCESS EXCLUSIVE with lock_timeout and retries, apply the last changes, "
            "swap storage so the table keeps its OID, run the statement on the emptied table "
            "(milliseconds); the old storage is kept in heliosmig.old_<oid>_<id> for "
            "heliosmig.retention",
            "on failure or rollback before cutover: drop the ghost, the slot and everything "
            "else the migration created; the table is untouched"};
        break;
    case OperationClass::Other:
        plan.unsupported_why = "running this statement as a tracked migration is not supported";
        plan.steps = {lock_safety_step(plan.lock_name, st.table_name),
                      "run the statement as PostgreSQL does"};
        break;
    }
    return plan;
}

} // namespace heliosmig::plan
