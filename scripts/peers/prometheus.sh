#!/usr/bin/env bash
# Makes Prometheus 2.x and promtool (Debian package) available for the
# /metrics tests (crates/loupe/tests/it/metrics.rs) and the rules check.
# Idempotent: installs the package only when a binary is missing (running
# `apt-get update` only then). Starts nothing: the package does not start a
# service (policy-rc.d), and each test starts its own Prometheus on a free
# loopback port with a temp TSDB directory.
#
# Usage: scripts/peers/prometheus.sh     (logs go to stderr)
# Prints (scripts/test.sh evals it):
#   export LOUPE_TEST_PROMETHEUS=/usr/bin/prometheus
#   export LOUPE_TEST_PROMTOOL=/usr/bin/promtool
set -euo pipefail

log() { echo "prometheus: $*" >&2; }

if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then
    log "installing prometheus (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends prometheus >&2
fi
[ -x /usr/bin/prometheus ] || { log "/usr/bin/prometheus missing after install"; exit 1; }
[ -x /usr/bin/promtool ] || { log "/usr/bin/promtool missing after install"; exit 1; }
log "$(/usr/bin/prometheus --version 2>&1 | head -1)"

echo "export LOUPE_TEST_PROMETHEUS=/usr/bin/prometheus"
echo "export LOUPE_TEST_PROMTOOL=/usr/bin/promtool"
