#!/usr/bin/env bash
# Creates the Python virtualenv with DuckDB that `loupe-bench` drives as its
# third side (DuckDB over the same rows as plain Parquet files):
#   $LOUPE_TEST_VENV/duckdb  - the `duckdb` module from PyPI
# Idempotent: a venv whose duckdb already imports is left alone.
#
# Usage: scripts/peers/duckdb.sh
# Then:  export LOUPE_TEST_DUCKDB_PYTHON=$LOUPE_TEST_VENV/duckdb/bin/python
# (the script prints that line; scripts/test.sh evals it). `loupe-bench`
# reads the same path from --duckdb-python or LOUPE_BENCH_DUCKDB_PYTHON.
set -euo pipefail

VENV_ROOT="${LOUPE_TEST_VENV:-$HOME/.cache/loupe-venv}"
PYTHON="${PYTHON:-python3}"
dir="$VENV_ROOT/duckdb"

if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "import duckdb" 2>/dev/null; then
    echo "duckdb: $dir is ready (duckdb $("$dir/bin/python" -c "import duckdb; print(duckdb.__version__)"))" >&2
else
    echo "duckdb: creating $dir with duckdb" >&2
    mkdir -p "$VENV_ROOT"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check 'duckdb>=1.1'
fi

echo "export LOUPE_TEST_DUCKDB_PYTHON=$dir/bin/python"
