import ArgumentParser
import Foundation
import Plugvisor
import PlugvisorManifest

struct New: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "new",
        abstract: "Write a ready-to-build plugin folder: source, kit, build.sh, plugin.yaml, README.",
        discussion: """
            The plugin greets parameters.name, from the same greeter example plugvisor tests in \
            each language. The folder is self-contained: it carries the kit it uses (plugvisor.h \
            for C, plugvisor.rs for Rust) and a build.sh. A Swift plugin is its source alone: its \
            manifest says `source: plugin.swift`, and plugvisor builds it (with the Swift kit \
            compiled in) when it starts. Then: ./build.sh (not for Swift), plugvisor start \
            plugin.yaml, plugvisor call NAME -p name=Ada.
            """)

    @Argument(help: "The plugin's name, as in a manifest: lower-case letters, digits, '-' and '_'.")
    var name: String

    @Option(help: "The plugin's language.")
    var lang: PluginLanguage

    @Option(help: ArgumentHelp("Where to write it (default: ./NAME); must not exist or be empty.", valueName: "dir"))
    var directory: String?

    func validate() throws {
        guard Manifest.isValidPluginName(name) else {
            throw ValidationError("'\(name)' is not a valid plugin name: \(Manifest.pluginNameRule)")
        }
        let folder = directory ?? name
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ValidationError("\(folder) exists and is not a directory") }
            let contents = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            guard contents.isEmpty else {
                throw ValidationError(
                    "\(folder) already exists and is not empty: choose another --directory, or empty it")
            }
        }
    }

    func run() throws {
        let folder = URL(fileURLWithPath: directory ?? name)
        let template = PluginTemplate(name: name, language: lang)
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for file in template.files {
                let url = folder.appendingPathComponent(file.path)
                try Data(file.contents.utf8).write(to: url)
                if file.executable {
                    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
                }
            }
        } catch {
            Output.stderr("plugvisor new: cannot write \(folder.path): \(error.localizedDescription)")
            throw ExitCode(1)
        }
        Output.stdout(
            """
            wrote \(folder.path)/: \(template.files.map(\.path).joined(separator: ", "))
            next:
              cd \(directory ?? name)\(template.fromSource ? "" : " && ./build.sh")
              plugvisor start plugin.yaml &
              plugvisor call \(name) -p name=Ada
              plugvisor stop
            """)
    }
}

enum PluginLanguage: String, CaseIterable, ExpressibleByArgument {
    case c, swift, wat, rust
}

/// The files of a new plugin's folder. The sources are kits/ as compiled into this binary
/// (`KitSources`); the build commands are those of scripts/build-fixtures.sh.
struct PluginTemplate {
    struct File {
        let path: String
        let contents: String
        var executable = false
    }

    let name: String
    let language: PluginLanguage

    /// A Swift plugin is its source alone: the manifest names it (`source:`) and the supervisor
    /// builds it with the kit compiled in. The others carry their kit and a build script.
    var fromSource: Bool { language == .swift }

    var files: [File] {
        let source = File(path: "plugin.\(sourceExtension)", contents: personalized(exampleSource))
        let kit = kitFile.map { [$0] } ?? []
        let build = fromSource ? [] : kit + [File(path: "build.sh", contents: buildScript, executable: true)]
        return [source] + build + [
            File(path: "plugin.yaml", contents: manifest),
            File(path: "README.md", contents: readme),
        ]
    }

    var sourceExtension: String {
        switch language {
        case .c: "c"
        case .swift: "swift"
        case .wat: "wat"
        case .rust: "rs"
        }
    }

    var exampleSource: String {
        switch language {
        case .c: text(KitSources.cGreeter)
        case .swift: text(KitSources.swiftGreeter)
        case .wat: text(KitSources.watGreeter)
        case .rust: text(KitSources.rustGreeter)
        }
    }

