#!/usr/bin/env bash
# Runs the integration suite, already built by root (scripts/test.sh), as an ordinary user:
# uid and gid 65534 with no supplementary groups, a HOME of its own, no XDG_RUNTIME_DIR.
# The tree must be readable by that user; a folder above it that others cannot enter (a clone
# under /root, say) gets o+x (enter, not list) for the run, and its mode back afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
# The suites whose tests bound time (a hostile peer answered within its timeout, a client
# served behind slow ones) or run load (several hosts behind haproxy, whose health checks
# must not starve): they run one at a time, after the others (scripts/test.sh too).
bounded='HostileJSONTests|CompromisedWorkerTests|GatewayTests|KitTests|SupervisionTests|AsyncPoolTests|ExtismTests|HostFunctionTests|DashboardBrowserTests|StatusWatchTests|SeveralHostsTests'
if [ "${1:-}" = --bounded-suites ]; then echo "$bounded"; exit 0; fi
[ "$(id -u)" -eq 0 ] || { echo "test-unprivileged: run as root (it switches to uid 65534)" >&2; exit 1; }
user=65534
as_user() { setpriv --reuid=$user --regid=$user --clear-groups "$@"; }

restore=()
trap 'for entry in "${restore[@]}"; do chmod "${entry%%:*}" "${entry#*:}"; done; rm -rf "${home:-}"' EXIT
dir=$PWD
while [ "$dir" != / ]; do
    if ! as_user test -x "$dir"; then
        restore+=("$(stat -c %a "$dir"):$dir")
        echo "test-unprivileged: $dir is closed to others; o+x for this run" >&2
        chmod o+x "$dir"
    fi
    dir=$(dirname "$dir")
done
bin=$(swift build --show-bin-path)
as_user test -r "$bin/plugvisor" || { echo "test-unprivileged: uid $user cannot read $bin" >&2; exit 1; }


home=$(mktemp -d /tmp/plugvisor-unprivileged-XXXXXX)
chown $user:$user "$home"
echo "test-unprivileged: the integration suite as uid $user" >&2
# The test bundle directly: `swift test` would want to write into .build.
run() {
    as_user env -i PATH="$PATH" HOME="$home" TMPDIR=/tmp LANG=C.UTF-8 \
        "$bin/plugvisorPackageTests.xctest" --testing-library swift-testing "$@"
}
if [ $# -gt 0 ]; then
    run "$@"
else
    run --filter IntegrationTests --skip "$bounded"
    run --filter "$bounded" --no-parallel
fi
