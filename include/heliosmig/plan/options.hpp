// Migration options: the start() arguments and their inline spellings
// (SET (migration_mode = ...) on ALTER TABLE, WITH (...) on CREATE INDEX, and
// the spec's trailing WITH (MIGRATION_MODE = 'ONLINE', ...)).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace heliosmig::plan {

enum class Mode { Online, Offline };

struct MigrationOptions {
    Mode mode = Mode::Online;
    int chunk_size = 10000;
    int throttle_io = 100;
    bool shadow_traffic = false;
    bool auto_cutover = true;
};

// key (lower case) = value, as written in the statement.
using OptionList = std::vector<std::pair<std::string, std::string>>;

// Whether a reloption-style key is one of heliosmig's (and must be stripped
// before PostgreSQL sees the statement).
bool is_migration_option(std::string_view key);

// Parses a mode name ('online', 'offline'); 'hybrid' and anything else are errors.
Mode parse_mode(std::string_view value);
std::string_view mode_name(Mode mode);

// Overrides options with the inline ones; unknown keys and bad values are
// errors with a hint listing what is accepted.
void apply_inline_options(MigrationOptions& options, const OptionList& inline_options);

// Checks ranges: chunk_size 1..1000000, throttle_io 1..100.
void validate(const MigrationOptions& options);

} // namespace heliosmig::plan
