#!/usr/bin/env bash
# Starts a private PostgreSQL 15 on 127.0.0.1 for the Dify connector tests
# (crates/dify). Idempotent: installs the Debian package only when missing,
# reuses a cluster already running in the directory, else initdb's one and
# starts it on a free port as the postgres user (initdb/postgres refuse root).
#
# Usage: scripts/peers/postgres.sh     (logs go to stderr)
# Prints: export LOUPE_TEST_PG_URL=postgres://loupe:loupe@127.0.0.1:PORT/loupe
# (scripts/test.sh evals it). Directory: $LOUPE_TEST_PG_DIR, default
# /tmp/loupe-test-pg. Stop: runuser -u postgres -- pg_ctl -D DIR -m fast stop
set -euo pipefail

log() { echo "postgres: $*" >&2; }

DIR="${LOUPE_TEST_PG_DIR:-/tmp/loupe-test-pg}"
ROLE=loupe
PASSWORD=loupe
DB=loupe

if ! dpkg -s postgresql >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    log "installing postgresql (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$BIN/initdb" ] || { log "no initdb under /usr/lib/postgresql"; exit 1; }

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
chmod 700 "$DIR"

if [ -f "$DIR/PG_VERSION" ] && as_pg "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1 && [ -f "$DIR/loupe.port" ]; then
    PORT=$(cat "$DIR/loupe.port")
    log "reusing the cluster in $DIR on port $PORT"
else
    if [ ! -f "$DIR/PG_VERSION" ]; then
        log "initdb in $DIR"
        as_pg "$BIN/initdb" -D "$DIR" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >&2
    fi
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "$PORT" | as_pg tee "$DIR/loupe.port" >/dev/null
    log "starting on 127.0.0.1:$PORT"
    as_pg "$BIN/pg_ctl" -D "$DIR" -l "$DIR/log.txt" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=200 -c fsync=off" start >&2
fi

psql_pg() { as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    psql_pg -c "CREATE ROLE $ROLE LOGIN SUPERUSER PASSWORD '$PASSWORD'" >&2
fi
if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
    psql_pg -c "CREATE DATABASE $DB OWNER $ROLE" >&2
fi
log "ready"
echo "export LOUPE_TEST_PG_URL=postgres://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
