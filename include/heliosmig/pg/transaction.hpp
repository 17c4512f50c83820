// Transactions of a background worker: each step of a migration runs in its
// own short transaction with a fresh snapshot, so that no snapshot is held for
// longer than one step.
#pragma once

#include "heliosmig/pg/error.hpp"

#include <type_traits>

namespace heliosmig::pg {

void begin_worker_transaction();
void commit_worker_transaction();

// Runs f() in its own transaction and commits. If f throws, the transaction
// is left open for the worker's error handler to abort
// (AbortCurrentTransaction), as PostgreSQL's own workers do.
template <typename F> auto in_worker_transaction(F&& f) -> std::invoke_result_t<F&> {
    begin_worker_transaction();
    if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
        f();
        commit_worker_transaction();
    } else {
        auto result = f();
        commit_worker_transaction();
        return result;
    }
}

} // namespace heliosmig::pg
