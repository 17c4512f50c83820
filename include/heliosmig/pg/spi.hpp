// SQL through SPI, for heliosmig's own catalog queries.
//
// Every parameter travels as text and the SQL casts it ($1::uuid); every
// result comes back as text (or nullopt for NULL). Queries run under
// pg::SafeSearchPath, so they must name heliosmig's objects by schema.
// Memory allocated while an Spi is alive stays in the caller's context.
#pragma once

#include "heliosmig/pg/scopes.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace heliosmig::pg {

using Value = std::optional<std::string>;
using Row = std::vector<Value>;

struct Rows {
    std::vector<Row> rows;
    uint64_t processed = 0;
};

class Spi {
public:
    Spi();
    ~Spi();
    Spi(const Spi&) = delete;
    Spi& operator=(const Spi&) = delete;

    // Runs sql with text parameters $1..$n; returns every row as text.
    Rows query(std::string_view sql, const std::vector<Value>& params = {});

    // Runs sql and returns the first column of its only row (nullopt if no row).
    Value scalar(std::string_view sql, const std::vector<Value>& params = {});

private:
    SafeSearchPath search_path_;
    int exceptions_at_entry_;
};

} // namespace heliosmig::pg
