// Worker transactions (see include/heliosmig/pg/transaction.hpp).
#include "heliosmig/pg/transaction.hpp"

extern "C" {
#include "access/xact.h"
#include "pgstat.h"
#include "utils/snapmgr.h"
}

namespace heliosmig::pg {

void begin_worker_transaction() {
    call([] {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        PushActiveSnapshot(GetTransactionSnapshot());
    });
}

void commit_worker_transaction() {
    call([] {
        PopActiveSnapshot();
        CommitTransactionCommand();
        pgstat_report_stat(false);
    });
}

} // namespace heliosmig::pg
