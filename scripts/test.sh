#!/usr/bin/env bash
# Runs heliosmig's whole test suite on this machine, as root: installs what is
# missing, builds with warnings as errors, starts a throwaway cluster as the
# postgres user on a private port and socket, runs the regression and
# isolation suites against it, and stops it. Exits non-zero if any test fails.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: it installs packages and runs PostgreSQL as the postgres user" >&2
    exit 2
fi

hm_install_deps
hm_build_and_install

work=$(mktemp -d /tmp/heliosmig-test.XXXXXX)
chmod 755 "$work"  # the postgres user must reach its cluster inside
port=${HELIOSMIG_TEST_PORT:-54329}
trap 'hm_cluster_stop "$work/cluster"; hm_cluster_stop "$work/plain"; show_failures' EXIT
show_failures() {
    for f in "$HM_ROOT"/regression.diffs "$HM_ROOT"/output_iso/regression.diffs; do
        [ -s "$f" ] && { echo "---- $f"; head -c 20000 "$f"; }
    done
    return 0
}

hm_cluster_start "$work/cluster" "$port"
hm_log "cluster on port $port, socket $PGHOST"

status=0
cd "$HM_ROOT"
rm -rf results output_iso regression.diffs regression.out

# One suite's failure must not stop the others from running.
run_suite() {
    make "$1" PG_CONFIG="$PG_BIN/pg_config" 2>&1 | tee -a "$work/tests.log"
    return "${PIPESTATUS[0]}"
}
hm_log "C++ formatting (.clang-format)"
if command -v clang-format >/dev/null 2>&1; then
    if git ls-files '*.cpp' '*.hpp' | xargs clang-format --dry-run --Werror; then
        echo "test clang_format ... ok" | tee -a "$work/tests.log"
    else
        echo "test clang_format ... FAILED" | tee -a "$work/tests.log"
        status=1
    fi
else
    echo "clang-format not installed: formatting not checked"
fi

hm_log "regression tests"
run_suite installcheck-regress || status=1
hm_log "isolation tests"
run_suite installcheck-isolation || status=1
# After the isolation specs too: nothing half-done may be left behind.
hm_log "leftovers after the isolation specs"
leftovers=$("$PG_BIN/psql" -X -At -d isolation_regression -c "
    SELECT (SELECT count(*) FROM pg_index WHERE NOT indisvalid)
         + (SELECT count(*) FROM pg_constraint WHERE NOT convalidated)
         + (SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'heliosmig%')
         + (SELECT count(*) FROM pg_replication_origin WHERE roname LIKE 'heliosmig%')
         + (SELECT count(*) FROM pg_class WHERE relname LIKE 'ghost\_%'
                                            AND relnamespace = 'heliosmig'::regnamespace)
         + (SELECT count(*) FROM heliosmig.helios_migrations
             WHERE state NOT IN ('COMPLETED', 'FAILED', 'ROLLED_BACK'))" 2>&1 || true)
if [ "$leftovers" = "0" ]; then
    echo "test no_leftovers_isolation ... ok" | tee -a "$work/tests.log"
else
    echo "leftovers: $leftovers"
    echo "test no_leftovers_isolation ... FAILED" | tee -a "$work/tests.log"
    status=1
fi

# TAP tests start their own clusters with initdb, which refuses to run as
# root: they run as the postgres user, from a copy it owns.
if compgen -G "t/*.pl" >/dev/null; then
    hm_log "TAP tests (crash and restart)"
    tap="$work/tap"
    mkdir -p "$tap"
    cp -r t regress "$tap/"
    chown -R postgres: "$tap"
    if (cd "$tap" && runuser -u postgres -- env TESTDIR="$tap" PATH="$PG_BIN:$PATH" \
        PG_REGRESS="$(dirname "$("$PG_BIN/pg_config" --pgxs)")/../test/regress/pg_regress" \
        HELIOSMIG_CONF="$tap/regress/heliosmig.conf" \
        prove -I "$(dirname "$("$PG_BIN/pg_config" --pgxs)")/../test/perl" t/*.pl) 2>&1 |
        tee -a "$work/tests.log"; then
        echo "test tap ... ok" | tee -a "$work/tests.log"
    else
        echo "test tap ... FAILED" | tee -a "$work/tests.log"
        for log in "$tap"/tmp_check/log/*; do
            [ -f "$log" ] && { echo "---- $log"; tail -n 40 "$log"; }
        done
        status=1
    fi
fi

# Loading heliosmig any way other than shared_preload_libraries is refused with
# a clear error: checked on a second cluster that does not preload it.
hm_log "refusal to load without shared_preload_libraries"
plain="$work/plain"
mkdir -p "$plain" && chown postgres: "$plain"
hm_as_postgres "$PG_BIN/initdb" -D "$plain/data" -U postgres --auth=trust >/dev/null
{
    echo "port = $((port + 1))"
    echo "listen_addresses = ''"
    echo "unix_socket_directories = '$plain'"
} >>"$plain/data/postgresql.conf"
hm_as_postgres "$PG_BIN/pg_ctl" -D "$plain/data" -l "$plain/server.log" -w start >/dev/null
refusal=$("$PG_BIN/psql" -X -h "$plain" -p $((port + 1)) -U postgres -d postgres \
    -c "CREATE EXTENSION heliosmig" 2>&1 || true)
hm_cluster_stop "$plain"
echo "$refusal"
if echo "$refusal" | grep -q "heliosmig must be loaded via shared_preload_libraries"; then
    echo "test preload_required ... ok" | tee -a "$work/tests.log"
else
    echo "test preload_required ... FAILED" | tee -a "$work/tests.log"
    status=1
fi

passed=$(grep -cE '^test .* \.\.\. ok' "$work/tests.log" || true)
failed=$(grep -cE '^test .* \.\.\. (FAILED|failed)' "$work/tests.log" || true)
if [ "$failed" -gt 0 ] || [ "$passed" -eq 0 ]; then status=1; fi
echo "$passed passed, $failed failed"
if [ $status -eq 0 ]; then echo "heliosmig: all test suites passed"; else echo "heliosmig: TESTS FAILED"; fi
exit $status
