// Lock safety: run a step that needs a table lock without ever queueing in
// front of the application.
//
// PostgreSQL's lock queue is FIFO: an ALTER TABLE waiting for ACCESS EXCLUSIVE
// behind a long transaction makes every later query on the table wait behind
// the ALTER. So each attempt runs in its own subtransaction with a short
// lock_timeout; when it times out (or loses a deadlock) the subtransaction is
// rolled back, releasing every lock it took, the queue moves on, and the
// attempt is retried after a jittered, growing pause.
#pragma once

#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/scopes.hpp"
#include "heliosmig/pg/subtransaction.hpp"

#include <optional>
#include <string>

namespace heliosmig::engine {

struct LockWait {
    int attempts = 0;       // 1 when the first attempt got its locks
    double waited_ms = 0.0; // time spent waiting for locks and pausing between attempts
};

// True for the errors a retry can cure: lock_not_available, deadlock_detected.
bool is_retryable_lock_error(const pg::Error& error);

// Sleeps for the pause before retry number `retry` (1-based); interruptible.
double pause_before_retry(int retry);

// Between attempts our transaction may still hold locks taken before this
// statement (an explicit transaction block). If another session waits for one
// of them, retrying would make it wait for as long as we retry (our short
// lock_timeout also keeps PostgreSQL's deadlock detector from ever running
// for us): give up instead, with an error naming the waiting session.
void give_up_if_others_wait_for_us(const std::string& what);

[[noreturn]] void raise_lock_exhausted(const std::string& what, const LockWait& wait,
                                       const pg::Error& last);

double now_ms();

// Runs body() in a subtransaction under heliosmig.lock_timeout, retrying as
// described above. Other errors propagate unchanged. Returns what the locks cost.
template <typename F> LockWait run_with_lock_retries(const std::string& what, F&& body);

int lock_timeout_ms_setting();
int lock_retries_setting();

template <typename F> LockWait run_with_lock_retries(const std::string& what, F&& body) {
    LockWait wait;
    const double started = now_ms();
    const std::string timeout = std::to_string(lock_timeout_ms_setting()) + "ms";
    for (int retry = 0;; retry++) {
        wait.attempts++;
        const double attempt_started = now_ms();
        std::optional<pg::Error> failure = pg::in_subtransaction([&] {
            {
                pg::GucScope limit({{"lock_timeout", timeout}});
                body();
            }
        });
        if (!failure) {
            // Time spent inside a successful attempt is the statement's own work, not waiting.
            wait.waited_ms = attempt_started - started;
            return wait;
        }
        if (!is_retryable_lock_error(*failure))
            throw *failure;
        give_up_if_others_wait_for_us(what);
        if (retry >= lock_retries_setting()) {
            wait.waited_ms = now_ms() - started;
            raise_lock_exhausted(what, wait, *failure);
        }
        pause_before_retry(retry + 1);
    }
}

} // namespace heliosmig::engine
