// heliosmig's shared library: the magic block and _PG_init.
#include "heliosmig/engine/launcher.hpp"
#include "heliosmig/engine/worker.hpp"
#include "heliosmig/hook/utility.hpp"
#include "heliosmig/pg/postgres.hpp"
#include "heliosmig/settings/settings.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/elog.h"

PG_MODULE_MAGIC;

void _PG_init(void);
}

// Hooks only work when loaded at server start: refuse anything else rather
// than run half-installed. GUCs come first so the hook can read them.
void _PG_init(void) {
    if (!process_shared_preload_libraries_in_progress)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("heliosmig must be loaded via shared_preload_libraries"),
                        errhint("Add heliosmig to shared_preload_libraries in postgresql.conf "
                                "and restart the server.")));
    if (IsBinaryUpgrade)
        return;
    heliosmig::settings::Init();
    heliosmig::hook::Init();
    heliosmig::engine::InitWorkerControl();
    heliosmig::engine::InitLauncher();
}
