#!/usr/bin/env bash
# Builds every guest plugin under Fixtures/plugins from source: WAT with wat2wasm, C with the
# toolchain's clang for wasm32-wasi (Debian's wasi-libc), Swift with Embedded Swift (kit-*.swift
# with the Swift kit; kit-*.c are rebuilt when the C kit changes), Rust with Debian's rustc; and the kits' examples,
# kits/LANG/greeter.* → Fixtures/plugins/greeter-LANG.wasm.
# Idempotent: a module is rebuilt only when a source is newer. Safe to run from several processes at once.
set -euo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$0")/../Fixtures/plugins"

# The lock is this script itself, opened read-only: an unprivileged test run that finds every
# module fresh needs no write access here.
exec 9<"$self"
flock 9

builtins=$(compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a" | sort -V | tail -n 1 || true)
[ -n "$builtins" ] || { echo "build-fixtures: libclang_rt.builtins-wasm32.a missing: run scripts/bootstrap.sh" >&2; exit 1; }
# Debian's rustc by its path: a rustup one earlier on PATH may lack the wasm32 target.
rustc=/usr/bin/rustc
[ -x "$rustc" ] || { echo "build-fixtures: $rustc missing: run scripts/bootstrap.sh" >&2; exit 1; }
# Embedded Swift's String comparison needs the toolchain's Unicode tables.
swift_embedded_lib="$(dirname "$(readlink -f "$(command -v swiftc)")")/../lib/swift/embedded/wasm32-unknown-none-wasm"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

stale() { [ ! -f "$2" ] || [ "$1" -nt "$2" ]; }

# build_swift TARGET SOURCE...: the sources compiled as one Embedded Swift module.
build_swift() {
    local target=$1
    shift
    swiftc -target wasm32-unknown-none-wasm -enable-experimental-feature Embedded \
        -enable-experimental-feature Extern -wmo -Osize -parse-as-library -Xfrontend -disable-stack-protector \
        -c "$@" -o "$scratch/${target%.wasm}.o"
    wasm-ld --no-entry --strip-all "$scratch/${target%.wasm}.o" -L/usr/lib/wasm32-wasi -lc \
        -L"$swift_embedded_lib" -lswiftUnicodeDataTables "$builtins" -o "$target"
}

for source in *.wat; do
    target="${source%.wat}.wasm"
    stale "$source" "$target" || continue
    wat2wasm "$source" -o "$target"
done

for source in *.command.c; do
    # A WASI command: its entry point is _start (crt1-command.o), not exported functions.
    target="${source%.command.c}.wasm"
    stale "$source" "$target" || continue
    clang --target=wasm32-wasi --sysroot=/usr -O2 -c "$source" -o "$scratch/${source%.c}.o"
    wasm-ld --strip-all /usr/lib/wasm32-wasi/crt1-command.o "$scratch/${source%.c}.o" \
        -L/usr/lib/wasm32-wasi -lc "$builtins" -o "$target"
done

# build_c TARGET SOURCE: a WASI reactor (crt1-reactor.o) whose exports are the plugin's.
build_c() {
    clang --target=wasm32-wasi --sysroot=/usr -O2 -I ../../kits/c -c "$2" -o "$scratch/${1%.wasm}.o"
    wasm-ld --no-entry --export-dynamic --strip-all /usr/lib/wasm32-wasi/crt1-reactor.o "$scratch/${1%.wasm}.o" \
        -L/usr/lib/wasm32-wasi -lc "$builtins" -o "$1"
}

for source in *.c; do
    [[ "$source" == *.command.c ]] && continue
    target="${source%.c}.wasm"
    if [[ "$source" == kit-* ]]; then
        stale "$source" "$target" || stale ../../kits/c/plugvisor.h "$target" || continue
    else
        stale "$source" "$target" || continue
    fi
    build_c "$target" "$source"
done

swift_kit=../../kits/swift/Plugvisor.swift
for source in *.swift; do
    target="${source%.swift}.wasm"
    if [[ "$source" == kit-* ]]; then
        stale "$source" "$target" || stale "$swift_kit" "$target" || continue
        build_swift "$target" "$swift_kit" "$source"
    else
        stale "$source" "$target" || continue
        build_swift "$target" "$source"
    fi
done

# The kits' examples (also the templates `plugvisor new` writes).
if stale ../../kits/c/greeter.c greeter-c.wasm || stale ../../kits/c/plugvisor.h greeter-c.wasm; then
    build_c greeter-c.wasm ../../kits/c/greeter.c
fi
if stale ../../kits/wat/greeter.wat greeter-wat.wasm; then
    wat2wasm ../../kits/wat/greeter.wat -o greeter-wat.wasm
fi
for example in greeter shop; do
    if stale ../../kits/rust/$example.rs $example-rust.wasm || stale ../../kits/rust/plugvisor.rs $example-rust.wasm; then
        "$rustc" --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib -O -C strip=symbols \
            ../../kits/rust/$example.rs -o $example-rust.wasm
    fi
done
if stale ../../kits/swift/greeter.swift greeter-swift.wasm || stale "$swift_kit" greeter-swift.wasm; then
    build_swift greeter-swift.wasm "$swift_kit" ../../kits/swift/greeter.swift
fi
