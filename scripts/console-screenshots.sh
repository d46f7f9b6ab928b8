#!/usr/bin/env bash
# Regenerates docs/console/*.png: builds loupe, starts `loupe serve` on a
# free loopback port with a temp data dir and an API key, loads the recorded
# Dify 1.14.1 traffic and three days of generated runs, and screenshots
# every console page in headless chromium (crates/console/tests/screenshots.mjs).
#
# Usage: scripts/console-screenshots.sh      (needs scripts/peers/chromium.sh's installs)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loupe-target}"
eval "$(bash scripts/peers/chromium.sh)"
cargo build -p loupe --quiet
BIN="$CARGO_TARGET_DIR/debug/loupe"
FIX="$ROOT/../shared/fixtures/dify-1.14.1"
[ -d "$FIX" ] || { echo "error: $FIX not found: the checkout must sit beside shared/" >&2; exit 1; }

WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
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
TOML
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

mkdir -p docs/console
node crates/console/tests/screenshots.mjs "$URL" "$ROOT/docs/console" "$(python3 -c 'import json,sys; print(json.dumps(dict(zip(["pk","sk","failedRun","run","user","session","from","to"], sys.argv[1:]))))' \
    "$PK" "$SK" "$FAILED" "$RUN_ID" "$USER_ID" "$SESSION" "$FROM" "$TO")"
echo "screenshots written to docs/console/" >&2