    var kitFile: File? {
        switch language {
        case .c: File(path: "plugvisor.h", contents: text(KitSources.cHeader))
        case .swift: File(path: "Plugvisor.swift", contents: text(KitSources.swiftKit))
        case .rust: File(path: "plugvisor.rs", contents: text(KitSources.rustKit))
        case .wat: nil
        }
    }

    /// The examples open with "greeter:" and declare their name as "greeter" in their meta (WAT
    /// spells it inside a string); the plugin's own name reads better in its own folder.
    func personalized(_ source: String) -> String {
        var source = source
        if let range = source.range(of: "greeter:") { source.replaceSubrange(range, with: "\(name):") }
        return source.replacingOccurrences(of: #""greeter""#, with: #""\#(name)""#)
            .replacingOccurrences(of: #"\"greeter\""#, with: #"\"\#(name)\""#)
    }

    func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// What to change to make the plugin one's own.
    var entryPoint: String {
        switch language {
        case .c: "`plugvisor_handle` in plugin.c"
        case .swift: "the closure given to `Plugin` in plugin.swift"
        case .wat: "the `execute` function in plugin.wat"
        case .rust: "`handle` in plugin.rs"
        }
    }

    /// Where the plugin declares the name, version and description that `meta` answers.
    var metaDeclaration: String {
        switch language {
        case .c: "the `PV_META(...)` line"
        case .swift: "the arguments of `Plugin(...)`"
        case .wat: "the `meta` data segment"
        case .rust: "the `META` constant"
        }
    }

    var languageName: String {
        switch language {
        case .c: "C"
        case .swift: "Embedded Swift"
        case .wat: "WebAssembly text (WAT)"
        case .rust: "Rust"
        }
    }

    var needs: String {
        switch language {
        case .c: "the Swift toolchain's clang and wasm-ld, Debian's wasi-libc and libclang-rt-dev-wasm32"
        case .swift: "Swift 6.3 or newer (Embedded Swift, wasm-ld), Debian's wasi-libc and libclang-rt-dev-wasm32"
        case .wat: "wat2wasm (Debian's wabt)"
        case .rust:
            "Debian's rustc, libstd-rust-dev-wasm32 and lld-14 (or any rustc with the wasm32-unknown-unknown target, as RUSTC)"
        }
    }

    var buildScript: String {
        var lines = [
            "#!/usr/bin/env bash",
            "# Builds \(name).wasm from plugin.\(sourceExtension), with the commands of plugvisor's own fixtures.",
            "# Needs \(needs).",
            "set -euo pipefail",
            "cd \"$(dirname \"$0\")\"",
        ]
        if language == .c || language == .swift {
            lines += [
                "builtins=$(compgen -G \"/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a\" | sort -V | tail -n 1 || true)",
                "[ -n \"$builtins\" ] || { echo \"build.sh: no wasm32 compiler-rt: apt-get install libclang-rt-dev-wasm32 wasi-libc\" >&2; exit 1; }",
                "scratch=$(mktemp -d)",
                "trap 'rm -rf \"$scratch\"' EXIT",
            ]
        }
        switch language {
        case .c:
            lines += [
                "clang --target=wasm32-wasi --sysroot=/usr -O2 -I . -c plugin.c -o \"$scratch/plugin.o\"",
                "wasm-ld --no-entry --export-dynamic --strip-all /usr/lib/wasm32-wasi/crt1-reactor.o \"$scratch/plugin.o\" \\",
                "    -L/usr/lib/wasm32-wasi -lc \"$builtins\" -o \(name).wasm",
            ]
        case .swift:
            lines += [
                "# Embedded Swift's String comparison needs the toolchain's Unicode tables.",
                "embedded=\"$(dirname \"$(readlink -f \"$(command -v swiftc)\")\")/../lib/swift/embedded/wasm32-unknown-none-wasm\"",
                "swiftc -target wasm32-unknown-none-wasm -enable-experimental-feature Embedded \\",
                "    -enable-experimental-feature Extern -wmo -Osize -parse-as-library -Xfrontend -disable-stack-protector \\",
                "    -c Plugvisor.swift plugin.swift -o \"$scratch/plugin.o\"",
                "wasm-ld --no-entry --strip-all \"$scratch/plugin.o\" -L/usr/lib/wasm32-wasi -lc \\",
                "    -L\"$embedded\" -lswiftUnicodeDataTables \"$builtins\" -o \(name).wasm",
            ]
        case .wat:
            lines += ["wat2wasm plugin.wat -o \(name).wasm"]
        case .rust:
            lines += [
                "rustc=\"${RUSTC:-/usr/bin/rustc}\"  # Debian's by default: a rustup one may lack the wasm32 target",
                "\"$rustc\" --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib -O -C strip=symbols \\",
                "    plugin.rs -o \(name).wasm",
            ]
        }
        lines.append("echo \"built \(name).wasm\"")
        return lines.joined(separator: "\n") + "\n"
    }

    var manifest: String {
        // The WAT greeter reads no config; the others read config.greeting.
        let config =
            language == .wat ? "" : "    config: {greeting: Hello}       # read by the plugin with config_get\n"
        return """
            # plugvisor's manifest for this plugin: plugvisor start plugin.yaml
            # Paths are relative to this file. Every capability is denied unless granted here:
            # see "Manifest reference" in plugvisor's README (memory, timeout, network, ...).
            plugins:
              - name: \(name)
                \(fromSource ? "source: plugin.swift           # built by plugvisor, cached" : "wasm: \(name).wasm")

            """ + config
    }

    var readme: String {
        let commands =
            (fromSource
                ? [("plugvisor validate plugin.yaml", "builds plugin.swift, or says where it does not compile")]
                : [
                    ("./build.sh", "writes \(name).wasm"),
                    ("plugvisor inspect \(name).wasm", "what it exports and imports"),
                ])
            + [
                ("plugvisor start plugin.yaml &", "a supervisor on this folder's manifest"),
                ("plugvisor call \(name) -p name=Ada", #"{"data":{"message":"Hello, Ada!",...},"success":true}"#),
                ("plugvisor stop", ""),
            ]
        let width = commands.map(\.0.count).max()! + 2
        let block = commands.map { command, comment in
            comment.isEmpty
                ? "    \(command)" : "    \(command.padding(toLength: width, withPad: " ", startingAt: 0))# \(comment)"
        }.joined(separator: "\n")
        var files = ["- `plugin.\(sourceExtension)`: the plugin"]
        switch language {
        case .c:
            files.append(
                "- `plugvisor.h`: the C kit (the exports, the context, the answer, `pv_log`, `pv_config`, `pv_http_get`)"
            )
        case .swift:
            break
        case .rust:
            files.append("- `plugvisor.rs`: the Rust kit (the exports, `Json`, `log`, `config`, `host_call`)")
        case .wat: break
        }
        if !fromSource { files.append("- `build.sh`: the build; it needs \(needs)") }
        files.append("- `plugin.yaml`: the manifest entry; grant capabilities here")
        let rebuild =
            fromSource
            ? """
            Make it yours by changing \(entryPoint), and its version in \(metaDeclaration)
            (`plugvisor status` shows it), and save: a running supervisor builds it again (in a
            sandbox, with the Swift kit, kits/swift/Plugvisor.swift, compiled in) and serves the
            new version; one that does not compile leaves the old one serving and `plugvisor
            status` says where. Building needs \(needs); the module is cached in
            ~/.cache/plugvisor, so a second start does not compile again.
            """
            : """
            Make it yours by changing \(entryPoint), and its version in \(metaDeclaration)
            (`plugvisor status` shows it), then run `./build.sh` again: a running supervisor
            reloads the new \(name).wasm by itself.
            """
        return """
            # \(name)

            A plugvisor plugin in \(languageName), written by `plugvisor new \(name) --lang \(language.rawValue)`.
            It greets `parameters.name`.

            \(block)

            \(rebuild)

            \(files.joined(separator: "\n"))

            The guide, docs/guide.md in plugvisor's repository, explains the guest ABI and each language.

            """
    }
}
