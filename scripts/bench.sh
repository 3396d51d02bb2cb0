#!/usr/bin/env bash
# Builds in release mode and measures plugvisor against a floor taken in the same run: a bare
# socketpair ping-pong between two processes with the same frame bytes a call carries, and
# against Extism's in-process C host (scripts/extism-baseline). Measures every way in too: the
# library API, the async API, the HTTP gateway (with wrk) and the CLI.
# Prints a table and the targets of DESIGN §8, and writes bench-results.json at the root.
# Binaries are linked with --static-swift-stdlib, as for production: workers start faster and
# share fewer, smaller mappings.
# The release build has a build folder of its own (.build-bench): SwiftPM keeps one build
# database and one plugin-tools build per folder, so a release build in .build made the next
# debug `swift build` recompile WasmKit's plugin tools and their modules (40-60 s).
set -euo pipefail
cd "$(dirname "$0")/.."
release=(-c release --static-swift-stdlib --scratch-path .build-bench)

scripts/bootstrap.sh
scripts/bench-deps.sh
swift build "${release[@]}" --quiet --product plugvisor
swift build "${release[@]}" --quiet --product plugvisor-worker
swift build "${release[@]}" --quiet --product plugvisor-pingpong
swift build "${release[@]}" --quiet --product plugvisor-bench
scripts/build-fixtures.sh
scripts/extism-baseline/build.sh "$PWD/.build/extism-baseline"
bin=$(swift build "${release[@]}" --show-bin-path)
"$bin/plugvisor-bench" "$PWD/Fixtures/plugins" "$bin" "$PWD/bench-results.json" "$PWD/.build/extism-baseline"
