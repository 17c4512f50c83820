// Internal subtransactions (see include/heliosmig/pg/subtransaction.hpp).
#include "heliosmig/pg/subtransaction.hpp"

extern "C" {
#include "access/xact.h"
#include "utils/resowner.h"
}

namespace heliosmig::pg {

// Follows PL/pgSQL's exec_stmt_block: the subtransaction's locks, snapshots and
// catalog changes go with it on rollback; the caller's memory context and
// resource owner are put back on both paths. fn owns no C++ objects. Errors
// raised outside fn (starting or ending the subtransaction) propagate: the
// caller runs this under pg::call, so they reach C++ as a pg::Error.
ErrorData* run_in_subtransaction(bool (*fn)(void*), void* ctx) {
    MemoryContext caller_context = CurrentMemoryContext;
    ResourceOwner caller_owner = CurrentResourceOwner;
    ErrorData* volatile edata = nullptr;
    volatile bool keep = false;

    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(caller_context);

    PG_TRY();
    { keep = fn(ctx); }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        edata = CopyErrorData();
        FlushErrorState();
    }
    PG_END_TRY();

    if (keep && edata == nullptr)
        ReleaseCurrentSubTransaction();
    else
        RollbackAndReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(caller_context);
    CurrentResourceOwner = caller_owner;
    return edata;
}

} // namespace heliosmig::pg
