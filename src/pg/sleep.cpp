// Interruptible sleeps (see include/heliosmig/pg/sleep.hpp).
#include "heliosmig/pg/sleep.hpp"
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/wait_event.h"
}

namespace heliosmig::pg {

void sleep_ms(long ms) {
    call([&] {
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    });
}

} // namespace heliosmig::pg
