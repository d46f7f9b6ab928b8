#!/usr/bin/env bash
# Creates the Python virtualenvs the end-to-end tests drive as real clients:
#   $LOUPE_TEST_VENV/langfuse2  - Langfuse Python SDK v2 (what Dify <= 1.13.2 links)
#   $LOUPE_TEST_VENV/langfuse4  - Langfuse Python SDK v4 (what Dify >= 1.13.3 links)
# The two SDK majors conflict, so each gets its own venv. Idempotent: a venv
# whose SDK already imports at the wanted major is left alone.
#
# Usage: scripts/peers/python-clients.sh
# Then:  export LOUPE_TEST_LANGFUSE2_PYTHON=$LOUPE_TEST_VENV/langfuse2/bin/python
#        export LOUPE_TEST_LANGFUSE4_PYTHON=$LOUPE_TEST_VENV/langfuse4/bin/python
# (the script prints these lines; scripts/test.sh evals them).
set -euo pipefail

VENV_ROOT="${LOUPE_TEST_VENV:-$HOME/.cache/loupe-venv}"
PYTHON="${PYTHON:-python3}"

ensure_venv() {
    local name="$1" spec="$2" major="$3"
    local dir="$VENV_ROOT/$name"
    if [ -x "$dir/bin/python" ] &&
        "$dir/bin/python" -c "import sys, importlib.metadata as m; sys.exit(0 if m.version('langfuse').split('.')[0] == '$major' else 1)" 2>/dev/null; then
        echo "python-clients: $dir is ready (langfuse $("$dir/bin/python" -c "import importlib.metadata as m; print(m.version('langfuse'))"))" >&2
        return
    fi
    echo "python-clients: creating $dir with $spec" >&2
    mkdir -p "$VENV_ROOT"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$spec"
}

ensure_venv langfuse2 'langfuse<3' 2
ensure_venv langfuse4 'langfuse>=4,<5' 4

echo "export LOUPE_TEST_LANGFUSE2_PYTHON=$VENV_ROOT/langfuse2/bin/python"
echo "export LOUPE_TEST_LANGFUSE4_PYTHON=$VENV_ROOT/langfuse4/bin/python"
