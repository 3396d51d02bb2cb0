#!/usr/bin/env bash
# The main job on the built-in demo manifest: install what is missing, build, start the
# supervisor on Fixtures/demo.yaml with its HTTP gateway, call each plugin (CLI and HTTP),
# show status and a few metrics, stop.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
swift build --quiet
scripts/build-fixtures.sh
bin=$(swift build --show-bin-path)

runtime=$(mktemp -d)
control="$runtime/control.sock"
trap '"$bin/plugvisor" stop --control "$control" >/dev/null 2>&1 || true; rm -rf "$runtime"' EXIT

"$bin/plugvisor" validate Fixtures/demo.yaml
"$bin/plugvisor" start Fixtures/demo.yaml --control "$control" --http 127.0.0.1:0 2>"$runtime/supervisor.log" &
supervisor=$!
for _ in $(seq 100); do
    "$bin/plugvisor" status --control "$control" >/dev/null 2>&1 && break
    kill -0 "$supervisor" 2>/dev/null || { cat "$runtime/supervisor.log" >&2; exit 1; }
    sleep 0.1
done

run() { echo "\$ plugvisor $*"; "$bin/plugvisor" "$@" --control "$control"; echo; }
run call echo -p hello=world
run call json-transformer -p action=transform -p format=json --request-id demo-1
run call hello-c -p name=Ada
run call hello-swift
run call greeter-swift -p name=Grace
run call greeter-rust -p name=Linus
run status

gateway=$(grep -o 'http://127.0.0.1:[0-9]*' "$runtime/supervisor.log" | head -n 1)
echo "\$ curl -X POST $gateway/v1/plugins/hello-c/execute -d '{\"name\": \"Grace\"}'"
curl -sS -X POST "$gateway/v1/plugins/hello-c/execute" -H 'X-Request-ID: demo-http' -d '{"name": "Grace"}'
echo
echo "\$ curl $gateway/metrics | grep calls_total"
curl -sS "$gateway/metrics" | grep '^plugvisor_calls_total'
echo
"$bin/plugvisor" stop --control "$control"
wait "$supervisor"
echo "--- supervisor log"
cat "$runtime/supervisor.log"
