#!/usr/bin/env bash
# Installs what the console's browser tests drive (crates/loupe/tests/it/console.rs):
#   - Debian's chromium (apt), run headless, and a CJK font
#     (fonts-wqy-microhei) so the Chinese console renders in screenshots;
#   - playwright-core from npm, pinned by crates/console/tests/package-lock.json,
#     installed with `npm ci` into a cache directory outside the checkout.
#     playwright-core never downloads a browser of its own.
# Idempotent: an installed chromium and a node_modules matching the lock
# file are left alone.
#
# Usage: scripts/peers/chromium.sh     (logs go to stderr)
# Prints: export LOUPE_TEST_CHROMIUM=/usr/bin/chromium
#         export LOUPE_TEST_NODE_MODULES=$LOUPE_TEST_NODE_DIR/node_modules
# (scripts/test.sh evals them). Directory: $LOUPE_TEST_NODE_DIR, default
# ~/.cache/loupe-console-node.
set -euo pipefail

log() { echo "chromium: $*" >&2; }

cd "$(dirname "$0")/../.."
SRC=crates/console/tests
DIR="${LOUPE_TEST_NODE_DIR:-$HOME/.cache/loupe-console-node}"

if ! command -v chromium >/dev/null 2>&1 || ! dpkg -s fonts-wqy-microhei >/dev/null 2>&1; then
    log "installing chromium and fonts-wqy-microhei (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq chromium fonts-wqy-microhei >&2
fi
CHROMIUM=$(command -v chromium)
log "$("$CHROMIUM" --version 2>/dev/null | tail -1)"

command -v npm >/dev/null 2>&1 || { log "npm is missing: install Node.js (20 or later) and npm"; exit 1; }
mkdir -p "$DIR"
if [ -d "$DIR/node_modules/playwright-core" ] && cmp -s "$SRC/package-lock.json" "$DIR/package-lock.json"; then
    log "playwright-core in $DIR is up to date"
else
    log "npm ci playwright-core into $DIR"
    cp "$SRC/package.json" "$SRC/package-lock.json" "$DIR/"
    (cd "$DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
fi
echo "export LOUPE_TEST_CHROMIUM=$CHROMIUM"
echo "export LOUPE_TEST_NODE_MODULES=$DIR/node_modules"
