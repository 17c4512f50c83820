// heliosmig's GUCs (see include/heliosmig/settings/settings.hpp).
#include "heliosmig/pg/postgres.hpp"
#include "heliosmig/settings/settings.hpp"

#include <climits>

extern "C" {
#include "utils/guc.h"
}

namespace heliosmig::settings {

namespace {

int intercept_setting = static_cast<int>(Intercept::Rewrites);
bool wait_setting = false;
int lock_timeout_setting = 100;
int lock_retries_setting = 600;
int retention_setting = 24 * 3600;
int lock_retry_max_delay_setting = 1000;

const struct config_enum_entry intercept_options[] = {
    {"off", static_cast<int>(Intercept::Off), false},
    {"rewrites", static_cast<int>(Intercept::Rewrites), false},
    {"all", static_cast<int>(Intercept::All), false},
    {nullptr, 0, false},
};

} // namespace

Intercept intercept() {
    return static_cast<Intercept>(intercept_setting);
}
bool wait_for_completion() {
    return wait_setting;
}
int lock_timeout_ms() {
    return lock_timeout_setting;
}
int lock_retries() {
    return lock_retries_setting;
}

int retention_seconds() {
    return retention_setting;
}
int lock_retry_max_delay_ms() {
    return lock_retry_max_delay_setting;
}

void Init() {
    DefineCustomEnumVariable(
        "heliosmig.intercept", "Which DDL statements heliosmig turns into online migrations.",
        "off: none; rewrites: statements PostgreSQL would run by rewriting or scanning the table "
        "under a blocking lock (other ALTER TABLEs still get lock safety); all: every ALTER "
        "TABLE, CREATE INDEX and DROP INDEX becomes a tracked migration.",
        &intercept_setting, static_cast<int>(Intercept::Rewrites), intercept_options, PGC_USERSET,
        0, nullptr, nullptr, nullptr);

    DefineCustomBoolVariable("heliosmig.wait",
                             "Makes an intercepted DDL statement wait until its migration ends.",
                             "The wait holds no lock on the table; a failed migration raises an "
                             "error.",
                             &wait_setting, false, PGC_USERSET, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "heliosmig.lock_timeout", "How long one attempt to take a migration's table lock may wait.",
        "After this the attempt gives up, so the application's queries never "
        "queue behind heliosmig for longer; it is retried later.",
        &lock_timeout_setting, 100, 1, 60000, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "heliosmig.retention", "How long a rewrite's old storage is kept after its cutover.",
        "The old storage stays readable as heliosmig.old_<table oid>_<migration id> until the "
        "launcher drops it once this much time has passed (checked every minute).",
        &retention_setting, 24 * 3600, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr,
        nullptr);

    DefineCustomIntVariable(
        "heliosmig.lock_retries", "How many times a lock attempt that timed out is retried.",
        nullptr, &lock_retries_setting, 600, 0, 1000000, PGC_USERSET, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "heliosmig.lock_retry_max_delay", "Longest pause between two lock attempts.",
        "Pauses start at 10 ms, double after each failed attempt up to this value, and are "
        "jittered by +-50%.",
        &lock_retry_max_delay_setting, 1000, 1, 600000, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr,
        nullptr);

    MarkGUCPrefixReserved("heliosmig");
}

} // namespace heliosmig::settings
