#!/usr/bin/env bash
# Creates the Python virtualenvs the log-ingest end-to-end tests drive as
# real clients (crates/loupe/tests/it/logs_es.rs, logs_otlp.rs):
#   $LOUPE_TEST_VENV/es7   - the official Elasticsearch client 7.17 (elasticsearch7)
#   $LOUPE_TEST_VENV/es8   - the official Elasticsearch client 8.x (elasticsearch<9)
#   $LOUPE_TEST_VENV/otel  - the OpenTelemetry Python SDK with the OTLP/HTTP exporter
# Each gets its own venv (the two client majors install the same module
# name in 8's case). Idempotent: a venv whose package already imports is
# left alone. PyPI only.
#
# Usage: scripts/peers/python-logs.sh
# Prints the `export LOUPE_TEST_…_PYTHON=…` lines scripts/test.sh evals.
set -euo pipefail

VENV_ROOT="${LOUPE_TEST_VENV:-$HOME/.cache/loupe-venv}"
PYTHON="${PYTHON:-python3}"

ensure_venv() {
    local name="$1" module="$2"
    shift 2
    local dir="$VENV_ROOT/$name"
    if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "import $module" 2>/dev/null; then
        echo "python-logs: $dir is ready" >&2
        return
    fi
    echo "python-logs: creating $dir with $*" >&2
    mkdir -p "$VENV_ROOT"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
}

ensure_venv es7 elasticsearch7 'elasticsearch7>=7.17,<7.18'
ensure_venv es8 elasticsearch 'elasticsearch>=8,<9'
ensure_venv otel opentelemetry.exporter.otlp.proto.http._log_exporter \
    'opentelemetry-sdk>=1.25,<2' 'opentelemetry-exporter-otlp-proto-http>=1.25,<2'

echo "export LOUPE_TEST_ES7_PYTHON=$VENV_ROOT/es7/bin/python"
echo "export LOUPE_TEST_ES8_PYTHON=$VENV_ROOT/es8/bin/python"
echo "export LOUPE_TEST_OTEL_PYTHON=$VENV_ROOT/otel/bin/python"
