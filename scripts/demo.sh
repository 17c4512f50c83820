#!/usr/bin/env bash
# A first look at heliosmig, as root on a fresh Debian machine: installs what
# is missing, builds and installs heliosmig, starts a throwaway PostgreSQL
# cluster (as the postgres user, on 127.0.0.1:54320 and a private socket), and
# runs a real migration while pgbench writes to the table and a long
# transaction holds a lock on it. The cluster is left running to explore:
#   ./scripts/demo.sh --stop    stops it and removes its files.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

DEMO_DIR=/tmp/heliosmig-demo
DEMO_PORT=${HELIOSMIG_DEMO_PORT:-54320}

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: it installs packages and runs PostgreSQL as the postgres user" >&2
    exit 2
fi
if [ "${1:-}" = "--stop" ]; then
    hm_cluster_stop "$DEMO_DIR"
    rm -rf "$DEMO_DIR"
    echo "demo cluster stopped"
    exit 0
fi

hm_install_deps
hm_build_and_install

hm_cluster_stop "$DEMO_DIR"
rm -rf "$DEMO_DIR"
hm_cluster_start "$DEMO_DIR" "$DEMO_PORT"
export PGDATABASE=demo
psql() { "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 "$@"; }
"$PG_BIN/psql" -X -q -d postgres -c "CREATE DATABASE demo"

hm_log "a users table with 200,000 rows"
psql -q <<'SQL'
CREATE EXTENSION heliosmig;
SET heliosmig.intercept = off;
CREATE TABLE users (
    user_id      int PRIMARY KEY,
    email        varchar(20) NOT NULL,
    legacy_field text,
    age          int
);
INSERT INTO users SELECT g, 'u' || g || '@ex.org', 'old', 18 + g % 60
  FROM generate_series(1, 200000) g;
CREATE INDEX idx_users_email ON users (email);
ANALYZE users;
SQL

cat >"$DEMO_DIR/writes.sql" <<'SQL'
\set id random(1, 200000)
UPDATE users SET age = age + 1 WHERE user_id = :id;
INSERT INTO users (user_id, email, age) VALUES (200000 + :client_id * 1000000 + :id, 'n@ex.org', 30)
    ON CONFLICT (user_id) DO NOTHING;
SELECT email FROM users WHERE user_id = :id;
SQL
chown postgres: "$DEMO_DIR/writes.sql"

hm_log "the application: 4 pgbench clients writing for 25 s"
(cd "$DEMO_DIR" && runuser -u postgres -- env PGHOST="$PGHOST" PGPORT="$PGPORT" \
    "$PG_BIN/pgbench" -n -c 4 -j 2 -T 25 -l --log-prefix=app -f writes.sql demo >"$DEMO_DIR/pgbench.out" 2>&1) &
app_pid=$!
sleep 1

hm_log "a reporting query holds a transaction open on users for 4 s"
psql -q -c "BEGIN; SELECT count(*) FROM users; SELECT pg_sleep(4); COMMIT;" >/dev/null &
report_pid=$!
sleep 0.5

hm_log "ALTER TABLE users ADD COLUMN phone VARCHAR(20), through heliosmig.start()"
echo "(plain ALTER TABLE would queue for ACCESS EXCLUSIVE behind the report, and every"
echo " application query would queue behind it; heliosmig waits at most 100 ms per attempt)"
started=$(date +%s.%N)
id=$(psql -At -c "SELECT heliosmig.start('ALTER TABLE users ADD COLUMN phone VARCHAR(20)')")
awk -v id="$id" -v t0="$started" -v t1="$(date +%s.%N)" \
    'BEGIN { printf "migration %s completed after %.1f s\n", id, t1 - t0 }'
wait "$report_pid"

hm_log "plain DDL is lock-safe too (heliosmig.intercept = all tracks it as a migration)"
psql -c "SET heliosmig.intercept = 'all'" -c "ALTER TABLE users RENAME COLUMN legacy_field TO notes" \
     -c "ALTER TABLE users ALTER COLUMN email TYPE varchar(50)"
hm_log "the spec's own spelling, through heliosmig.start()"
psql -c "SELECT heliosmig.start('ALTER TABLE users MODIFY COLUMN email VARCHAR(60)')"

hm_log "an index built online by a background worker (CREATE INDEX CONCURRENTLY), while the writes go on"
psql -c "SET heliosmig.wait = on" -c "CREATE INDEX idx_users_age ON users (age)"
psql -c "SET heliosmig.wait = on" -c "ALTER TABLE users ADD CONSTRAINT adult CHECK (age >= 18)"

hm_log "an online rewrite: the primary key int -> bigint, while the writes go on"
echo "(PostgreSQL would rewrite users under ACCESS EXCLUSIVE; heliosmig copies it to a ghost"
echo " table in chunks, captures the writes by logical decoding, and swaps storage under a"
echo " lock of milliseconds: users keeps its OID, indexes, constraints and grants)"
oid_before=$(psql -At -c "SELECT 'users'::regclass::oid")
psql -c "SET heliosmig.wait = on" -c "ALTER TABLE users ALTER COLUMN user_id TYPE bigint"
rewrite_id=$(psql -At -c "SELECT migration_id FROM heliosmig.helios_migrations WHERE operation_class = 'rewrite' ORDER BY created_at DESC LIMIT 1")
psql -At -c "SELECT 'users kept its OID: ' || ('users'::regclass::oid = $oid_before)"
psql -c "SELECT to_char(logged_at, 'HH24:MI:SS.MS') AS at, coalesce(to_state, event) AS what, message FROM heliosmig.helios_migration_logs WHERE migration_id = '$rewrite_id' ORDER BY log_id"
wait "$app_pid"

hm_log "what the application saw"
grep -E "number of transactions actually processed|failed|latency average" "$DEMO_DIR/pgbench.out" || true
cat "$DEMO_DIR"/app.* | awk '{ if ($3 > max) max = $3 } END { printf "worst transaction latency: %.1f ms\n", max / 1000 }'

hm_log "the migration"
psql -x -c "SELECT migration_id, table_name, operation, status, progress, elapsed, rollback, lock_attempts, lock_wait FROM heliosmig.show_migration('$id')"
psql -c "SELECT to_char(logged_at, 'HH24:MI:SS.MS') AS at, coalesce(to_state, event) AS what, message FROM heliosmig.helios_migration_logs WHERE migration_id = '$id' ORDER BY log_id"
psql -c "SELECT * FROM heliosmig.show_migrations()"

psql -c "\d users"

cat <<EOF_MSG

The demo cluster is still running. Connect with:
    psql -h $PGHOST -p $PGPORT -U postgres demo
Stop it with:
    ./scripts/demo.sh --stop
EOF_MSG
