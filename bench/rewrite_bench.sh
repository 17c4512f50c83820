#!/usr/bin/env bash
# Measures heliosmig's online rewrite against PostgreSQL's own ALTER TABLE and
# pg_repack, as root (like scripts/test.sh): installs what is missing (and
# postgresql-15-repack), builds and installs heliosmig, starts a throwaway
# cluster as the postgres user on a private port and socket, and on a
# pgbench_accounts table of [rows] rows (default 1000000, rounded up to a
# multiple of 100000: pgbench -i -s rows/100000), each time on fresh data:
#
#   (a) plain ALTER TABLE pgbench_accounts ALTER COLUMN abalance TYPE bigint,
#       heliosmig.intercept = off;
#   (b) the same as a heliosmig migration, throttle_io 100, no load: wall time
#       from start() to COMPLETED (and the time spent in each state);
#   (c) pg_repack --table pgbench_accounts: a reference for rewriting the table
#       online (pg_repack cannot change a column's type, so it is not the same
#       work: it rewrites the table as it is);
#   (d) a single-row writer (pgbench -c 1 at a fixed rate, one
#       UPDATE ... WHERE aid = k per transaction, every transaction logged with
#       its latency counted from its scheduled start) running during a
#       heliosmig migration and during a plain ALTER: its longest wait during
#       heliosmig's CUTOVER (and over the whole migration), and during the
#       plain ALTER.
#
# Prints the times, the ratios heliosmig/plain and heliosmig/pg_repack, and the
# writer's worst latencies, against the targets of issue 3 (ratio <= 1.5, a
# cutover wait under 100 ms).
#
#   bench/rewrite_bench.sh            1M rows
#   bench/rewrite_bench.sh 100000     a quick check
# Environment: HELIOSMIG_BENCH_PORT (54391), HELIOSMIG_BENCH_RATE (writer
# transactions per second, 500), HELIOSMIG_BENCH_CHUNK (chunk_size, 10000),
# HELIOSMIG_BENCH_REPEAT (rounds of (a), (b) and (c), the best of each
# counts: 2), HELIOSMIG_BENCH_NO_BUILD=1 (use the installed heliosmig as it is),
# HELIOSMIG_BENCH_KEEP=1 (leave the cluster running; its directory is printed).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib/common.sh"

rows=${1:-1000000}
scale=$(((rows + 99999) / 100000))
rows=$((scale * 100000))
port=${HELIOSMIG_BENCH_PORT:-54391}
rate=${HELIOSMIG_BENCH_RATE:-500}
chunk=${HELIOSMIG_BENCH_CHUNK:-10000}
repeat=${HELIOSMIG_BENCH_REPEAT:-2}

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: it installs packages and runs PostgreSQL as the postgres user" >&2
    exit 2
fi

hm_install_deps
if ! dpkg-query -W -f='${Status}' "postgresql-${PG_MAJOR}-repack" 2>/dev/null | grep -q "ok installed"; then
    hm_log "installing postgresql-${PG_MAJOR}-repack"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "postgresql-${PG_MAJOR}-repack" ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends "postgresql-${PG_MAJOR}-repack"; }
fi
if [ "${HELIOSMIG_BENCH_NO_BUILD:-0}" != 1 ]; then
    hm_build_and_install
fi

work=$(mktemp -d /tmp/heliosmig-bench.XXXXXX)
chmod 755 "$work"
cleanup() {
    if [ "${HELIOSMIG_BENCH_KEEP:-0}" = 1 ]; then
        echo "cluster left running in $work/cluster (port $port); stop it with: kill -INT \$(head -1 $work/cluster/data/postmaster.pid)"
    else
        hm_cluster_stop "$work/cluster"
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
hm_cluster_start "$work/cluster" "$port"
# Room for a 1M-row rewrite without checkpoints in the middle of a measurement.
# output_plugin_libraries again if hm_cluster_start missed it: its
# "postgres --describe-config | grep -q" can fail under pipefail (SIGPIPE).
if "$PG_BIN/postgres" --describe-config 2>/dev/null | grep '^output_plugin_libraries' >/dev/null &&
    ! grep -q '^output_plugin_libraries' "$work/cluster/data/postgresql.conf"; then
    echo "output_plugin_libraries = 'pgoutput, test_decoding, heliosmig'" >>"$work/cluster/data/postgresql.conf"
fi
{
    echo "shared_buffers = 512MB"
    echo "max_wal_size = 8GB"
    echo "checkpoint_timeout = 30min"
    echo "log_min_messages = warning"
} >>"$work/cluster/data/postgresql.conf"
hm_as_postgres "$PG_BIN/pg_ctl" -D "$work/cluster/data" -l "$work/cluster/server.log" -w -t 60 restart >/dev/null
export PGDATABASE=bench
"$PG_BIN/psql" -X -q -d postgres -c "CREATE DATABASE bench"
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -c "CREATE EXTENSION heliosmig" -c "CREATE EXTENSION pg_repack"

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }

