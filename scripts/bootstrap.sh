#!/usr/bin/env bash
# Installs what plugvisor needs on a fresh Debian 12 machine, and nothing that is already there.
# Swift itself (6.3 or newer, with its clang and wasm-ld) must be on PATH.
set -euo pipefail

need=()
command -v wat2wasm >/dev/null || need+=(wabt)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need+=(wasi-libc)
compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null || need+=(libclang-rt-dev-wasm32)
[ -f /usr/include/seccomp.h ] || need+=(libseccomp-dev)
command -v strace >/dev/null || need+=(strace)
# Rust guests: Debian's rustc with its wasm32 standard library; its rust-lld is lld-14's.
[ -x /usr/bin/rustc ] || need+=(rustc)
[ -d /usr/lib/rustlib/wasm32-unknown-unknown ] || need+=(libstd-rust-dev-wasm32)
command -v lld-14 >/dev/null || need+=(lld-14)
# libcurl's development link: the supervisor's HTTP broker (FoundationNetworking) links
# libcurl, and a --static-swift-stdlib build (scripts/bench.sh) needs -lcurl to resolve.
compgen -G "/usr/lib/*/libcurl.so" >/dev/null || need+=(libcurl4-openssl-dev)
command -v curl >/dev/null || need+=(curl)
# For the tests only: the dashboard is checked in a real browser (headless Chromium), and
# `plugvisor status --watch` in a real terminal (tmux).
command -v chromium >/dev/null || need+=(chromium)
command -v tmux >/dev/null || need+=(tmux)
# systemd-analyze checks the shipped unit (dist/plugvisor.service).
command -v systemd-analyze >/dev/null || need+=(systemd)
# Prometheus scrapes a running gateway, and promtool checks the shipped rules.
command -v prometheus >/dev/null || need+=(prometheus)
# Three hosts in network namespaces behind a load balancer: haproxy in front, veth pairs
# made with iproute2, namespaces entered with util-linux's unshare and nsenter.
command -v haproxy >/dev/null || need+=(haproxy)
command -v ip >/dev/null || need+=(iproute2)

if [ ${#need[@]} -gt 0 ]; then
    echo "bootstrap: installing ${need[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "bootstrap: swift is not on PATH (Swift 6.3 or newer is needed)" >&2; exit 1; }
