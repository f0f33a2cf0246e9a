#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests and benchmarks: initdb into a temporary folder (as the `postgres`
# user when run as root), a free port on 127.0.0.1 only, trust authentication, stopped and deleted after.
#
#   throwaway-postgres.sh run COMMAND...  start a server, run COMMAND with PLUGIN_HOST_TEST_DATABASE_URL
#                                         set to its superuser URL, then stop and delete it. When
#                                         PLUGIN_HOST_TEST_DATABASE_URL is already set, just run COMMAND.
#   throwaway-postgres.sh start DIR       start (creating if needed) a server in DIR; prints its URL.
#                                         Restarting keeps the port.
#   throwaway-postgres.sh stop DIR        stop it (the folder stays, for a later start)
#
# THROWAWAY_POSTGRES_FSYNC=off starts the server without fsync, for the tests: each test creates and drops a
# database, and DROP DATABASE forces a checkpoint while it holds a transaction id, which holds back every
# other test's event delivery (docs/postgresql.md, Events) for as long as the disk takes. The benchmarks keep
# fsync on, as a deployment would.
set -euo pipefail

# The server outlives this script: it must not inherit descriptors of whoever started us (a caller
# reading our output until EOF would wait for the server to exit).
for fd in $(ls /proc/$$/fd); do
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
done

bin_dir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -z "$dir" ]; then
        echo "PostgreSQL server binaries not found under /usr/lib/postgresql; install Debian's postgresql package (make test does)" >&2
        exit 1
    fi
    echo "$dir"
}

as_postgres() {
    # From /, which the postgres user can always read (the caller's folder may be /root).
    if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

free_port() {
    local port
    while true; do
        port=$((20000 + RANDOM % 30000))
        # Free when nothing accepts a connection there.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
    done
}

start() {
    local dir=$1 bin port
    bin=$(bin_dir)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        if ! as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1; then
            cat "$dir/initdb.log" >&2
            exit 1
        fi
    fi
    [ -f "$dir/port" ] || free_port >"$dir/port"
    port=$(cat "$dir/port")
    local durability=""
    if [ "${THROWAWAY_POSTGRES_FSYNC:-on}" = off ]; then durability="-c fsync=off -c full_page_writes=off"; fi
    if ! as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -k '$dir' -c max_connections=300 $durability" start >/dev/null; then
        cat "$dir/server.log" >&2
        exit 1
    fi
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
}

stop() {
    local dir=$1
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_postgres "$(bin_dir)/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null || true
    fi
}

case "${1:-}" in
    start) start "$2" ;;
    stop) stop "$2" ;;
    run)
        shift
        if [ -n "${PLUGIN_HOST_TEST_DATABASE_URL:-}" ]; then exec "$@"; fi
        dir=$(mktemp -d /tmp/plugin-host-pg.XXXXXX)
        trap 'stop "$dir"; rm -rf "$dir"' EXIT
        trap 'exit 130' INT TERM
        PLUGIN_HOST_TEST_DATABASE_URL=$(start "$dir")
        export PLUGIN_HOST_TEST_DATABASE_URL
        # The two roles of a deployment (see docs/postgresql.md, Roles): the owner runs migrations, the host serves as the
        # other one, which row-level security binds. The benchmarks use them.
        port=$(cat "$dir/port")
        "$(bin_dir)/psql" "$PLUGIN_HOST_TEST_DATABASE_URL" -v ON_ERROR_STOP=1 -q \
            -c "CREATE ROLE plugin_host_owner LOGIN" -c "CREATE ROLE plugin_host LOGIN" \
            -c "CREATE DATABASE plugin_host OWNER plugin_host_owner" >/dev/null
        export PLUGIN_HOST_BENCH_DATABASE_URL="postgresql://plugin_host@127.0.0.1:$port/plugin_host"
        export PLUGIN_HOST_BENCH_MIGRATION_URL="postgresql://plugin_host_owner@127.0.0.1:$port/plugin_host"
        echo "throwaway PostgreSQL at $PLUGIN_HOST_TEST_DATABASE_URL" >&2
        "$@"
        ;;
    *)
        echo "usage: $0 run COMMAND... | start DIR | stop DIR" >&2
        exit 2
        ;;
esac
