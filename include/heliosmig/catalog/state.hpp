// A migration's lifecycle states and the transitions allowed between them.
//
//   CREATED -> PLANNING -> PREPARING -> COPYING -> SYNCHRONIZING -> VALIDATING
//           -> READY -> CUTOVER -> COMPLETED
// plus PAUSED (from any working state, back to the same state), ROLLING_BACK
// -> ROLLED_BACK, and FAILED. Metadata-only migrations go PLANNING -> CUTOVER:
// their one short lock is their cutover. This table is the single source of
// truth: the catalog's trigger asks it too (heliosmig.is_legal_transition).
#pragma once

#include <optional>
#include <string_view>

namespace heliosmig::catalog {

enum class State {
    Created,
    Planning,
    Preparing,
    Copying,
    Synchronizing,
    Validating,
    Ready,
    Cutover,
    Completed,
    Paused,
    RollingBack,
    RolledBack,
    Failed,
};

std::string_view state_name(State state);
std::optional<State> parse_state(std::string_view name);

bool is_terminal(State state);

// States a migration may be paused in (work between steps that can wait).
bool is_pausable(State state);

// Whether from -> to is a legal transition. Leaving PAUSED is legal towards any
// pausable state; the catalog additionally checks it is the one paused from.
bool is_legal_transition(State from, State to);

} // namespace heliosmig::catalog
