// HM_FUNCTION: declares a SQL-callable C function whose body is guarded C++.
//
//   HM_FUNCTION(heliosmig_pause) { ... return datum; }
//
// emits the V1 symbol heliosmig_pause, which runs the body (heliosmig_pause_impl)
// under pg::run_guarded so that no exception reaches PostgreSQL.
#pragma once

#include "heliosmig/pg/error.hpp"

#define HM_FUNCTION(name)                                                                          \
    extern "C" {                                                                                   \
    PG_FUNCTION_INFO_V1(name);                                                                     \
    }                                                                                              \
    static Datum name##_impl(FunctionCallInfo fcinfo);                                             \
    extern "C" Datum name(PG_FUNCTION_ARGS) {                                                      \
        Datum result = 0;                                                                          \
        heliosmig::pg::run_guarded([&] { result = name##_impl(fcinfo); });                         \
        return result;                                                                             \
    }                                                                                              \
    static Datum name##_impl(FunctionCallInfo fcinfo)
