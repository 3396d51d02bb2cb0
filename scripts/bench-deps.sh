#!/usr/bin/env bash
# Installs what only the benchmark needs, beyond scripts/bootstrap.sh: wrk (the HTTP gateway's
# load generator) and what the Extism baseline is built with (python3's venv for PyPI's
# extism-sys, gcc). A failed install is reported and the benchmark goes on without the
# measurements that need it.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v gcc >/dev/null || need+=(gcc)
command -v python3 >/dev/null || need+=(python3)
# Debian's python3 makes no venv with pip in it without python3-venv: try one, unless the
# baseline's venv is already there.
if command -v python3 >/dev/null && [ ! -x "$root/.build/extism-venv/bin/pip" ]; then
    trial=$(mktemp -d)
    python3 -m venv "$trial/venv" >/dev/null 2>&1 || need+=(python3-venv)
    rm -rf "$trial"
fi

if [ ${#need[@]} -gt 0 ]; then
    echo "bench-deps: installing ${need[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends "${need[@]}" >/dev/null; } ||
        echo "bench-deps: could not install ${need[*]}; the measurements that need them are skipped" >&2
fi
exit 0
