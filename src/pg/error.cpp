// The C++ <-> PostgreSQL error boundary (see include/heliosmig/pg/error.hpp).
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "utils/elog.h"
#include "utils/memutils.h"
}

#include <cstring>

namespace heliosmig::pg {

namespace {

std::string or_empty(const char* s) {
    return s ? std::string(s) : std::string();
}

} // namespace

Error Error::from_error_data(ErrorData* edata) {
    Error error(edata->sqlerrcode, or_empty(edata->message), or_empty(edata->detail),
                or_empty(edata->hint), or_empty(edata->context));
    error.data_ = edata;
    return error;
}

void Error::locate_in(const std::string& query) {
    if (data_ == nullptr || data_->cursorpos <= 0 || data_->internalquery != nullptr)
        return;
    const char* text = query.c_str();
    ErrorData* data = data_;
    call([&] {
        data->internalquery = pstrdup(text);
        data->internalpos = data->cursorpos;
        data->cursorpos = 0;
    });
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
    { fn(ctx); }
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

namespace {

// Copies without raising on out-of-memory: this runs while an error is being
// reported, where a second error would be lost.
char* copy_or_null(const std::string& s) {
    if (s.empty())
        return nullptr;
    char* copy = static_cast<char*>(
        MemoryContextAllocExtended(CurrentMemoryContext, s.size() + 1, MCXT_ALLOC_NO_OOM));
    if (copy != nullptr)
        std::memcpy(copy, s.c_str(), s.size() + 1);
    return copy;
}

} // namespace

// The handlers only move or copy into storage that cannot fail; PostgreSQL
// memory is allocated after them, so nothing can longjmp out of a handler.
bool capture_exceptions(void (*fn)(void*), void* ctx, PendingError* pending) noexcept {
    std::optional<Error> error;
    char what[512] = "unknown C++ exception";
    try {
        fn(ctx);
        return true;
    } catch (Error& e) {
        error.emplace(std::move(e));
    } catch (const std::exception& e) {
        strlcpy(what, e.what(), sizeof what);
    } catch (...) {
    }

    *pending = PendingError{nullptr, ERRCODE_INTERNAL_ERROR, nullptr, nullptr, nullptr};
    if (error && error->error_data() != nullptr) {
        pending->data = error->error_data();
        return false;
    }
    if (error) {
        pending->sqlerrcode = error->sqlerrcode();
        pending->message = copy_or_null(error->message());
        pending->detail = copy_or_null(error->detail());
        pending->hint = copy_or_null(error->hint());
    } else {
        pending->message = copy_or_null(what);
    }
    return false;
}

void raise_pending(const PendingError& p) {
    if (p.data != nullptr)
        ReThrowError(p.data);
    ereport(ERROR,
            (errcode(p.sqlerrcode), errmsg_internal("%s", p.message ? p.message : "out of memory"),
             p.detail ? errdetail_internal("%s", p.detail) : 0,
             p.hint ? errhint("%s", p.hint) : 0));
    pg_unreachable();
}

} // namespace heliosmig::pg
