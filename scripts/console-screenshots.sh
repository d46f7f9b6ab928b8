#!/usr/bin/env bash
# Regenerates docs/console/*.png: builds loupe, starts `loupe serve` on a
# free loopback port with a temp data dir and an API key, loads the recorded
# Dify 1.14.1 traffic and three days of generated runs, and screenshots
# every console page in headless chromium (crates/console/tests/screenshots.mjs).
# A scratch Dify database (Dify 1.14.1's schema) on the PostgreSQL of
# scripts/peers/postgres.sh feeds the Dify page's sync; it is dropped at the end.
#
# Usage: scripts/console-screenshots.sh      (needs scripts/peers/chromium.sh's and postgres.sh's installs)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loupe-target}"
eval "$(bash scripts/peers/chromium.sh)"
# A Dify database (Dify 1.14.1's schema) for the Dify page's live sync.
eval "$(bash scripts/peers/postgres.sh)"
cargo build -p loupe --quiet
BIN="$CARGO_TARGET_DIR/debug/loupe"
FIX="$ROOT/../shared/fixtures/dify-1.14.1"
[ -d "$FIX" ] || { echo "error: $FIX not found: the checkout must sit beside shared/" >&2; exit 1; }

WORK=$(mktemp -d)
PID=
DIFY_DSN=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"
    [ -n "$DIFY_DSN" ] && psql -q "$LOUPE_TEST_PG_URL" -c "DROP DATABASE IF EXISTS ${DIFY_DSN##*/}" >/dev/null 2>&1 || true
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HTTP=$(port)
GRPC=$(port)
URL="http://127.0.0.1:$HTTP"
cat > "$WORK/loupe.toml" <<'TOML'
[[tags]]
name = "category"
from = "input"
path = "category"

[[tags]]
name = "user_tier"
from = "input"
path = "inputs.profile.tier"

[metrics]
labels = ["category"]

[dify]
project = "shop"
web_url = "https://dify.example.com"
interval = "5s"
dsn = "@DIFY_DSN@"

[alerts]
enabled = true
interval = "2s"

[[alerts.channels]]
name = "ops-dingtalk"
type = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send?access_token=example"

[[alerts.rules]]
name = "inventory-failing"
project = "shop"
metric = "failure_rate"
threshold = "10%"
window = "3h"
severity = "critical"
summary = "The inventory tool fails for more than 10% of calls"
filters = { tool_name = "inventory" }
group_by = ["tags.category"]

[[alerts.rules]]
name = "slow-runs"
project = "shop"
metric = "p95_latency"
threshold = "30s"
window = "1h"
for = "10m"
filters = { span_kind = "workflow" }

[[budgets]]
name = "llm-month"
project = "shop"
amount = 20.0
thresholds = [0.5, 0.8, 1.0]

[[alerts.rules]]
name = "tool-failing-in-a-row"
project = "shop"
type = "event"
consecutive = 5
within = "10m"
group_by = ["tool_name"]
TOML
DIFY_DB="loupe_shots_$$"
psql -q "$LOUPE_TEST_PG_URL" -c "CREATE DATABASE $DIFY_DB" >/dev/null
DIFY_DSN="${LOUPE_TEST_PG_URL%/*}/$DIFY_DB"
psql -q "$DIFY_DSN" -f crates/dify/src/ddl/dify_1_14_1.sql >/dev/null
# Three runs an hour old and one 40 days old (older than the 30-day retention: skipped).
psql -q "$DIFY_DSN" >/dev/null <<'SQL'
INSERT INTO apps (id, tenant_id, name, mode) VALUES
  ('4f3a79b4-ea93-49ef-80c2-fad1a9001a14', 'c620c103-fd6c-4fef-a6d5-07deeb985b15', 'Shop', 'workflow');
INSERT INTO workflow_runs (id, tenant_id, app_id, workflow_id, type, triggered_from, version, graph, inputs, status,
  outputs, error, elapsed_time, total_tokens, total_steps, created_by_role, created_by, created_at, finished_at, exceptions_count)
