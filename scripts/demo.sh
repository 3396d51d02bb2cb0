#!/usr/bin/env bash
# The main job on the built-in demo manifest: install what is missing, build, start the
# supervisor on Fixtures/demo.yaml, call each plugin, show status, stop.
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
"$bin/plugvisor" start Fixtures/demo.yaml --control "$control" 2>"$runtime/supervisor.log" &
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
run call hello-swift -p text=plugvisor
run status
"$bin/plugvisor" stop --control "$control"
wait "$supervisor"
echo "--- supervisor log"
cat "$runtime/supervisor.log"
