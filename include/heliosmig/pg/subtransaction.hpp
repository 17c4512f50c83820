// Running a piece of work in an internal subtransaction that may fail alone.
//
// This is the only place a pg::Error may be swallowed: the subtransaction is
// rolled back (releasing every lock it took and undoing its catalog changes),
// and the caller's memory context and resource owner are restored, exactly as
// PL/pgSQL's exception blocks do.
#pragma once

#include "heliosmig/pg/error.hpp"

#include <exception>
#include <optional>

namespace heliosmig::pg {

enum class SubtransactionEnd { Commit, Rollback };

// Runs fn(ctx) in a subtransaction. fn returns true to keep its work (release
// the subtransaction into the parent) or false to roll it back. If fn raises a
// PostgreSQL ERROR, the subtransaction is rolled back and the copied ErrorData is
// returned; otherwise nullptr. fn must not throw C++ exceptions. Call it
// through pg::call (the templates below do).
ErrorData* run_in_subtransaction(bool (*fn)(void*), void* ctx);

namespace detail {

template <typename F> struct SubtransactionFrame {
    F* f;
    bool keep; // commit into the parent when f returns normally
    std::optional<Error> failure;
    std::exception_ptr other;
};

// Runs frame.f in a subtransaction; C++ exceptions are caught inside it (the
// handlers only move, so nothing can throw while its PG_TRY is on the stack)
// and left in the frame for the caller to act on after the rollback.
template <typename F> ErrorData* run_frame(SubtransactionFrame<F>& frame) {
    return call([&]() noexcept {
        return run_in_subtransaction(
            [](void* c) noexcept -> bool {
                auto* fr = static_cast<SubtransactionFrame<F>*>(c);
                try {
                    (*fr->f)();
                    return fr->keep;
                } catch (Error& e) {
                    fr->failure.emplace(std::move(e));
                } catch (...) {
                    fr->other = std::current_exception();
                }
                return false;
            },
            &frame);
    });
}

} // namespace detail

// Runs f() in a subtransaction that is committed into the parent when f
// returns normally. A PostgreSQL error raised in f (directly or as a pg::Error)
// rolls it back and is returned. Any other exception rolls it back and is
// rethrown.
template <typename F> std::optional<Error> in_subtransaction(F&& f) {
    detail::SubtransactionFrame<std::remove_reference_t<F>> frame{&f, true, std::nullopt, nullptr};
    ErrorData* edata = detail::run_frame(frame);
    if (frame.other)
        std::rethrow_exception(frame.other);
    if (edata != nullptr)
        return Error::from_error_data(edata);
    return std::move(frame.failure);
}

// Runs f() in a subtransaction that is always rolled back: for probing what a
// statement would do without keeping any of it. Errors are rethrown.
template <typename F> void in_discarded_subtransaction(F&& f) {
    detail::SubtransactionFrame<std::remove_reference_t<F>> frame{&f, false, std::nullopt, nullptr};
    ErrorData* edata = detail::run_frame(frame);
    if (frame.other)
        std::rethrow_exception(frame.other);
    if (frame.failure)
        throw std::move(*frame.failure);
    if (edata != nullptr)
        throw Error::from_error_data(edata);
}

} // namespace heliosmig::pg
