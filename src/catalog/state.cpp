// Migration states and legal transitions (see include/heliosmig/catalog/state.hpp).
#include "heliosmig/catalog/state.hpp"

#include <array>
#include <initializer_list>
#include <utility>

namespace heliosmig::catalog {

namespace {

constexpr std::array<std::pair<State, std::string_view>, 13> kNames{{
    {State::Created, "CREATED"},
    {State::Planning, "PLANNING"},
    {State::Preparing, "PREPARING"},
    {State::Copying, "COPYING"},
    {State::Synchronizing, "SYNCHRONIZING"},
    {State::Validating, "VALIDATING"},
    {State::Ready, "READY"},
    {State::Cutover, "CUTOVER"},
    {State::Completed, "COMPLETED"},
    {State::Paused, "PAUSED"},
    {State::RollingBack, "ROLLING_BACK"},
    {State::RolledBack, "ROLLED_BACK"},
    {State::Failed, "FAILED"},
}};

bool one_of(State s, std::initializer_list<State> set) {
    for (State candidate : set)
        if (candidate == s)
            return true;
    return false;
}

} // namespace

std::string_view state_name(State state) {
    for (const auto& [s, name] : kNames)
        if (s == state)
            return name;
    return "UNKNOWN";
}

std::optional<State> parse_state(std::string_view name) {
    for (const auto& [s, n] : kNames)
        if (n == name)
            return s;
    return std::nullopt;
}

bool is_terminal(State state) {
    return one_of(state, {State::Completed, State::RolledBack, State::Failed});
}

bool is_pausable(State state) {
    return one_of(state, {State::Preparing, State::Copying, State::Synchronizing, State::Validating,
                          State::Ready});
}

bool is_legal_transition(State from, State to) {
    using enum State;
    // Anything still running can be rolled back or fail; CUTOVER can fail
    // (its transaction rolls back whole) but is never interrupted by a rollback.
    // A COMPLETED rewrite may roll back inside its rollback window (the API
    // decides whether the window is still open).
    if (to == Failed)
        return !is_terminal(from);
    if (to == RollingBack)
        return from == Completed || (!is_terminal(from) && from != Cutover && from != RollingBack);
    if (to == Paused)
        return is_pausable(from);
    if (from == Paused)
        return is_pausable(to);

    switch (from) {
    case Created:
        return to == Planning;
    case Planning:
        return one_of(to, {Preparing, Cutover});
    case Preparing:
        return one_of(to, {Copying, Validating, Cutover});
    case Copying:
        return to == Synchronizing;
    case Synchronizing:
        return one_of(to, {Validating, Cutover});
    case Validating:
        // An index build has no cutover: once its index is valid it is done.
        return one_of(to, {Ready, Cutover, Completed});
    case Ready:
        return to == Cutover;
    case Cutover:
        return one_of(to, {Completed, Synchronizing});
    case RollingBack:
        return to == RolledBack;
    case Paused:
    case Completed:
    case RolledBack:
    case Failed:
        return false;
    }
    return false;
}

} // namespace heliosmig::catalog
