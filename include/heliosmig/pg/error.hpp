// The C++ <-> PostgreSQL error boundary.
//
// PostgreSQL reports errors by longjmp (ereport), which skips C++ destructors;
// C++ reports errors by exceptions, which must never unwind through a
// PostgreSQL frame. The two meet only here:
//  - pg::call runs raw PostgreSQL code and turns an ERROR into a pg::Error;
//  - invoke_guarded (behind HM_FUNCTION and the hook entry points) turns any
//    exception back into an ereport(ERROR) once every C++ object is destroyed.
// A pg::Error means the current (sub)transaction must be aborted: only
// pg::in_subtransaction may swallow one, because it rolls the subtransaction back.
#pragma once

#include "heliosmig/pg/postgres.hpp"

#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace heliosmig::pg {

class Error : public std::exception {
public:
    Error(int sqlerrcode, std::string message, std::string detail = {}, std::string hint = {},
          std::string context = {})
        : sqlerrcode_(sqlerrcode), message_(std::move(message)), detail_(std::move(detail)),
          hint_(std::move(hint)), context_(std::move(context)) {}

    // Wraps a PostgreSQL error copied with CopyErrorData. The ErrorData stays
    // in the memory context it was copied into, so that the error can be
    // re-thrown whole (position, schema/table fields, location) by ReThrowError.
    static Error from_error_data(ErrorData* edata);

    // The error's cursor position refers to `query`, a statement heliosmig ran
    // on the user's behalf, not to the client's query: report it as an
    // internal query and position, as PostgreSQL does for SQL in functions.
    void locate_in(const std::string& query);

    ErrorData* error_data() const { return data_; }

    const char* what() const noexcept override { return message_.c_str(); }
    int sqlerrcode() const { return sqlerrcode_; }
    const std::string& message() const { return message_; }
    const std::string& detail() const { return detail_; }
    const std::string& hint() const { return hint_; }
    const std::string& context() const { return context_; }

private:
    int sqlerrcode_;
    std::string message_;
    std::string detail_;
    std::string hint_;
    std::string context_;
    ErrorData* data_ = nullptr;
};

// Throws a pg::Error; the message parts are the user's, so write them as
// PostgreSQL's style guide asks (lower case, no trailing period; hints are sentences).
[[noreturn]] void raise(int sqlerrcode, std::string message, std::string detail = {},
                        std::string hint = {});

// Runs fn under PG_TRY; a PostgreSQL ERROR becomes a pg::Error. fn must only
// call PostgreSQL: it must own nothing with a destructor.
void call_raw(void (*fn)(void*), void* ctx);

template <typename F> auto call(F&& fn) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    if constexpr (std::is_void_v<R>) {
        call_raw([](void* c) { (*static_cast<std::remove_reference_t<F>*>(c))(); }, &fn);
    } else {
        static_assert(std::is_trivially_destructible_v<R>,
                      "pg::call returns PostgreSQL values; build C++ objects outside it");
        struct Frame {
            std::remove_reference_t<F>* fn;
            R result;
        } frame{&fn, R{}};
        call_raw(
            [](void* c) {
                auto* f = static_cast<Frame*>(c);
                f->result = (*f->fn)();
            },
            &frame);
        return frame.result;
    }
}

// An error captured by invoke_guarded, in palloc'd memory so that it can be
// raised after every C++ object of the failed call is gone.
struct PendingError {
    ErrorData* data; // a PostgreSQL error to re-throw whole, or nullptr
    int sqlerrcode;
    char* message;
    char* detail;
    char* hint;
};

// Runs fn, converting any exception into *pending. Returns false on failure.
bool capture_exceptions(void (*fn)(void*), void* ctx, PendingError* pending) noexcept;

// ereport(ERROR)s a pending error; never returns.
[[noreturn]] void raise_pending(const PendingError& pending);

// Runs fn as an entry point from PostgreSQL: exceptions become ereport(ERROR).
// fn's frames are all gone before the ereport longjmps.
template <typename F> void run_guarded(F&& fn) {
    PendingError pending{};
    bool ok = capture_exceptions([](void* c) { (*static_cast<std::remove_reference_t<F>*>(c))(); },
                                 &fn, &pending);
    if (!ok)
        raise_pending(pending);
}

} // namespace heliosmig::pg
