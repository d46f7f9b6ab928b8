#!/usr/bin/env bash
# Starts chDB (ClickHouse 26.x as a library, PyPI `chdb`) behind a small
# HTTP shim (scripts/peers/chdb_shim.py) on 127.0.0.1, so the ClickHouse
# backend's tests run the *modern* schema profile (Map, LowCardinality,
# codecs, skip indexes, TTL) besides Debian's 18.16. The venv lives under
# $LOUPE_TEST_VENV (default ~/.cache/loupe-venv)/chdb (about 900 MB: chdb
# pulls in pandas and pyarrow); data, pid, port and log under
# $LOUPE_TEST_CHDB_DIR (default /tmp/loupe-test-chdb). Idempotent: the venv
# is created only when chdb does not import, a shim already answering /ping
# on the recorded port is reused.
#
# Usage: scripts/peers/chdb.sh     (logs go to stderr)
# Prints: export LOUPE_TEST_CHDB_URL=http://127.0.0.1:PORT
# (scripts/test.sh evals it). Stop: kill "$(cat $LOUPE_TEST_CHDB_DIR/pid)"
set -euo pipefail

log() { echo "chdb: $*" >&2; }

VENV_ROOT="${LOUPE_TEST_VENV:-$HOME/.cache/loupe-venv}"
PYTHON="${PYTHON:-python3}"
venv="$VENV_ROOT/chdb"
DIR="${LOUPE_TEST_CHDB_DIR:-/tmp/loupe-test-chdb}"
SHIM="$(cd "$(dirname "$0")" && pwd)/chdb_shim.py"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import chdb" 2>/dev/null; then
    log "$venv is ready (chdb $("$venv/bin/python" -c "import chdb; print(chdb.__version__)"))"
else
    log "creating $venv with chdb"
    mkdir -p "$VENV_ROOT"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'chdb>=4' >&2
fi

mkdir -p "$DIR/data"
pings() { curl -sf --max-time 2 "http://127.0.0.1:$1/ping" 2>/dev/null | grep -q Ok; }

if [ -f "$DIR/port" ] && [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null \
    && pings "$(cat "$DIR/port")"; then
    PORT=$(cat "$DIR/port")
    log "reusing the shim on port $PORT"
else
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log "starting the chdb shim on 127.0.0.1:$PORT"
    # setsid: the shim outlives this script (and the eval that ran it).
    setsid "$venv/bin/python" "$SHIM" 127.0.0.1 "$PORT" "$DIR/data" \
        >"$DIR/log.txt" 2>&1 < /dev/null &
    echo $! > "$DIR/pid"
    echo "$PORT" > "$DIR/port"
    for _ in $(seq 1 200); do
        pings "$PORT" && break
        sleep 0.1
    done
    pings "$PORT" || { log "the shim did not answer; see $DIR/log.txt"; exit 1; }
fi
log "ready ($(curl -s --data-binary 'SELECT version()' "http://127.0.0.1:$PORT/"))"
echo "export LOUPE_TEST_CHDB_URL=http://127.0.0.1:$PORT"
