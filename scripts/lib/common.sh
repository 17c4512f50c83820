# Shared by scripts/demo.sh and scripts/test.sh: dependencies, build, and a
# throwaway PostgreSQL cluster run by an unprivileged user.
# Sourced, not executed.

PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin
HM_PACKAGES="postgresql-${PG_MAJOR} postgresql-server-dev-${PG_MAJOR} postgresql-contrib-${PG_MAJOR} \
libboost-dev libfmt-dev libxxhash-dev libipc-run-perl build-essential"
HM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

hm_log() { printf '\n== %s\n' "$*"; }

# Installs whatever of the packages is missing (needs root).
hm_install_deps() {
    local missing=()
    for p in $HM_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        hm_log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    if ! id -u postgres >/dev/null 2>&1; then
        echo "the postgres user is missing after installing PostgreSQL" >&2
        return 1
    fi
}

hm_build_and_install() {
    hm_log "building heliosmig"
    make -s -C "$HM_ROOT" -j"$(nproc)" WERROR=1 PG_CONFIG="$PG_BIN/pg_config"
    make -C "$HM_ROOT" install PG_CONFIG="$PG_BIN/pg_config" >/dev/null
}

hm_as_postgres() { runuser -u postgres -- "$@"; }

# hm_cluster_start DIR PORT: a new cluster in DIR (owned by postgres), listening
# on 127.0.0.1:PORT and a socket in DIR, preloading heliosmig with logical WAL.
hm_cluster_start() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    chown postgres: "$dir"
    chmod 700 "$dir"
    hm_as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log"
    {
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir'"
        echo "fsync = off"
        cat "$HM_ROOT/regress/heliosmig.conf"
        # PostgreSQL 15.19+ loads only the output plugins listed here.
        # (grep reads to the end: with pipefail, an early exit of grep -q
        # would fail the pipeline through SIGPIPE)
        if hm_as_postgres "$PG_BIN/postgres" --describe-config 2>/dev/null | grep '^output_plugin_libraries' >/dev/null; then
            echo "output_plugin_libraries = 'pgoutput, test_decoding, heliosmig'"
        fi
    } >>"$dir/data/postgresql.conf"
    hm_as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    export PGHOST=$dir PGPORT=$port PGUSER=postgres
}

# hm_cluster_stop DIR: stops the cluster's postmaster by the pid in its pid file.
hm_cluster_stop() {
    local dir=$1 pid
    [ -f "$dir/data/postmaster.pid" ] || return 0
    pid=$(head -1 "$dir/data/postmaster.pid")
    kill -INT "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -QUIT "$pid" 2>/dev/null || true
}
