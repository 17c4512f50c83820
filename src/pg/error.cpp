// The C++ <-> PostgreSQL error boundary (see include/heliosmig/pg/error.hpp).
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "utils/elog.h"
#include "utils/memutils.h"
}

namespace heliosmig::pg {

namespace {

std::string or_empty(const char* s) {
    return s ? std::string(s) : std::string();
}

char* pstrdup_or_null(const std::string& s) {
    return s.empty() ? nullptr : pstrdup(s.c_str());
}

} // namespace

Error Error::from_error_data(ErrorData* edata) {
    Error error(edata->sqlerrcode, or_empty(edata->message), or_empty(edata->detail),
                or_empty(edata->hint), or_empty(edata->context));
    FreeErrorData(edata);
    return error;
}

void raise(int sqlerrcode, std::string message, std::string detail, std::string hint) {
    throw Error(sqlerrcode, std::move(message), std::move(detail), std::move(hint));
}

// Safe because fn owns no C++ objects: the longjmp into PG_CATCH skips nothing
// but PostgreSQL frames, and the error state is flushed before C++ sees it.
void call_raw(void (*fn)(void*), void* ctx) {
    MemoryContext caller_context = CurrentMemoryContext;
    ErrorData* volatile edata = nullptr;

    PG_TRY();
    {
        fn(ctx);
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        edata = CopyErrorData();
        FlushErrorState();
    }
    PG_END_TRY();

    if (edata != nullptr)
        throw Error::from_error_data(edata);
}

bool capture_exceptions(void (*fn)(void*), void* ctx, PendingError* pending) noexcept {
    try {
        fn(ctx);
        return true;
    } catch (const Error& e) {
        pending->sqlerrcode = e.sqlerrcode();
        pending->message = pstrdup(e.message().c_str());
        pending->detail = pstrdup_or_null(e.detail());
        pending->hint = pstrdup_or_null(e.hint());
        pending->context = pstrdup_or_null(e.context());
    } catch (const std::exception& e) {
        pending->sqlerrcode = ERRCODE_INTERNAL_ERROR;
        pending->message = pstrdup(e.what());
    } catch (...) {
        pending->sqlerrcode = ERRCODE_INTERNAL_ERROR;
        pending->message = pstrdup("unknown C++ exception");
    }
    return false;
}

void raise_pending(const PendingError& p) {
    ereport(ERROR, (errcode(p.sqlerrcode), errmsg_internal("%s", p.message),
                    p.detail ? errdetail_internal("%s", p.detail) : 0,
                    p.hint ? errhint("%s", p.hint) : 0,
                    p.context ? errcontext("%s", p.context) : 0));
    pg_unreachable();
}

} // namespace heliosmig::pg
