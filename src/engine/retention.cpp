// Retention of retired storage (see include/heliosmig/engine/retention.hpp).
#include "heliosmig/engine/retention.hpp"
#include "heliosmig/catalog/rewrite_store.hpp"
#include "heliosmig/catalog/store.hpp"
#include "heliosmig/engine/lock_retry.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/spi.hpp"
#include "heliosmig/pg/transaction.hpp"
#include "heliosmig/settings/settings.hpp"

extern "C" {
#include "commands/extension.h"
}

#include <fmt/format.h>

namespace heliosmig::engine {

void drop_expired_retained_tables() {
    std::vector<catalog::RetainedTable> expired = pg::in_worker_transaction([] {
        bool installed = pg::call([] { return OidIsValid(get_extension_oid("heliosmig", true)); });
        return installed ? catalog::expired_retained_tables(settings::retention_seconds())
                         : std::vector<catalog::RetainedTable>{};
    });
    for (const catalog::RetainedTable& retained : expired) {
        pg::in_worker_transaction([&] {
            run_with_lock_retries(fmt::format("drop {}", retained.name), [&] {
                pg::Spi spi;
                spi.query(fmt::format("DROP TABLE IF EXISTS {}", retained.name));
            });
            catalog::forget_retained_table(retained.id);
            catalog::log_event(
                retained.id, catalog::LogLevel::Info, "retention",
                fmt::format("old storage {} dropped after heliosmig.retention", retained.name));
        });
    }
}

} // namespace heliosmig::engine
