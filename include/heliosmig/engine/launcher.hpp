// The launcher: a static background worker that, after every server start,
// resumes the migrations that were running when the server stopped or
// crashed, and then wakes up every minute to do it again (for workers that
// died).
//
// It connects to no database (it reads only pg_database) and starts one
// short-lived "database worker" per database, one at a time, which does the
// work inside that database if heliosmig is installed there.
#pragma once

#include "heliosmig/pg/postgres.hpp"

namespace heliosmig::engine {

// Registers the launcher; called from _PG_init while preloading.
void InitLauncher();

} // namespace heliosmig::engine

extern "C" {
PGDLLEXPORT void heliosmig_launcher_main(Datum main_arg);
PGDLLEXPORT void heliosmig_database_worker_main(Datum main_arg);
}
