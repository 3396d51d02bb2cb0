#!/usr/bin/env bash
# The whole test suite on a fresh machine: install what is missing, build the binaries and
# the guest fixtures from source, check the seccomp allowlist against what workers really do
# (strace), then run every test (unit and integration, real processes). Run as root (as CI
# does), it then runs the integration suite a second time as an ordinary user (uid 65534),
# because the sandbox takes other paths there (no privilege drop, an unprivileged user
# namespace). Extra arguments go to both `swift test` runs (e.g. --filter SandboxTests).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
swift build --build-tests --quiet
scripts/build-fixtures.sh
scripts/seccomp-audit.sh
swift test --skip-build "$@"

[ "$(id -u)" -eq 0 ] || exit 0
scripts/test-unprivileged.sh "$@"
