#!/usr/bin/env bash
# The HTTP gateway as any program would use it: curl against a real `plugvisor start --http`.
# Checks each route's status code and body, the admin token, the body limit (also for a
# chunked upload, which has no Content-Length), and a /metrics scrape.
# Usage: scripts/gateway-curl.sh [BIN_DIR]   (default: swift build --show-bin-path; the
# fixtures must be built: scripts/build-fixtures.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-${PLUGVISOR_BIN:-$(swift build --show-bin-path)}}
command -v curl >/dev/null || { echo "gateway-curl: curl is missing: run scripts/bootstrap.sh" >&2; exit 1; }

scratch=$(mktemp -d)
supervisor=""
cleanup() {
    [ -n "$supervisor" ] && kill "$supervisor" 2>/dev/null && wait "$supervisor" 2>/dev/null
    rm -rf "$scratch"
}
trap cleanup EXIT

cat >"$scratch/plugins.yaml" <<EOF
plugins:
  - {name: echo, wasm: $PWD/Fixtures/plugins/echo.wasm}
  - {name: transformer, wasm: $PWD/Fixtures/plugins/json-transformer.wasm}
EOF
token="curl-$RANDOM$RANDOM"
(umask 077 && echo "$token" >"$scratch/token")

"$bin/plugvisor" start "$scratch/plugins.yaml" --control "$scratch/control.sock" \
    --http 127.0.0.1:0 --token-file "$scratch/token" --http-max-body 4KiB 2>"$scratch/log" &
supervisor=$!
for _ in $(seq 200); do
    grep -q "HTTP gateway listening" "$scratch/log" && break
    kill -0 "$supervisor" 2>/dev/null || { cat "$scratch/log" >&2; exit 1; }
    sleep 0.05
done
base=$(grep -o 'http://127.0.0.1:[0-9]*' "$scratch/log" | head -n 1)
[ -n "$base" ] || { echo "gateway-curl: the gateway did not start" >&2; cat "$scratch/log" >&2; exit 1; }

failures=0
# check NAME EXPECTED_STATUS EXPECTED_BODY_SUBSTRING CURL_ARGS...
check() {
    local name=$1 want=$2 needle=$3
    shift 3
    local got
    got=$(curl -sS -o "$scratch/body" -w '%{http_code}' "$@")
    if [ "$got" != "$want" ] || ! grep -qF -- "$needle" "$scratch/body"; then
        echo "FAIL $name: HTTP $got (want $want), body: $(head -c 300 "$scratch/body") (want it to contain: $needle)"
        failures=$((failures + 1))
    else
        echo "ok   $name"
    fi
}

check "healthz" 200 '"status":"ok"' "$base/healthz"
check "execute with {parameters}" 200 '"_processed":true' -X POST "$base/v1/plugins/transformer/execute" \
    -H 'Content-Type: application/json' -d '{"parameters": {"action": "transform"}}'
check "execute echoes X-Request-ID" 200 '"request_id":"curl-1"' -X POST "$base/v1/plugins/echo/execute" \
    -H 'X-Request-ID: curl-1' -d '{"a": 1}'
check "execute unknown plugin" 404 '"code":"unknown_plugin"' -X POST "$base/v1/plugins/nosuch/execute" -d '{}'
check "execute malformed JSON" 400 '"code":"bad_request"' -X POST "$base/v1/plugins/echo/execute" -d '{"a": '
head -c 8192 /dev/zero | tr '\0' 'x' | sed 's/.*/{"pad": "&"}/' >"$scratch/large.json"
check "body over the limit" 413 '"code":"payload_too_large"' -X POST "$base/v1/plugins/echo/execute" \
    --data-binary "@$scratch/large.json"
check "chunked body over the limit" 413 '"code":"payload_too_large"' -X POST "$base/v1/plugins/echo/execute" \
    -H 'Transfer-Encoding: chunked' --data-binary "@$scratch/large.json"
check "list plugins" 200 '"name":"transformer"' "$base/v1/plugins"
check "one plugin" 200 '"name":"echo"' "$base/v1/plugins/echo"
check "kill without token" 401 '"code":"unauthorized"' -X POST "$base/v1/plugins/echo/kill"
check "kill with a wrong token" 401 '"code":"unauthorized"' -X POST "$base/v1/plugins/echo/kill" -H "Authorization: Bearer nope"
check "kill with the token" 200 '"state":"stopped"' -X POST "$base/v1/plugins/echo/kill" -H "Authorization: Bearer $token"
check "execute a stopped plugin" 503 '"code":"stopped"' -X POST "$base/v1/plugins/echo/execute" -d '{}'
check "restart with the token" 200 '"state":"ready"' -X POST "$base/v1/plugins/echo/restart" -H "Authorization: Bearer $token"
check "reload with the token" 200 '"result":"generation' -X POST "$base/v1/plugins/echo/reload" -H "Authorization: Bearer $token"
check "metrics" 200 'plugvisor_calls_total{plugin="transformer"} 1' "$base/metrics"
check "unknown route" 404 'no route GET /v2/nothing' "$base/v2/nothing"

if [ "$failures" -gt 0 ]; then
    echo "gateway-curl: $failures check(s) failed; supervisor log:"
    cat "$scratch/log"
    exit 1
fi
echo "gateway-curl: all checks passed"
