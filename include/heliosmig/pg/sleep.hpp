// Sleeping the PostgreSQL way: on the process latch, so that a cancel, a
// terminate or the postmaster's death ends the sleep at once.
#pragma once

namespace heliosmig::pg {

// Waits up to ms milliseconds (or until the latch is set), then handles
// pending interrupts: a cancel comes back as a pg::Error.
void sleep_ms(long ms);

} // namespace heliosmig::pg
