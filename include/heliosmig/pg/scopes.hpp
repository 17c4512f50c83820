// Scoped changes to session state that PostgreSQL undoes by itself on error.
//
// Each scope restores on normal exit. On an error the transaction (or
// subtransaction) abort restores the state instead: GUC nest levels and the
// user id are both reset by AbortTransaction/AbortSubTransaction, so the
// destructors skip their work while an exception is in flight.
#pragma once

#include "heliosmig/pg/postgres.hpp"

#include <initializer_list>
#include <string>
#include <utility>

namespace heliosmig::pg {

// Sets GUCs for the scope only, the way a function's SET clause does
// (NewGUCNestLevel / AtEOXact_GUC): the values never leak into the caller's
// transaction, even when the scope's work commits.
class GucScope {
public:
    explicit GucScope(std::initializer_list<std::pair<const char*, std::string>> settings);
    ~GucScope();
    GucScope(const GucScope&) = delete;
    GucScope& operator=(const GucScope&) = delete;

private:
    int nest_level_;
    int exceptions_at_entry_;
};

// The search_path every query heliosmig writes itself runs under, so that no
// user function or operator is ever picked up by our SQL.
class SafeSearchPath : public GucScope {
public:
    SafeSearchPath() : GucScope({{"search_path", "pg_catalog, pg_temp"}}) {}
};

// Acts as another role for the scope (SECURITY_LOCAL_USERID_CHANGE), as
// SECURITY DEFINER functions do; used to write heliosmig's own catalog as
// its owner while the user's DDL runs as the user.
class UserScope {
public:
    explicit UserScope(Oid role);
    ~UserScope();
    UserScope(const UserScope&) = delete;
    UserScope& operator=(const UserScope&) = delete;

private:
    Oid saved_user_;
    int saved_sec_context_;
    int exceptions_at_entry_;
};

// Holds off query cancels for the scope (HOLD_CANCEL_INTERRUPTS), for work
// that must not be interrupted half-way; a terminate still gets through.
class CancelHoldoff {
public:
    CancelHoldoff();
    ~CancelHoldoff();
    CancelHoldoff(const CancelHoldoff&) = delete;
    CancelHoldoff& operator=(const CancelHoldoff&) = delete;
};

} // namespace heliosmig::pg
