#!/usr/bin/env bash
# Checks that the Swift sources keep to .swift-format (4 spaces, 120 columns, as swift-nio and
# swift-service-lifecycle), with `swift format lint --strict`, the formatter in the toolchain.
# Exit 1 with the findings and the command that fixes them. With --fix, formats the same files
# in place instead (what to run after a merge). The files: Sources, Tests, Examples and
# Package.swift. Not kits/ or Fixtures/: guest code and `plugvisor new`'s templates are kept
# as written (Sources/PlugvisorCLI/Kits links to kits/; symbolic links are not followed).
set -euo pipefail
cd "$(dirname "$0")/.."

paths=(Sources Tests Examples Package.swift)
fix="swift format format --in-place --recursive --parallel ${paths[*]}"

swift format --version >/dev/null 2>&1 || {
    echo "check-format: 'swift format' is missing (it ships with Swift 6 toolchains)" >&2
    exit 1
}

if [ "${1:-}" = "--fix" ]; then
    $fix
    exit 0
fi

findings=$(mktemp)
trap 'rm -rf "$findings"' EXIT
if swift format lint --strict --recursive --parallel "${paths[@]}" 2>"$findings"; then
    exit 0
fi
count=$(grep -c ': error: ' "$findings" || true)
head -n 40 "$findings" >&2
[ "$count" -le 40 ] || echo "... and $((count - 40)) more" >&2
cat >&2 <<MESSAGE

check-format: $count findings against .swift-format. Fix them with
    scripts/check-format.sh --fix        (that is: $fix)
and commit the result; anything left after that is for a hand to fix.
MESSAGE
exit 1