# Fresh data: pgbench -i (its own DDL must not be intercepted), the retained
# storage of earlier migrations dropped, a checkpoint.
fresh_data() {
    psql -At -c "SELECT format('DROP TABLE %s', c.oid::regclass) FROM pg_class c
                  WHERE c.relnamespace = 'heliosmig'::regnamespace AND c.relkind = 'r'
                    AND c.relname ~ '^(old|ghost)_[0-9]+$'" | psql >/dev/null
    PGOPTIONS='-c heliosmig.intercept=off' "$PG_BIN/pgbench" -q -i -s "$scale" >"$work/init.log" 2>&1 ||
        { cat "$work/init.log"; return 1; }
    psql -c "CHECKPOINT"
}

# The plain ALTER; prints its duration in seconds as psql's \timing measures it.
alter_plain() {
    psql -c "SET heliosmig.intercept = off" -c '\timing on' \
        -c "ALTER TABLE pgbench_accounts ALTER COLUMN abalance TYPE bigint" |
        awk '/^Time:/ { t = $2 } END { printf "%.3f", t / 1000 }'
}

# Starts the heliosmig migration and waits for its end; prints its id.
migrate() {
    local id state
    id=$(psql -At -c "SELECT heliosmig.start('ALTER TABLE pgbench_accounts ALTER COLUMN abalance TYPE bigint',
                                             chunk_size => $chunk, throttle_io => 100)") || return 1
    for _ in $(seq 1 12000); do
        state=$(psql -At -c "SELECT state FROM heliosmig.helios_migrations WHERE migration_id = '$id'") || return 1
        case $state in COMPLETED | FAILED | ROLLED_BACK) break ;; esac
        sleep 0.05
    done
    if [ "$state" != COMPLETED ]; then
        echo "migration $id ended $state:" >&2
        psql -c "SELECT state, error FROM heliosmig.helios_migrations WHERE migration_id = '$id'" >&2
        return 1
    fi
    echo "$id"
}

# Seconds from the migration's creation to its end, from the catalog.
migration_secs() {
    psql -At -c "SELECT extract(epoch FROM finished_at - created_at)
                   FROM heliosmig.helios_migrations WHERE migration_id = '$1'"
}
# Time spent in each state, from the log.
state_times() {
    psql -At -F ' ' -c "
        SELECT string_agg(format('%s %s s', to_state, round(extract(epoch FROM d)::numeric, 2)), ', ' ORDER BY log_id)
          FROM (SELECT log_id, to_state, lead(logged_at) OVER (ORDER BY log_id) - logged_at AS d
                  FROM heliosmig.helios_migration_logs
                 WHERE migration_id = '$1' AND to_state IS NOT NULL) s
         WHERE d IS NOT NULL"
}
# Epoch of the first entry into a state.
state_epoch() {
    psql -At -c "SELECT extract(epoch FROM min(logged_at)) FROM heliosmig.helios_migration_logs
                  WHERE migration_id = '$1' AND to_state = '$2'"
}

# The single-row writer, in the background for $1 seconds, logging to $2.
cat >"$work/writer.sql" <<'SQL'
\set aid random(1, :naccounts)
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
SQL
chmod 644 "$work/writer.sql"
writer_start() {
    "$PG_BIN/pgbench" -n -c 1 -j 1 -R "$rate" -T "$1" -D naccounts="$rows" -f "$work/writer.sql" \
        -l --log-prefix="$2" >"$2.out" 2>&1 &
    writer_pid=$!
}
# Worst latency (ms) of the logged transactions that overlap [$2, $3] (epochs).
worst_ms() {
    cat "$1".[0-9]* | awk -v from="$2" -v to="$3" '
        $3 ~ /^[0-9]+$/ {
            end = $5 + $6 / 1e6; start = end - $3 / 1e6
            if (end >= from && start <= to && $3 > max) max = $3
            n++
        }
        END { printf "%.1f", max / 1000 }'
}
writer_check() {
    if ! wait "$writer_pid"; then
        echo "the writer failed:" >&2
        cat "$1.out" >&2
        return 1
    fi
    grep -E "number of (failed )?transactions" "$1.out" | sed 's/^/    writer: /'
}

hm_log "$rows rows (pgbench -i -s $scale), chunk_size $chunk; $(nproc) CPUs, load average now: $(cut -d' ' -f1-3 /proc/loadavg)"