SELECT gen_random_uuid(), 'c620c103-fd6c-4fef-a6d5-07deeb985b15', '4f3a79b4-ea93-49ef-80c2-fad1a9001a14',
  '37059656-d740-4323-8168-9c55beede6c8', 'workflow', 'app-run', 'v1', '{}', '{"category": "phone"}', 'succeeded', '{}',
  NULL, 0.5, 0, 0, 'end_user', gen_random_uuid(), at, at + interval '500 milliseconds', 0
FROM (VALUES (now() AT TIME ZONE 'UTC' - interval '1 hour'), (now() AT TIME ZONE 'UTC' - interval '50 minutes'),
             (now() AT TIME ZONE 'UTC' - interval '40 minutes'), (now() AT TIME ZONE 'UTC' - interval '40 days')) AS t(at);
SQL
sed -i "s|@DIFY_DSN@|$DIFY_DSN|" "$WORK/loupe.toml"
KEY=$("$BIN" keys create --json --project shop --scope admin --data-dir "$WORK/data")
PK=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["public_key"])' "$KEY")
SK=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["secret_key"])' "$KEY")
RUST_LOG=warn "$BIN" serve --config "$WORK/loupe.toml" --data-dir "$WORK/data" \
    --http-addr "127.0.0.1:$HTTP" --grpc-addr "127.0.0.1:$GRPC" >"$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.2; done

for f in "$FIX"/dify_langfuse_workflow_*.json; do
    python3 - "$f" "$URL" "$PK" "$SK" <<'PY'
import base64, json, sys, urllib.request
capture, url, pk, sk = sys.argv[1:]
auth = "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode()
for r in json.load(open(capture))["requests"]:
    req = urllib.request.Request(url + "/api/public/ingestion", data=json.dumps(r["body"]).encode(),
                                 headers={"content-type": "application/json", "authorization": auth})
    urllib.request.urlopen(req).read()
PY
done
"$BIN" gen --otlp "$URL" --public-key "$PK" --secret-key "$SK" --runs 3000 --days 3 \
    --fault 'tool=inventory,category=phone,error_rate=0.6,latency=2s' >&2

q() {
    curl -sf -u "$PK:$SK" "$URL/api/v1/query" -H 'content-type: application/json' \
        -d "$(python3 -c 'import json,sys; print(json.dumps({"q": sys.argv[1]}))' "$1")" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0][0])'
}
FROM=$(date -u -d '-3 days -1 hour' +%Y-%m-%dT%H:%M:%SZ)
TO=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
W="from $FROM to $TO"
RUN_ID=$(curl -sf -u "$PK:$SK" "$URL/api/v1/query" -H 'content-type: application/json' \
    -d "$(python3 -c 'import json,sys; print(json.dumps({"q": sys.argv[1]}))' "$W span_kind=workflow status=error run has (tool_name=inventory) | sort start_time desc | limit 1")" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["rows"][0][[c["name"] for c in d["columns"]].index("run_id")])')
USER_ID=$(q "span_kind=workflow user_id exists $W | by user_id | count() as n | sort n desc | limit 1")
SESSION=$(q "span_kind=workflow session_id exists $W | by session_id | count() as n | sort n desc | limit 1")
FAILED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["workflow_run_id"])' "$FIX/dify_langfuse_workflow_failed_http.json")

# A silence, so the alerts page shows one.
curl -sf -u "$PK:$SK" "$URL/api/v1/alerts/silences" -H 'content-type: application/json' -H 'x-loupe-console: 1' \
    -d "{\"matchers\": {\"alertname\": \"slow-runs\"}, \"ends_at\": \"$(date -u -d '+4 hours' +%Y-%m-%dT%H:%M:%SZ)\", \"created_by\": \"ops\", \"comment\": \"deploy window\"}" >/dev/null
sleep 3

mkdir -p docs/console
node crates/console/tests/screenshots.mjs "$URL" "$ROOT/docs/console" "$(python3 -c 'import json,sys; print(json.dumps(dict(zip(["pk","sk","failedRun","run","user","session","from","to"], sys.argv[1:]))))' \
    "$PK" "$SK" "$FAILED" "$RUN_ID" "$USER_ID" "$SESSION" "$FROM" "$TO")"
echo "screenshots written to docs/console/" >&2
