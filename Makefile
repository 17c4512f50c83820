# heliosmig — PGXS build of a C++20 PostgreSQL extension.

EXTENSION = heliosmig
MODULE_big = heliosmig

# Install scripts are exactly sql/heliosmig--*.sql; every other sql/*.sql is a
# pg_regress test, run in name order (hence the numeric prefixes).
DATA = $(wildcard sql/heliosmig--*.sql)
REGRESS = $(sort $(patsubst sql/%.sql,%,$(filter-out sql/heliosmig--%,$(wildcard sql/*.sql))))
ISOLATION = $(sort $(patsubst specs/%.spec,%,$(wildcard specs/*.spec)))
REGRESS_OPTS = --temp-config=regress/heliosmig.conf
ISOLATION_OPTS = --temp-config=regress/heliosmig.conf

SOURCES = $(sort $(wildcard src/*.cpp src/*/*.cpp))
OBJS = $(SOURCES:.cpp=.o)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)

PG_CPPFLAGS = -Iinclude
PG_CXXFLAGS = -std=c++20 -Wno-register -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
ifdef WERROR
PG_CXXFLAGS += -Werror
endif
SHLIB_LINK = -lfmt -lxxhash -lstdc++

# Debian's PGXS also compiles every .cpp to LLVM bitcode for JIT inlining,
# without PG_CXXFLAGS (so C++20 would not compile there). Inlining extension
# code buys nothing: switch it off.
override with_llvm = no

include $(PGXS)

# Distro PGXS turns off dependency tracking: restore it so header edits rebuild.
override CXXFLAGS += -MMD -MP
-include $(OBJS:.o=.d)

clean: clean-deps
clean-deps:
	rm -f $(OBJS:.o=.d)
.PHONY: clean-deps

# The suites one at a time, so that a failure in one still runs the others
# (scripts/test.sh runs both against its own cluster).
installcheck-regress: submake
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)
installcheck-isolation: submake
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)
.PHONY: installcheck-regress installcheck-isolation
