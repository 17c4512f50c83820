// heliosmig.explain(ddl): the plan for a statement, without running it.
#include "heliosmig/pg/function.hpp"
#include "heliosmig/plan/options.hpp"
#include "heliosmig/plan/plan.hpp"
#include "heliosmig/plan/statement.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
}

#include <vector>

namespace {

struct ExplainRow {
    const char* table_name;
    const char* operation;
    const char* operation_class;
    bool runs_online;
    bool copies_data;
    const char* lock_mode;
    const char* reason;
    const char** steps;
    int nsteps;
};

// Raw PostgreSQL: builds the result tuple from plain C data.
Datum build_row(FunctionCallInfo fcinfo, const ExplainRow& row) {
    return heliosmig::pg::call([&] {
        TupleDesc desc;
        if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
            elog(ERROR, "heliosmig.explain must return a record");
        desc = BlessTupleDesc(desc);
        Datum* step_datums = static_cast<Datum*>(palloc(sizeof(Datum) * (row.nsteps + 1)));
        for (int i = 0; i < row.nsteps; i++)
            step_datums[i] = PointerGetDatum(cstring_to_text(row.steps[i]));
        ArrayType* steps =
            construct_array(step_datums, row.nsteps, TEXTOID, -1, false, TYPALIGN_INT);
        Datum values[8] = {
            PointerGetDatum(cstring_to_text(row.table_name)),
            PointerGetDatum(cstring_to_text(row.operation)),
            PointerGetDatum(cstring_to_text(row.operation_class)),
            BoolGetDatum(row.runs_online),
            BoolGetDatum(row.copies_data),
            PointerGetDatum(cstring_to_text(row.lock_mode)),
            PointerGetDatum(cstring_to_text(row.reason)),
            PointerGetDatum(steps),
        };
        bool nulls[8] = {false, false, false, false, false, false, false, false};
        return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
    });
}

} // namespace

// Parses, resolves and classifies exactly as start() does (the probe runs in
// a discarded subtransaction), so the answer is the one start() would act on.
HM_FUNCTION(heliosmig_explain) {
    using namespace heliosmig;
    const std::string ddl =
        pg::call([&] { return static_cast<const char*>(text_to_cstring(PG_GETARG_TEXT_PP(0))); });
    plan::Statement statement = plan::parse_statement(ddl);
    plan::MigrationOptions options;
    plan::apply_inline_options(options, statement.options);
    plan::validate(options);
    plan::Plan p = plan::with_statement_positions(statement.source, [&] {
        plan::resolve_target(statement);
        return plan::make_plan(statement, options);
    });

    std::string reason = p.reason;
    if (!p.supported)
        reason += "; " + p.unsupported_why;
    const std::string cls(plan::class_name(p.cls));
    std::vector<const char*> steps;
    for (const std::string& s : p.steps)
        steps.push_back(s.c_str());
    ExplainRow row{statement.table_name.c_str(),
                   statement.operation.c_str(),
                   cls.c_str(),
                   p.supported && p.runs_online,
                   p.copies_data,
                   p.lock_name.c_str(),
                   reason.c_str(),
                   steps.data(),
                   static_cast<int>(steps.size())};
    return build_row(fcinfo, row);
}
