#!/usr/bin/env bash
# Runs the supervisor under strace on plugins that use every capability, calls each of them,
# and compares the syscalls the workers made after installing their seccomp filter with the
# allowlist (`plugvisor sandbox-policy --filesystem --names-only`). Exit 1 if a worker used a
# syscall that is not allowed; allowed syscalls never seen are listed as candidates to drop.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v strace >/dev/null || { echo "seccomp-audit: strace is missing (apt-get install strace)" >&2; exit 1; }
swift build --quiet
scripts/build-fixtures.sh
bin=$(swift build --show-bin-path)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/data" "$work/traces"
echo "hello from the host" > "$work/data/hello.txt"
chmod 755 "$work" && chmod 777 "$work/data"

plugins="$PWD/Fixtures/plugins"
cat > "$work/plugins.yaml" <<YAML
plugins:
  - {name: echo, wasm: $plugins/echo.wasm}
  - {name: hello-c, wasm: $plugins/hello-c.wasm, config: {greeting: Hi}}
  - {name: hello-swift, wasm: $plugins/hello-swift.wasm, fuel: 10_000_000}
  - {name: env, wasm: $plugins/list-env.wasm, env: {MODE: audit}}
  - {name: files, wasm: $plugins/escape-fs.wasm, filesystem: [{host: $work/data, guest: /data, mode: rw}]}
  - {name: trap, wasm: $plugins/trap.wasm}
  - {name: command, wasm: $plugins/word-count.wasm, abi: wasi-command, env: {MODE: audit}}
  - {name: x-hostile, wasm: $plugins/extism-hostile.wasm, abi: extism, memory: 8MiB}
YAML
# abi: extism workers, on Extism's own plugins when they are beside the checkout (as in CI).
extism_calls=("x-hostile grow" "x-hostile bad_output")
extism=$(cd .. && pwd)/shared/extism
if [ -d "$extism" ]; then
    echo "hello world!" > "$work/data/test.txt"
    cat >> "$work/plugins.yaml" <<YAML
  - {name: x-rust, wasm: $extism/rust/count_vowels_kv.wasm, abi: extism}
  - {name: x-go, wasm: $extism/go/count_vowels_std.wasm, abi: extism, timeout: 30s}
  - {name: x-haskell, wasm: $extism/haskell/hello_haskell.wasm, abi: extism, timeout: 30s}
  - {name: x-fs, wasm: $extism/go/fs.wasm, abi: extism, filesystem: [{host: $work/data, guest: /mnt, mode: rw}]}
  - {name: x-linked, wasm: $extism/go/main.wasm, abi: extism, modules: {lib: $extism/go/lib.wasm}}
YAML
    extism_calls+=("x-rust count_vowels" "x-go _start" "x-go _start" "x-haskell testing" "x-fs run_test"
        "x-linked run_test")
fi

strace -f -ff -qq -o "$work/traces/t" "$bin/plugvisor" start "$work/plugins.yaml" --control "$work/c.sock" \
    2>"$work/supervisor.log" &
for _ in $(seq 200); do "$bin/plugvisor" status --control "$work/c.sock" >/dev/null 2>&1 && break; sleep 0.1; done
for plugin in echo hello-c hello-swift env files trap command; do
    "$bin/plugvisor" call "$plugin" -p name=audit --control "$work/c.sock" >/dev/null 2>&1 || true
done
for call in "${extism_calls[@]}"; do
    read -r plugin function <<<"$call"
    "$bin/plugvisor" call "$plugin" --function "$function" --input audit --control "$work/c.sock" >/dev/null 2>&1 || true
done
"$bin/plugvisor" stop --control "$work/c.sock"
wait || true

# A worker's trace is the one that exec'd plugvisor-worker; keep what follows the seccomp()
# call that loaded its filter (libseccomp probes with a few before that one).
used=$(for trace in "$work"/traces/t.*; do
    grep -q 'execve(".*plugvisor-worker"' "$trace" || continue
    loaded=$(grep -n '^seccomp(SECCOMP_SET_MODE_FILTER, 0,' "$trace" | tail -n 1 | cut -d: -f1)
    [ -n "$loaded" ] || { echo "seccomp-audit: a worker never loaded its filter: $trace" >&2; exit 1; }
    tail -n "+$((loaded + 1))" "$trace"
done | grep -oE '^[a-z_0-9]+\(' | tr -d '(' | sort -u)
allowed=$( ("$bin/plugvisor" sandbox-policy --filesystem --names-only; "$bin/plugvisor" sandbox-policy --command --names-only) | sort -u)

unexpected=$(comm -23 <(echo "$used") <(echo "$allowed"))
unused=$(comm -13 <(echo "$used") <(echo "$allowed"))
echo "syscalls made by locked-down workers: $(echo "$used" | wc -w)"
echo "$used" | tr '\n' ' ' | fold -s -w 100; echo
echo "allowed but not seen in this run: $(echo "$unused" | tr '\n' ' ')"
if [ -n "$unexpected" ]; then
    echo "NOT ALLOWED (a worker would die of SIGSYS): $unexpected" >&2
    exit 1
fi
echo "ok: every syscall seen is in the allowlist"
