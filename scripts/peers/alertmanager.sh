#!/bin/sh
# Installs Prometheus Alertmanager from Debian if missing (idempotent; runs
# apt-get update only when it must install) and prints the variable the
# alerting end-to-end test (crates/loupe/tests/it/alerts.rs) needs.
set -eu
BIN=/usr/bin/prometheus-alertmanager
if [ ! -x "$BIN" ]; then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-alertmanager >&2
fi
"$BIN" --version >&2 2>&1 || true
echo "export LOUPE_TEST_ALERTMANAGER=$BIN"
