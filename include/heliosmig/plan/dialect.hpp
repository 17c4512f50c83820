// The specification's MySQL-flavoured spellings, rewritten into PostgreSQL's.
//
//   ALTER TABLE t MODIFY [COLUMN] c T      -> ALTER TABLE t ALTER COLUMN c TYPE T
//   ALTER TABLE t DROP PRIMARY KEY         -> ALTER TABLE t DROP CONSTRAINT <placeholder>
//   ALTER TABLE t DROP FOREIGN KEY fk      -> ALTER TABLE t DROP CONSTRAINT fk
//   ALTER TABLE t ... WITH (K = v, ...)    -> the options, removed from the text
//
// The text is tokenized with PostgreSQL's own scanner, so words inside string
// literals, quoted identifiers and comments are never touched.
#pragma once

#include "heliosmig/plan/options.hpp"

#include <string>

namespace heliosmig::plan {

// Stands for the primary key's constraint name until the table is known.
inline constexpr const char* kPrimaryKeyPlaceholder = "heliosmig primary key";

struct DialectResult {
    std::string sql;     // PostgreSQL syntax
    std::string display; // the user's own text without the trailing WITH (...)
    OptionList options;  // from a trailing WITH (...) on ALTER TABLE
};

DialectResult normalize_dialect(const std::string& ddl);

} // namespace heliosmig::plan
