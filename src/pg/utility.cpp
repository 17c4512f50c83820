// Running utility statements from C++ (see include/heliosmig/pg/utility.hpp).
#include "heliosmig/pg/utility.hpp"
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "access/xact.h"
#include "tcop/dest.h"
#include "tcop/utility.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
}

namespace heliosmig::pg {

namespace {

int internal_depth = 0;

struct RunContext {
    Node* statement;
    const char* source;
};

// Raw PostgreSQL: called under pg::call, owns no C++ objects.
void run(void* arg) {
    auto* ctx = static_cast<RunContext*>(arg);
    PlannedStmt* planned = makeNode(PlannedStmt);
    planned->commandType = CMD_UTILITY;
    planned->canSetTag = false;
    planned->utilityStmt = ctx->statement;
    planned->stmt_location = -1;
    planned->stmt_len = 0;
    ProcessUtility(planned, ctx->source, true, PROCESS_UTILITY_QUERY, nullptr, nullptr,
                   None_Receiver, nullptr);
    CommandCounterIncrement();
}

struct ToplevelContext {
    Node* statement;
    const char* source;
    MemoryContext statement_context;
};

// Raw PostgreSQL, as exec_simple_query does for one statement: a transaction
// with an active snapshot, which CONCURRENTLY commands pop themselves. They
// also commit and start transactions inside, so the statement's tree must
// live in a context of its own (like the client's statement in
// MessageContext), not in one a commit frees.
void run_toplevel(void* arg) {
    auto* ctx = static_cast<ToplevelContext*>(arg);
    MemoryContext caller_context = CurrentMemoryContext;
    StartTransactionCommand();
    MemoryContextSwitchTo(ctx->statement_context);
    PushActiveSnapshot(GetTransactionSnapshot());
    PlannedStmt* planned = makeNode(PlannedStmt);
    planned->commandType = CMD_UTILITY;
    planned->canSetTag = false;
    planned->utilityStmt = static_cast<Node*>(copyObjectImpl(ctx->statement));
    planned->stmt_location = -1;
    planned->stmt_len = 0;
    ProcessUtility(planned, ctx->source, false, PROCESS_UTILITY_TOPLEVEL, nullptr, nullptr,
                   None_Receiver, nullptr);
    if (ActiveSnapshotSet())
        PopActiveSnapshot();
    CommitTransactionCommand();
    MemoryContextSwitchTo(caller_context);
}

} // namespace

void run_toplevel_utility(Node* statement, const std::string& source) {
    ToplevelContext ctx{statement, source.c_str(), nullptr};
    ctx.statement_context = call([] {
        return AllocSetContextCreate(TopMemoryContext, "heliosmig statement",
                                     ALLOCSET_DEFAULT_SIZES);
    });
    internal_depth++;
    try {
        call_raw(run_toplevel, &ctx);
    } catch (...) {
        internal_depth--;
        MemoryContextDelete(ctx.statement_context);
        throw;
    }
    internal_depth--;
    MemoryContextDelete(ctx.statement_context);
}

bool executing_internally() {
    return internal_depth > 0;
}

void execute_utility(Node* statement, const std::string& source) {
    RunContext ctx{statement, source.c_str()};
    internal_depth++;
    try {
        call_raw(run, &ctx);
    } catch (...) {
        internal_depth--;
        throw;
    }
    internal_depth--;
}

} // namespace heliosmig::pg
