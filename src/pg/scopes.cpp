// Scoped session state (see include/heliosmig/pg/scopes.hpp).
#include "heliosmig/pg/scopes.hpp"
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/guc.h"
}

#include <exception>

namespace heliosmig::pg {

GucScope::GucScope(std::initializer_list<std::pair<const char*, std::string>> settings)
    : nest_level_(NewGUCNestLevel()), exceptions_at_entry_(std::uncaught_exceptions()) {
    for (const auto& [name, value] : settings) {
        const char* n = name;
        const char* v = value.c_str();
        call([&] {
            (void)set_config_option(n, v, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                                    false);
        });
    }
}

// On the error path the enclosing (sub)transaction's abort pops the nest level.
GucScope::~GucScope() {
    if (std::uncaught_exceptions() > exceptions_at_entry_)
        return;
    AtEOXact_GUC(true, nest_level_);
}

UserScope::UserScope(Oid role) : exceptions_at_entry_(std::uncaught_exceptions()) {
    GetUserIdAndSecContext(&saved_user_, &saved_sec_context_);
    SetUserIdAndSecContext(role, saved_sec_context_ | SECURITY_LOCAL_USERID_CHANGE);
}

// On the error path AbortTransaction/AbortSubTransaction restore the user id.
UserScope::~UserScope() {
    if (std::uncaught_exceptions() > exceptions_at_entry_)
        return;
    SetUserIdAndSecContext(saved_user_, saved_sec_context_);
}

// The macros increment a volatile, which C++20 deprecates: spelled out.
CancelHoldoff::CancelHoldoff() {
    QueryCancelHoldoffCount = QueryCancelHoldoffCount + 1;
}

CancelHoldoff::~CancelHoldoff() {
    if (QueryCancelHoldoffCount > 0)
        QueryCancelHoldoffCount = QueryCancelHoldoffCount - 1;
}

} // namespace heliosmig::pg
