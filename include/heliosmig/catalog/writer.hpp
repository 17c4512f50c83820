// Access to heliosmig's catalog tables as their owner: the caller may own the
// table being migrated without having any privilege on heliosmig's catalog
// (which PUBLIC can only read, and only rows of tables it owns).
#pragma once

#include "heliosmig/pg/scopes.hpp"
#include "heliosmig/pg/spi.hpp"

namespace heliosmig::catalog {

class CatalogWriter {
public:
    CatalogWriter();
    pg::Rows query(std::string_view sql, const std::vector<pg::Value>& params = {}) {
        return spi_.query(sql, params);
    }

private:
    pg::UserScope as_owner_;
    pg::Spi spi_;
};

} // namespace heliosmig::catalog
