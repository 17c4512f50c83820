// Lock safety (see include/heliosmig/engine/lock_retry.hpp).
#include "heliosmig/engine/lock_retry.hpp"
#include "heliosmig/pg/sleep.hpp"
#include "heliosmig/pg/spi.hpp"
#include "heliosmig/settings/settings.hpp"

extern "C" {
#include "access/xact.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
}

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace heliosmig::engine {

namespace {

constexpr double kFirstPauseMs = 10.0;

} // namespace

int lock_timeout_ms_setting() {
    return settings::lock_timeout_ms();
}

int lock_retries_setting() {
    return settings::lock_retries();
}

double now_ms() {
    instr_time t;
    INSTR_TIME_SET_CURRENT(t);
    return INSTR_TIME_GET_MILLISEC(t);
}

bool is_retryable_lock_error(const pg::Error& error) {
    return error.sqlerrcode() == ERRCODE_LOCK_NOT_AVAILABLE ||
           error.sqlerrcode() == ERRCODE_T_R_DEADLOCK_DETECTED;
}

// Exponential backoff capped at heliosmig.lock_retry_max_delay, with +-50%
// jitter so that several waiting sessions do not retry in lockstep. The wait
// is on the process latch: a cancel or terminate interrupts it at once.
double pause_before_retry(int retry) {
    const double cap = settings::lock_retry_max_delay_ms();
    const double base = std::min(cap, kFirstPauseMs * std::pow(2.0, std::min(retry - 1, 20)));
    const double jitter = 0.5 + pg::call([] { return pg_prng_double(&pg_global_prng_state); });
    const long delay = std::max(1L, static_cast<long>(base * jitter));
    pg::sleep_ms(delay);
    return static_cast<double>(delay);
}

// Only a transaction block can hold locks from before this statement; in
// autocommit the failed attempt's subtransaction released everything.
void give_up_if_others_wait_for_us(const std::string& what) {
    if (!pg::call([] { return IsTransactionBlock(); }))
        return;
    pg::Spi spi;
    pg::Value waiter =
        spi.scalar("SELECT l.pid::text FROM pg_catalog.pg_locks l"
                   " WHERE NOT l.granted AND l.pid <> pg_catalog.pg_backend_pid()"
                   "   AND pg_catalog.pg_backend_pid() = ANY (pg_catalog.pg_blocking_pids(l.pid))"
                   " LIMIT 1");
    if (!waiter)
        return;
    pg::raise(ERRCODE_LOCK_NOT_AVAILABLE,
              fmt::format("gave up waiting for the locks for {}: another session is waiting for "
                          "a lock this transaction holds",
                          what),
              fmt::format("Process {} is waiting for this transaction.", *waiter),
              "Retrying would keep that session waiting. Run the statement in its own "
              "transaction, or before the statements that take other locks.");
}

void raise_lock_exhausted(const std::string& what, const LockWait& wait, const pg::Error& last) {
    pg::raise(ERRCODE_LOCK_NOT_AVAILABLE,
              fmt::format("could not get the locks for {} after {} attempts ({:.0f} ms)", what,
                          wait.attempts, wait.waited_ms),
              fmt::format("Last attempt: {}", last.message()),
              "Another transaction holds a conflicting lock on the table for a long time: find "
              "it in pg_locks and pg_stat_activity, or raise heliosmig.lock_retries.");
}

} // namespace heliosmig::engine