# (a), (b) and (c) run $repeat times each (interleaved); the best time of each
# counts, as the least disturbed by whatever else the machine was doing.
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }
t_plain= t_hm= t_repack=
for round in $(seq 1 "$repeat"); do
    hm_log "(a) plain ALTER TABLE (heliosmig.intercept = off), round $round/$repeat"
    fresh_data
    t=$(alter_plain)
    echo "plain ALTER: $t s"
    t_plain=$(min "$t_plain" "$t")

    hm_log "(b) heliosmig, throttle_io 100, no load, round $round/$repeat"
    fresh_data
    t0=$(now)
    id=$(migrate)
    t_wall=$(calc "$(now) - $t0")
    t=$(calc "$(migration_secs "$id")")
    echo "heliosmig: $t s from start() to COMPLETED (catalog; $t_wall s measured by this script, polling every 50 ms)"
    echo "  states: $(state_times "$id")"
    t_hm=$(min "$t_hm" "$t")

    hm_log "(c) pg_repack --table pgbench_accounts (a rewrite reference: pg_repack cannot change a column type), round $round/$repeat"
    fresh_data
    t0=$(now)
    PGOPTIONS='-c heliosmig.intercept=off' "$PG_BIN/pg_repack" -U postgres -d bench --table=pgbench_accounts \
        >"$work/repack.log" 2>&1 || { cat "$work/repack.log"; exit 1; }
    t=$(calc "$(now) - $t0")
    echo "pg_repack: $t s"
    t_repack=$(min "$t_repack" "$t")
done

hm_log "(d) a single-row writer at $rate tx/s during heliosmig's migration"
fresh_data
log_hm="$work/writer_heliosmig"
dur=$(awk -v t="$t_hm" 'BEGIN { printf "%d", t * 2 + 10 }')
writer_start "$dur" "$log_hm"
sleep 2
id=$(migrate)
t_from=$(psql -At -c "SELECT extract(epoch FROM created_at) FROM heliosmig.helios_migrations WHERE migration_id = '$id'")
t_cut=$(state_epoch "$id" CUTOVER)
t_end=$(psql -At -c "SELECT extract(epoch FROM finished_at) FROM heliosmig.helios_migrations WHERE migration_id = '$id'")
writer_check "$log_hm"
w_hm_cut=$(worst_ms "$log_hm" "$t_cut" "$t_end")
w_hm_all=$(worst_ms "$log_hm" "$t_from" "$t_end")
cut_ms=$(calc "($t_end - $t_cut) * 1000" 1)
echo "heliosmig under the writer: $(calc "$(migration_secs "$id")") s; states: $(state_times "$id")"
echo "worst writer wait: $w_hm_cut ms during CUTOVER ($cut_ms ms from entering CUTOVER to COMPLETED), $w_hm_all ms over the whole migration"
echo "  the migration's log from CUTOVER on:"
psql -At -F ' ' -c "
    SELECT to_char(logged_at, 'HH24:MI:SS.MS'), coalesce(to_state, event), left(message, 160)
      FROM heliosmig.helios_migration_logs
     WHERE migration_id = '$id' AND log_id >= (SELECT min(log_id) FROM heliosmig.helios_migration_logs
                                                WHERE migration_id = '$id' AND to_state = 'CUTOVER')
     ORDER BY log_id" | sed 's/^/    /'

hm_log "(d) the same writer during a plain ALTER TABLE"
fresh_data
log_plain="$work/writer_plain"
dur=$(awk -v t="$t_plain" 'BEGIN { printf "%d", t * 3 + 8 }')
writer_start "$dur" "$log_plain"
sleep 2
t0=$(now)
alter_plain >/dev/null
t1=$(now)
writer_check "$log_plain"
w_plain=$(worst_ms "$log_plain" "$t0" "$t1")
echo "worst writer wait during the plain ALTER ($(calc "$t1 - $t0") s): $w_plain ms"

r_plain=$(calc "$t_hm / $t_plain" 2)
r_repack=$(calc "$t_hm / $t_repack" 2)
verdict() { awk -v v="$1" -v lim="$2" 'BEGIN { print (v <= lim ? "meets" : "misses") }'; }
hm_log "summary ($rows rows, int -> bigint of pgbench_accounts.abalance; load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-52s %10s\n' "plain ALTER TABLE (best of $repeat)" "$t_plain s"
printf '%-52s %10s\n' "heliosmig (throttle_io 100, no load, best of $repeat)" "$t_hm s"
printf '%-52s %10s\n' "pg_repack --table (no type change, best of $repeat)" "$t_repack s"
printf '%-52s %10s   %s the 1.5x target\n' "ratio heliosmig / plain ALTER" "$r_plain" "$(verdict "$r_plain" 1.5)"
printf '%-52s %10s\n' "ratio heliosmig / pg_repack" "$r_repack"
printf '%-52s %10s   %s the 100 ms target\n' "worst writer wait, heliosmig CUTOVER" "$w_hm_cut ms" "$(verdict "$w_hm_cut" 100)"
printf '%-52s %10s\n' "worst writer wait, whole heliosmig migration" "$w_hm_all ms"
printf '%-52s %10s\n' "worst writer wait, plain ALTER TABLE" "$w_plain ms"
