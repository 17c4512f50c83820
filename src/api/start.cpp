// heliosmig.start(ddl, mode, chunk_size, throttle_io, shadow_traffic, auto_cutover)
#include "heliosmig/engine/runner.hpp"
#include "heliosmig/pg/function.hpp"
#include "heliosmig/plan/options.hpp"
#include "heliosmig/plan/statement.hpp"

extern "C" {
#include "utils/builtins.h"
#include "utils/uuid.h"
}

namespace {

std::string text_arg(FunctionCallInfo fcinfo, int n) {
    return heliosmig::pg::call(
        [&] { return static_cast<const char*>(text_to_cstring(PG_GETARG_TEXT_PP(n))); });
}

} // namespace

// Function arguments are the defaults; options written inside the DDL
// (SET (...), WITH (...)) override them.
HM_FUNCTION(heliosmig_start) {
    using namespace heliosmig;
    const std::string ddl = text_arg(fcinfo, 0);

    plan::MigrationOptions options;
    options.mode = plan::parse_mode(text_arg(fcinfo, 1));
    options.chunk_size = PG_GETARG_INT32(2);
    options.throttle_io = PG_GETARG_INT32(3);
    options.shadow_traffic = PG_GETARG_BOOL(4);
    options.auto_cutover = PG_GETARG_BOOL(5);

    plan::Statement statement = plan::parse_statement(ddl);
    plan::apply_inline_options(options, statement.options);
    plan::validate(options);
    engine::StartResult started = plan::with_statement_positions(statement.source, [&] {
        plan::resolve_target(statement);
        return engine::start_migration(statement, options);
    });
    const char* id = started.migration_id.c_str();
    return pg::call([&] { return DirectFunctionCall1(uuid_in, CStringGetDatum(id)); });
}
