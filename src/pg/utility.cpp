// Running utility statements from C++ (see include/heliosmig/pg/utility.hpp).
#include "heliosmig/pg/utility.hpp"
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "access/xact.h"
#include "tcop/dest.h"
#include "tcop/utility.h"
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

} // namespace

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
