#!/usr/bin/env bash
# The whole test suite on a fresh machine: install what is missing, build the binaries and
# the guest fixtures from source, check the seccomp allowlist against what workers really do
# (strace), then run every test (unit and integration, real processes).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
swift build --build-tests --quiet
scripts/build-fixtures.sh
scripts/seccomp-audit.sh
swift test --skip-build "$@"
