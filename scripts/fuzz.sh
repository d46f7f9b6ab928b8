#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for FUZZ_SECONDS (default 20) each,
# on the stable toolchain (`-s none`: no sanitizer; see fuzz/README.md).
# Seeds come from ../shared/fixtures and fuzz/seeds, copied at run time.
# Installs cargo-fuzz from crates.io when missing. Fails on any crash.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loupe-target}"
seconds="${FUZZ_SECONDS:-20}"
fixtures=../shared/fixtures
corpus="$CARGO_TARGET_DIR/fuzz-corpus"
# Instrumented builds differ from the main ones: keep them apart.
fuzz_target_dir="$CARGO_TARGET_DIR/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

seed() {
  local target=$1; shift
  mkdir -p "$corpus/$target"
  for f in "$@"; do
    [ -e "$f" ] && cp "$f" "$corpus/$target/"
  done
  return 0
}

seed otlp_protobuf "$fixtures"/dify-1.14.1/*.bin "$fixtures"/clients/*.bin
seed otlp_json fuzz/seeds/otlp_json/*
seed query_language fuzz/seeds/query/*
seed sql_guard fuzz/seeds/sql/*
seed wal_reader crates/store/tests/data/*.wal
seed es_bulk fuzz/seeds/es_bulk/*
seed otlp_logs fuzz/seeds/otlp_json/*
# Langfuse: the request bodies of the recorded conversations, one per file.
mkdir -p "$corpus/langfuse_batch"
python3 - "$fixtures" "$corpus/langfuse_batch" <<'PY'
import json, pathlib, sys
fixtures, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
n = 0
for path in sorted(fixtures.rglob("*.json")):
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        continue
    bodies = [r.get("body") for r in doc.get("requests", [])] if isinstance(doc, dict) else []
    if isinstance(doc, dict) and "batch" in doc:
        bodies.append(doc)
    for body in bodies:
        if isinstance(body, dict) and "batch" in body:
            n += 1
            (out / f"{path.stem}-{n}.json").write_text(json.dumps(body))
print(f"langfuse_batch: {n} seed bodies")
PY

cargo fuzz build -s none --dev --fuzz-dir fuzz --target-dir "$fuzz_target_dir"
log="$CARGO_TARGET_DIR/fuzz-run.log"
for target in otlp_protobuf otlp_json langfuse_batch query_language sql_guard wal_reader es_bulk otlp_logs; do
  echo "--> $target ($seconds s)"
  status=0
  cargo fuzz run -s none --dev --fuzz-dir fuzz --target-dir "$fuzz_target_dir" \
    "$target" "$corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len=65536 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^(INFO: seed corpus|stat::number_of_executed_units|stat::peak_rss_mb)|Done [0-9]+ runs" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed (exit $status): the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
