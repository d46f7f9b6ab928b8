#!/usr/bin/env bash
# Starts an S3-compatible server on 127.0.0.1 for the cold-tier and export
# tests (crates/store, crates/loupe): moto's server mode from PyPI, in a
# virtualenv under $LOUPE_TEST_VENV (default ~/.cache/loupe-venv). moto keeps
# objects in its process memory; its pid, port and log live in
# $LOUPE_TEST_S3_DIR (default /tmp/loupe-test-s3). Idempotent: the venv is
# created only when moto does not import, a server already answering on the
# recorded port is reused. Tests create their own bucket per test.
#
# Usage: scripts/peers/s3.sh     (logs go to stderr)
# Prints: export LOUPE_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
# (scripts/test.sh evals it). Stop: kill "$(cat $LOUPE_TEST_S3_DIR/pid)"
set -euo pipefail

log() { echo "s3: $*" >&2; }

VENV_ROOT="${LOUPE_TEST_VENV:-$HOME/.cache/loupe-venv}"
PYTHON="${PYTHON:-python3}"
venv="$VENV_ROOT/moto"
DIR="${LOUPE_TEST_S3_DIR:-/tmp/loupe-test-s3}"

if [ -x "$venv/bin/moto_server" ] && "$venv/bin/python" -c "import moto, flask" 2>/dev/null; then
    log "$venv is ready (moto $("$venv/bin/python" -c "import moto; print(moto.__version__)"))"
else
    log "creating $venv with moto[server]"
    mkdir -p "$VENV_ROOT"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5' >&2
fi

mkdir -p "$DIR"
answers() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/" 2>/dev/null; }

if [ -f "$DIR/port" ] && [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null \
    && answers "$(cat "$DIR/port")"; then
    PORT=$(cat "$DIR/port")
    log "reusing moto on port $PORT"
else
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log "starting moto on 127.0.0.1:$PORT"
    # setsid: the server outlives this script (and the eval that ran it).
    TMPDIR="$DIR" setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$PORT" \
        >"$DIR/log.txt" 2>&1 < /dev/null &
    echo $! > "$DIR/pid"
    echo "$PORT" > "$DIR/port"
    for _ in $(seq 1 100); do
        answers "$PORT" && break
        sleep 0.1
    done
    answers "$PORT" || { log "moto did not answer; see $DIR/log.txt"; exit 1; }
fi
log "ready"
echo "export LOUPE_TEST_S3_ENDPOINT=http://127.0.0.1:$PORT"
