// Dropping the storage rewrite migrations retired at cutover, once
// heliosmig.retention has passed (the launcher's database worker does it
// every minute).
#pragma once

namespace heliosmig::engine {

// In the current database; each table dropped in its own transaction, its
// lock taken with lock_timeout and retries (someone may be reading it).
void drop_expired_retained_tables();

} // namespace heliosmig::engine
