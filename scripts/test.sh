#!/usr/bin/env bash
# The one test entry point (CI runs exactly this via .ci/run).
#
# Steps, each timed: fmt check, clippy (warnings denied), docs (warnings
# denied), start real peers on 127.0.0.1 where tests need them, the whole
# test suite, the fuzz targets for a bounded time (scripts/fuzz.sh). Build artefacts live outside the clone in CARGO_TARGET_DIR
# (default ~/.cache/loupe-target) so repeated runs do not rebuild the world.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loupe-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The recorded traffic the tests replay lives beside the checkout.
if [ ! -d ../shared/fixtures ]; then
  echo "error: ../shared/fixtures not found: the tests need the shared/ folder beside this checkout" >&2
  exit 1
fi

step() {
  local name=$1; shift
  local start=$SECONDS
  echo "==> $name"
  "$@"
  echo "<== $name ($((SECONDS - start)) s)"
}

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo doc" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --document-private-items --locked --quiet

# Real peers and clients the tests talk to. Each script is idempotent,
# installs and starts what it needs on 127.0.0.1 and prints `export VAR=…`
# lines naming it for the tests.
peer() {
  local out
  out=$(bash "$1")
  echo "$out"
  eval "$out"
}
for script in scripts/peers/*.sh; do
  [ -e "$script" ] || continue
  step "peer $(basename "$script" .sh)" peer "$script"
done

step "cargo test" cargo test --workspace --all-targets --locked
# Every fuzz target for a bounded time (FUZZ_SECONDS, default 20 s each).
step "fuzz" bash scripts/fuzz.sh
