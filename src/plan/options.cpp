// Migration options (see include/heliosmig/plan/options.hpp).
#include "heliosmig/plan/options.hpp"
#include "heliosmig/pg/error.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

namespace heliosmig::plan {

namespace {

constexpr std::string_view kAcceptedKeys =
    "migration_mode (or mode), chunk_size, throttle_io, enable_shadow_traffic (or "
    "shadow_traffic), auto_cutover";

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

int parse_int(std::string_view key, std::string_view value) {
    int result = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), result);
    if (ec != std::errc() || ptr != value.data() + value.size())
        pg::raise(ERRCODE_INVALID_PARAMETER_VALUE,
                  fmt::format("invalid value for migration option {}: \"{}\"", key, value), {},
                  fmt::format("{} takes a whole number.", key));
    return result;
}

bool parse_bool(std::string_view key, std::string_view value) {
    const std::string v = lower(value);
    if (v == "true" || v == "on" || v == "yes" || v == "1")
        return true;
    if (v == "false" || v == "off" || v == "no" || v == "0")
        return false;
    pg::raise(ERRCODE_INVALID_PARAMETER_VALUE,
              fmt::format("invalid value for migration option {}: \"{}\"", key, value), {},
              fmt::format("{} takes true or false.", key));
}

} // namespace

bool is_migration_option(std::string_view key) {
    static constexpr std::array<std::string_view, 7> keys{
        "migration_mode",        "mode",        "chunk_size", "throttle_io", "shadow_traffic",
        "enable_shadow_traffic", "auto_cutover"};
    const std::string k = lower(key);
    return std::find(keys.begin(), keys.end(), k) != keys.end();
}

Mode parse_mode(std::string_view value) {
    const std::string v = lower(value);
    if (v == "online")
        return Mode::Online;
    if (v == "offline")
        return Mode::Offline;
    if (v == "hybrid")
        pg::raise(ERRCODE_FEATURE_NOT_SUPPORTED, "migration mode \"hybrid\" is not supported yet",
                  {}, "Use 'online' (the default) or 'offline'.");
    pg::raise(ERRCODE_INVALID_PARAMETER_VALUE, fmt::format("invalid migration mode \"{}\"", value),
              {}, "Valid modes are 'online' and 'offline'.");
}

std::string_view mode_name(Mode mode) {
    return mode == Mode::Online ? "online" : "offline";
}

void apply_inline_options(MigrationOptions& options, const OptionList& inline_options) {
    for (const auto& [raw_key, value] : inline_options) {
        const std::string key = lower(raw_key);
        if (key == "migration_mode" || key == "mode")
            options.mode = parse_mode(value);
        else if (key == "chunk_size")
            options.chunk_size = parse_int(key, value);
        else if (key == "throttle_io")
            options.throttle_io = parse_int(key, value);
        else if (key == "enable_shadow_traffic" || key == "shadow_traffic")
            options.shadow_traffic = parse_bool(key, value);
        else if (key == "auto_cutover")
            options.auto_cutover = parse_bool(key, value);
        else
            pg::raise(ERRCODE_INVALID_PARAMETER_VALUE,
                      fmt::format("unrecognized migration option \"{}\"", raw_key), {},
                      fmt::format("Valid options are {}.", kAcceptedKeys));
    }
}

void validate(const MigrationOptions& options) {
    if (options.chunk_size < 1 || options.chunk_size > 1000000)
        pg::raise(ERRCODE_INVALID_PARAMETER_VALUE,
                  fmt::format("chunk_size {} is out of range", options.chunk_size), {},
                  "chunk_size must be between 1 and 1000000 rows.");
    if (options.throttle_io < 1 || options.throttle_io > 100)
        pg::raise(ERRCODE_INVALID_PARAMETER_VALUE,
                  fmt::format("throttle_io {} is out of range", options.throttle_io), {},
                  "throttle_io is a percentage of time the migration may work: 1 to 100.");
}

} // namespace heliosmig::plan
