#!/usr/bin/env bash
# The whole test suite on a fresh machine: check the formatting (.swift-format), install what
# is missing, build the binaries and the guest fixtures from source, check the seccomp
# allowlist against what workers really do (strace), then run every test (unit and
# integration, real processes). Run as root (as CI does), it then runs the integration suite a
# second time as an ordinary user (uid 65534), because the sandbox takes other paths there (no
# privilege drop, an unprivileged user namespace). With arguments (e.g. --filter
# SandboxTests), both runs take those instead.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/check-format.sh   # seconds, before minutes of building: `scripts/check-format.sh --fix`
scripts/bootstrap.sh
swift build --build-tests --quiet
scripts/build-fixtures.sh
scripts/seccomp-audit.sh
if [ $# -gt 0 ]; then
    swift test --skip-build "$@"
else
    # Suites that bound how long hostile input may hold a caller run one test at a time, after
    # the rest: on 2 cores, the other suites running beside them would make any bound noise.
    swift test --skip-build --skip "$(scripts/test-unprivileged.sh --bounded-suites)"
    swift test --skip-build --filter "$(scripts/test-unprivileged.sh --bounded-suites)" --no-parallel
fi

[ "$(id -u)" -eq 0 ] || exit 0
scripts/test-unprivileged.sh "$@"
