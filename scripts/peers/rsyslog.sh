#!/usr/bin/env bash
# Installs rsyslog with its Elasticsearch output (Debian's rsyslog and
# rsyslog-elasticsearch: omelasticsearch) for the shipper test
# (crates/loupe/tests/it/logs_rsyslog.rs), which runs its own rsyslogd as
# a child process with a temp config, tailing a file into a real
# `loupe serve`. Idempotent: apt runs only when the module is missing. The
# system's rsyslog service is not started.
#
# Usage: scripts/peers/rsyslog.sh
# Prints: export LOUPE_TEST_RSYSLOGD=/usr/sbin/rsyslogd
set -euo pipefail

if ! ls /usr/lib/*/rsyslog/omelasticsearch.so >/dev/null 2>&1; then
    echo "rsyslog: installing rsyslog-elasticsearch (apt)" >&2
    apt-get update -qq >&2
    # No service start inside the install (containers have no init).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        rsyslog rsyslog-elasticsearch >&2
fi
echo "export LOUPE_TEST_RSYSLOGD=$(command -v rsyslogd || echo /usr/sbin/rsyslogd)"
