// SPI access for heliosmig's catalog (see include/heliosmig/pg/spi.hpp).
#include "heliosmig/pg/spi.hpp"
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
}

#include <exception>

namespace heliosmig::pg {

// SPI_connect switches to SPI's own memory context, which SPI_finish frees:
// switch back, so that PostgreSQL data built while an Spi is alive (parse
// trees, names) outlives it. SPI's executor uses its own contexts regardless.
Spi::Spi() : exceptions_at_entry_(std::uncaught_exceptions()) {
    call([] {
        MemoryContext caller = CurrentMemoryContext;
        SPI_connect();
        MemoryContextSwitchTo(caller);
    });
}

// On the error path the (sub)transaction abort closes the SPI connection.
Spi::~Spi() {
    if (std::uncaught_exceptions() > exceptions_at_entry_)
        return;
    SPI_finish();
}

Rows Spi::query(std::string_view sql, const std::vector<Value>& params) {
    std::string text(sql);
    const int nargs = static_cast<int>(params.size());
    std::vector<Oid> types(params.size(), TEXTOID);
    std::vector<Datum> values(params.size(), 0);
    std::string nulls(params.size(), ' ');

    for (size_t i = 0; i < params.size(); i++) {
        if (!params[i]) {
            nulls[i] = 'n';
            continue;
        }
        const char* s = params[i]->c_str();
        values[i] = call([&] { return PointerGetDatum(cstring_to_text(s)); });
    }

    const char* query_text = text.c_str();
    Oid* type_array = types.data();
    Datum* value_array = values.data();
    const char* null_array = nulls.c_str();
    // SPI leaves its procedure context current after every call: put the
    // caller's back (see the constructor).
    int rc = call([&] {
        MemoryContext caller = CurrentMemoryContext;
        int result =
            SPI_execute_with_args(query_text, nargs, type_array, value_array, null_array, false, 0);
        MemoryContextSwitchTo(caller);
        return result;
    });
    if (rc < 0)
        raise(ERRCODE_INTERNAL_ERROR,
              "heliosmig: SPI failed (" + std::to_string(rc) + ") for: " + text);

    Rows result;
    result.processed = SPI_processed;
    if (SPI_tuptable == nullptr)
        return result;

    SPITupleTable* table = SPI_tuptable;
    const int ncols = table->tupdesc->natts;
    result.rows.reserve(SPI_processed);
    for (uint64 r = 0; r < SPI_processed; r++) {
        Row row;
        row.reserve(ncols);
        for (int c = 1; c <= ncols; c++) {
            HeapTuple tuple = table->vals[r];
            char* value = call([&] { return SPI_getvalue(tuple, table->tupdesc, c); });
            row.emplace_back(value ? Value(value) : std::nullopt);
        }
        result.rows.push_back(std::move(row));
    }
    return result;
}

Value Spi::scalar(std::string_view sql, const std::vector<Value>& params) {
    Rows result = query(sql, params);
    if (result.rows.empty() || result.rows.front().empty())
        return std::nullopt;
    return result.rows.front().front();
}

} // namespace heliosmig::pg
