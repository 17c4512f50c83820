// heliosmig.is_legal_transition(from, to): the state machine, for the catalog trigger.
#include "heliosmig/catalog/state.hpp"
#include "heliosmig/pg/function.hpp"

extern "C" {
#include "utils/builtins.h"
}

#include <fmt/format.h>

HM_FUNCTION(heliosmig_is_legal_transition) {
    using namespace heliosmig;
    auto state_arg = [&](int n) {
        std::string name = pg::call(
            [&] { return static_cast<const char*>(text_to_cstring(PG_GETARG_TEXT_PP(n))); });
        std::optional<catalog::State> state = catalog::parse_state(name);
        if (!state)
            pg::raise(ERRCODE_INVALID_PARAMETER_VALUE,
                      fmt::format("unknown migration state \"{}\"", name));
        return *state;
    };
    return BoolGetDatum(catalog::is_legal_transition(state_arg(0), state_arg(1)));
}
