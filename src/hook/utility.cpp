// The ProcessUtility hook entry point (see include/heliosmig/hook/utility.hpp).
//
// This frame is PostgreSQL's: it owns no C++ objects. The C++ decision runs
// under pg::run_guarded (exceptions become ereport after its frames are gone);
// the previous hook is called from here, outside any C++ try.
#include "heliosmig/hook/utility.hpp"
#include "heliosmig/hook/intercept.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/utility.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "tcop/cmdtag.h"
#include "tcop/utility.h"
}

namespace heliosmig::hook {

namespace {

ProcessUtility_hook_type previous_hook = nullptr;

void call_previous(PlannedStmt* pstmt, const char* query_string, bool read_only_tree,
                   ProcessUtilityContext context, ParamListInfo params, QueryEnvironment* env,
                   DestReceiver* dest, QueryCompletion* qc) {
    if (previous_hook)
        previous_hook(pstmt, query_string, read_only_tree, context, params, env, dest, qc);
    else
        standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params, env, dest,
                                qc);
}

// Cheap checks first: most utility statements are none of heliosmig's business,
// and transaction control must work even in an aborted transaction.
bool worth_examining(Node* parsetree) {
    switch (nodeTag(parsetree)) {
    case T_AlterTableStmt:
    case T_RenameStmt:
    case T_DropStmt:
    case T_IndexStmt:
        break;
    default:
        return false;
    }
    if (pg::executing_internally() || creating_extension || IsBinaryUpgrade)
        return false;
    // A read-only transaction or a standby refuses DDL itself, in its own words.
    if (!IsTransactionState() || IsAbortedTransactionBlockState() || XactReadOnly ||
        RecoveryInProgress())
        return false;
    return OidIsValid(get_extension_oid("heliosmig", true));
}

CommandTag tag_for(Node* parsetree) {
    switch (nodeTag(parsetree)) {
    case T_IndexStmt:
        return CMDTAG_CREATE_INDEX;
    case T_DropStmt:
        return CMDTAG_DROP_INDEX;
    default:
        return CMDTAG_ALTER_TABLE;
    }
}

void heliosmig_process_utility(PlannedStmt* pstmt, const char* query_string, bool read_only_tree,
                               ProcessUtilityContext context, ParamListInfo params,
                               QueryEnvironment* env, DestReceiver* dest, QueryCompletion* qc) {
    Node* parsetree = pstmt->utilityStmt;
    if (!worth_examining(parsetree)) {
        call_previous(pstmt, query_string, read_only_tree, context, params, env, dest, qc);
        return;
    }

    Action action = Action::PassThrough;
    char* notice = nullptr;
    pg::run_guarded([&] {
        Outcome outcome = intercept(parsetree, query_string, pstmt->stmt_location, pstmt->stmt_len,
                                    context == PROCESS_UTILITY_TOPLEVEL);
        action = outcome.action;
        if (!outcome.notice.empty())
            notice = pstrdup(outcome.notice.c_str());
    });

    if (action == Action::PassThrough) {
        call_previous(pstmt, query_string, read_only_tree, context, params, env, dest, qc);
        return;
    }
    if (notice != nullptr)
        ereport(NOTICE, (errmsg_internal("%s", notice)));
    if (qc != nullptr)
        SetQueryCompletion(qc, tag_for(parsetree), 0);
}

} // namespace

void Init() {
    previous_hook = ProcessUtility_hook;
    ProcessUtility_hook = heliosmig_process_utility;
}

} // namespace heliosmig::hook
