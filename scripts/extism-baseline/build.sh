#!/usr/bin/env bash
# Builds the benchmark's in-process baseline: Extism's C host (extism-host.c) linked against
# libextism from PyPI's extism-sys wheel, in a venv of its own under .build, and the no-op
# Extism plugin (noop.wat). Bench-only: nothing else in plugvisor uses Extism.
#
#   scripts/extism-baseline/build.sh [OUT_DIR]      (default .build/extism-baseline)
#
# On success OUT_DIR holds extism-host and noop.wasm. When something is missing (no python3
# venv, no network to PyPI, no wheel for this platform, no gcc) it writes the reason to
# OUT_DIR/skipped, says it on stderr and still exits 0: the benchmark then leaves the Extism
# keys out instead of failing.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/.build/extism-baseline}"
venv="$root/.build/extism-venv"
# Pinned, so that the baseline only changes when this line does.
extism_sys_version=1.41.0

mkdir -p "$out"
rm -f "$out/skipped" "$out/extism-host" "$out/noop.wasm"
skip() {
    echo "$*" >"$out/skipped"
    echo "extism baseline skipped: $*" >&2
    exit 0
}

command -v gcc >/dev/null || skip "gcc is not installed"
command -v wat2wasm >/dev/null || skip "wat2wasm (wabt) is not installed"
if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv" >&2 || { rm -rf "$venv"; skip "python3 cannot make a venv (Debian: apt-get install python3-venv)"; }
fi
if ! "$venv/bin/pip" show extism-sys 2>/dev/null | grep -qx "Version: $extism_sys_version"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check --retries 1 --timeout 20 \
        "extism-sys==$extism_sys_version" >&2 ||
        skip "pip could not install extism-sys==$extism_sys_version (no PyPI, or no wheel for $(uname -m))"
fi
# The wheel's package directory holds libextism_sys.so (and a cffi binding, but no extism.h:
# extism-host.c declares the functions it uses).
library=$(find "$venv/lib" -path "*/site-packages/extism_sys/libextism_sys.so" -print -quit)
[ -n "$library" ] || skip "the extism-sys wheel has no libextism_sys.so"
libdir=$(dirname "$library")

gcc -O2 -Wall -Wextra -o "$out/extism-host" "$here/extism-host.c" \
    -L"$libdir" -l:libextism_sys.so -Wl,-rpath,"$libdir" -pthread ||
    skip "extism-host.c did not compile against $library"
wat2wasm "$here/noop.wat" -o "$out/noop.wasm" || skip "noop.wat did not assemble"
"$out/extism-host" "$out/noop.wasm" 10 >/dev/null || skip "extism-host could not call the no-op plugin"
echo "extism baseline: $out/extism-host with extism-sys $extism_sys_version" >&2
