// The one way C++ files in heliosmig include PostgreSQL's headers.
//
// PostgreSQL's headers are C without extern "C" guards; postgres.h must come
// first. Files that need more PostgreSQL headers include this file, then their
// own extern "C" { ... } block.
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"
}

// port.h redefines these as macros; C++ code uses the standard library's.
#undef snprintf
#undef vsnprintf
#undef sprintf
#undef printf
#undef fprintf
#undef strerror
