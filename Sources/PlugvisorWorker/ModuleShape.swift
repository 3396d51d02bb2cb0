import PlugvisorProtocol
import WasmKit
import WasmParser

/// A module's imports, exports and memory, read from its sections without running any of it.
struct ModuleShape {
    struct FunctionSignature: Equatable, CustomStringConvertible {
        var parameters: [ValueType]
        var results: [ValueType]
        var description: String {
            let params = parameters.map(Self.name).joined(separator: ", ")
            let returns =
                results.isEmpty
                ? "()"
                : results.count == 1
                    ? Self.name(results[0])
                    : "(" + results.map(Self.name).joined(separator: ", ") + ")"
            return "(\(params)) -> \(returns)"
        }
        static func name(_ type: ValueType) -> String {
            switch type {
            case .i32: return "i32"
            case .i64: return "i64"
            case .f32: return "f32"
            case .f64: return "f64"
            case .v128: return "v128"
            case .ref: return "ref"
            }
        }
    }

    /// What an import or export is; the raw values are `inspect`'s words.
    enum ItemKind: String {
        case function = "func"
        case memory, table, global, tag
    }

    struct Item {
        var module: String?
        var name: String
        var kind: ItemKind
        var signature: FunctionSignature?
        var qualifiedName: String { "\(module ?? "").\(name)" }
    }

    var imports: [Item] = []
    var exports: [Item] = []
    var memoryMinPages: UInt64?
    var memoryMaxPages: UInt64?

    /// Why `bytes` are not a module, for a person: WasmKit's own text quotes a debug string
    /// (`"Message(text: …)"`), and the usual mistake, a .wat file, deserves its fix.
    static func notAModule(_ error: Error, bytes: [UInt8]) -> String {
        let magic: [UInt8] = [0x00, 0x61, 0x73, 0x6D]
        if !bytes.starts(with: magic) {
            let text = String(decoding: bytes.prefix(4096), as: UTF8.self)
            let start = text.drop { $0.isWhitespace }
            if start.hasPrefix("(module") || start.hasPrefix(";;") || start.hasPrefix("(component") {
                return "not a valid WebAssembly module: this looks like WAT text, not a binary module: "
                    + "run wat2wasm on it and use the .wasm it writes"
            }
            let head = bytes.prefix(4).map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " ")
            return "not a valid WebAssembly module: it does not begin with the bytes 00 61 73 6d (\"\\0asm\") "
                + "but with \(head.isEmpty ? "nothing (the file is empty)" : head)"
        }
        var text = "\(error)"
        if let match = text.firstMatch(of: /"Message\(text: "(.*)"\)"/) {
            text.replaceSubrange(match.range, with: match.1)
        }
        return "not a valid WebAssembly module: \(text)"
    }

    init(bytes: [UInt8]) throws {
        var types: [FunctionSignature?] = []
        var functionTypes: [UInt32] = []  // type index of each function, imports first
        var parser = Parser(bytes: Self.declarations(of: bytes))
        var rawExports: [Export] = []
        while let payload = try parser.parseNext() {
            switch payload {
            case let .typeSection(groups):
                for group in groups {
                    for sub in group.types {
                        if case let .function(f) = sub.body {
                            types.append(FunctionSignature(parameters: f.parameters, results: f.results))
                        } else {
                            types.append(nil)
                        }
                    }
                }
            case let .importSection(list):
                for imp in list {
                    switch imp.descriptor {
                    case let .function(typeIndex):
                        functionTypes.append(typeIndex)
                        imports.append(
                            Item(
                                module: imp.module, name: imp.name, kind: .function,
                                signature: Int(typeIndex) < types.count ? types[Int(typeIndex)] : nil))
                    case let .memory(limits):
                        memoryMinPages = limits.min
                        memoryMaxPages = limits.max
                        imports.append(Item(module: imp.module, name: imp.name, kind: .memory))
                    case .table: imports.append(Item(module: imp.module, name: imp.name, kind: .table))
                    case .global: imports.append(Item(module: imp.module, name: imp.name, kind: .global))
                    case .tag: imports.append(Item(module: imp.module, name: imp.name, kind: .tag))
                    }
                }
            case let .functionSection(indices):
                functionTypes.append(contentsOf: indices)
            case let .memorySection(memories):
                if let first = memories.first {
                    memoryMinPages = first.type.min
                    memoryMaxPages = first.type.max
                }
            case let .exportSection(list):
                rawExports = list
            default:
                break
            }
        }
        for export in rawExports {
            switch export.descriptor {
            case let .function(index):
                let typeIndex = Int(index) < functionTypes.count ? Int(functionTypes[Int(index)]) : -1
                let signature = typeIndex >= 0 && typeIndex < types.count ? types[typeIndex] : nil
                exports.append(Item(name: export.name, kind: .function, signature: signature))
            case .memory: exports.append(Item(name: export.name, kind: .memory))
            case .table: exports.append(Item(name: export.name, kind: .table))
            case .global: exports.append(Item(name: export.name, kind: .global))
            case .tag: exports.append(Item(name: export.name, kind: .tag))
            }
        }
    }

    /// The module's header and the sections that declare its shape (types, imports, functions,
    /// memories, exports), without its code and data: parsing those is most of a large
    /// module's parse (a Go module's data section, say), and the worker parses them once
    /// anyway, in `parseWasm`. Bytes that are not a well-formed sequence of sections are
    /// returned whole, for the parser to say what is wrong with them.
    static func declarations(of bytes: [UInt8]) -> [UInt8] {
        let wanted: Set<UInt8> = [1, 2, 3, 5, 7]
        guard bytes.count >= 8 else { return bytes }
        var kept = Array(bytes[0..<8])
        var offset = 8
        while offset < bytes.count {
            let start = offset
            let id = bytes[offset]
            offset += 1
            var size = 0
            var shift = 0
            while true {
                guard offset < bytes.count, shift < 35 else { return bytes }
                let byte = bytes[offset]
                offset += 1
                size |= Int(byte & 0x7F) << shift
                shift += 7
                if byte & 0x80 == 0 { break }
            }
            guard size <= bytes.count - offset else { return bytes }
            offset += size
            if wanted.contains(id) { kept += bytes[start..<offset] }
        }
        return kept
    }

    func export(_ name: String) -> Item? { exports.first { $0.name == name } }

    var moduleItems: (imports: [ModuleItem], exports: [ModuleItem]) {
        (
            imports.map {
                ModuleItem(
                    module: $0.module, name: $0.name, kind: $0.kind.rawValue, signature: $0.signature?.description)
            },
            exports.map { ModuleItem(name: $0.name, kind: $0.kind.rawValue, signature: $0.signature?.description) }
        )
    }
}

/// The host side of the guest ABI (DESIGN §4): which exports and imports a module must, may and
/// must not have, checked before anything is instantiated.
enum ABICheck {
    enum ResultForm: Equatable {
        /// `(ptr << 32) | len` in an i64.
        case packed
        /// The original Go pattern: an i32 pointer to one JSON value.
        case pointer
    }

    static let i32 = ValueType.i32
    static let i64 = ValueType.i64

    /// `plugvisor` host functions a guest may import, with their exact signatures.
    static let hostFunctions: [String: ModuleShape.FunctionSignature] = [
        "log": .init(parameters: [i32, i32, i32], results: []),
        "config_get": .init(parameters: [i32, i32, i32, i32], results: [i32]),
        "http_request": .init(parameters: [i32, i32], results: [i64]),
        "host_call": .init(parameters: [i32, i32, i32, i32], results: [i64]),
    ]

    /// Why a module would not load: `kind` for code, `description` (one sentence naming the
    /// item) for a person.
    struct Problem: Equatable, CustomStringConvertible {
        enum Kind: Equatable {
            /// An import neither WASI nor the plugvisor host module provides as it asks.
            case refusedImport
            /// An export the ABI requires is missing, or one it knows has the wrong type.
            case badExport
        }

        var kind: Kind
        var description: String

        static func refusedImport(_ text: String) -> Problem { Problem(kind: .refusedImport, description: text) }
        static func badExport(_ text: String) -> Problem { Problem(kind: .badExport, description: text) }
    }

    static let wasiModule = "wasi_snapshot_preview1"
    static let hostModule = "plugvisor"

    /// Test-only host function, linked only when the supervisor runs with `--sandbox-drill`.
    static let drillFunction = ("sandbox_drill", ModuleShape.FunctionSignature(parameters: [i32], results: [i32]))

    /// Problems that keep a module from loading under `abi`.
    /// `linked` names the modules linked beside it (`abi: extism`), which it may import from;
    /// `isLinked` says it is one of them, which needs no function to call.
    static func problems(
        _ shape: ModuleShape, abi: GuestABI, sandboxDrill: Bool = false, trapUnknownImports: Bool = false,
        linked: Set<String> = [], isLinked: Bool = false, hostFunctions: Set<String> = []
    ) -> [Problem] {
        var problems: [Problem] = []
        let trapped =
            trapUnknownImports
            ? Set(
                unknownFunctionImports(
                    shape, abi: abi, sandboxDrill: sandboxDrill, linked: linked, hostFunctions: hostFunctions
                ).map(\.qualifiedName))
            : []
        let host = hostImports(for: abi)
        for item in shape.imports where !trapped.contains(item.qualifiedName) {
            switch (item.module, item.kind) {
            case (wasiModule?, .function):
                continue
            case let (module?, _) where linked.contains(module):
                continue  // whether the linked module exports it, and so, instantiation says
            case (host.module?, .function):
                if abi != .extism && sandboxDrill && item.name == drillFunction.0 && item.signature == drillFunction.1 {
                    continue
                }
                guard let expected = host.functions[item.name] else {
                    problems.append(
                        .refusedImport(
                            "imports \(host.module).\(item.name), which the host does not provide (it has \(host.functions.keys.sorted().joined(separator: ", ")))"
                        ))
                    continue
                }
                if item.signature != expected {
                    problems.append(
                        .refusedImport(
                            "imports \(host.module).\(item.name) as \(item.signature?.description ?? "?"), but it is \(expected)"
                        ))
                }
            case (extismUserModule?, .function) where abi == .extism && hostFunctions.contains(item.name):
                let numbers: Set<ValueType> = [i32, i64]
                if let signature = item.signature,
                    !(signature.parameters.allSatisfy(numbers.contains) && signature.results.count <= 1
                        && signature.results.allSatisfy(numbers.contains))
                {
                    problems.append(
                        .refusedImport(
                            "imports the host function \(extismUserModule).\(item.name) as \(signature): host functions take and answer i32 and i64 values only"
                        ))
                }
            case (extismUserModule?, .function) where abi == .extism:
                problems.append(
                    .refusedImport(
                        "imports the host function \(extismUserModule).\(item.name)\(item.signature.map { " \($0)" } ?? ""), which the manifest does not grant it (host_functions: [\(item.name)], given by the program embedding plugvisor; with unknown_imports: trap it links as a function that traps when called)"
                    ))
            case (host.module?, _):
                problems.append(
                    .refusedImport(
                        "imports \(item.kind.rawValue) \(host.module).\(item.name): only functions are imported from \(host.module)"
                    ))
            default:
                let hint =
                    abi == .extism
                    ? " (a module of that name is linked with `modules: {\(item.module ?? ""): FILE.wasm}`)" : ""
                problems.append(
                    .refusedImport(
                        "imports \(item.kind.rawValue) \(item.module ?? "").\(item.name), which is neither WASI nor \(host.module): refused\(hint)"
                    ))
            }
        }
        switch abi {
        case .wasiCommand:
            if shape.export("_start")?.kind != .function {
                problems.append(.badExport("a wasi-command module must export a _start function"))
            }
            if shape.export("memory")?.kind != .memory { problems.append(.badExport("missing export: memory")) }
        case .plugvisor:
            if shape.export("memory")?.kind != .memory {
                problems.append(.badExport("missing export: memory (the guest's linear memory)"))
            }
            requireFunction(shape, "allocate", [.init(parameters: [i32], results: [i32])], &problems)
            requireFunction(shape, "deallocate", [.init(parameters: [i32, i32], results: [])], &problems)
            requireFunction(
                shape, "execute",
                [
                    .init(parameters: [i32, i32], results: [i64]), .init(parameters: [i32, i32], results: [i32]),
                ], &problems)
            optionalFunction(
                shape, "meta", [.init(parameters: [], results: [i64]), .init(parameters: [], results: [i32])], &problems
            )
            optionalFunction(
                shape, "init",
                [
                    .init(parameters: [i32, i32], results: [i64]), .init(parameters: [i32, i32], results: [i32]),
                ], &problems)
            optionalFunction(shape, "destroy", [.init(parameters: [], results: [])], &problems)
        case .extism:
            if !isLinked && extismFunctions(shape).isEmpty {
                problems.append(
                    .badExport("an Extism plugin must export at least one function () -> i32 or () -> () to call"))
            }
        }
        return problems
    }

    static let extismModule = "extism:host/env"
    static let extismUserModule = "extism:host/user"

    /// The 12 functions of `extism:host/env` that the host provides (the kernel has the other 20).
    static let extismHostFunctions: [String: ModuleShape.FunctionSignature] = [
        "config_get": .init(parameters: [i64], results: [i64]),
        "var_get": .init(parameters: [i64], results: [i64]),
        "var_set": .init(parameters: [i64, i64], results: []),
        "http_request": .init(parameters: [i64, i64], results: [i64]),
        "http_status_code": .init(parameters: [], results: [i32]),
        "http_headers": .init(parameters: [], results: [i64]),
        "log_trace": .init(parameters: [i64], results: []),
        "log_debug": .init(parameters: [i64], results: []),
        "log_info": .init(parameters: [i64], results: []),
        "log_warn": .init(parameters: [i64], results: []),
        "log_error": .init(parameters: [i64], results: []),
        "get_log_level": .init(parameters: [], results: [i32]),
    ]

    /// The module an ABI's host functions come from, and those functions with their signatures.
    static func hostImports(for abi: GuestABI) -> (module: String, functions: [String: ModuleShape.FunctionSignature]) {
        switch abi {
        case .plugvisor, .wasiCommand: return (hostModule, hostFunctions)
        case .extism: return (extismModule, extismHostFunctions.merging(ExtismKernel.functions) { host, _ in host })
        }
    }

    /// The exports an Extism call may name: functions `() -> i32` or `() -> ()`, except the
    /// initialisers the host runs itself.
    static func extismFunctions(_ shape: ModuleShape) -> [String] {
        let initialisers: Set<String> = ["_initialize", "__wasm_call_ctors", "hs_init"]
        return shape.exports.filter { item in
            item.kind == .function && !initialisers.contains(item.name) && item.signature?.parameters == []
                && (item.signature?.results == [i32] || item.signature?.results == [])
        }.map(\.name)
    }

    /// Function imports that no grant provides: neither WASI nor a `plugvisor` host function
    /// (a `plugvisor` name with the wrong signature is an error, not an unknown import).
    static func unknownFunctionImports(
        _ shape: ModuleShape, abi: GuestABI, sandboxDrill: Bool, linked: Set<String> = [],
        hostFunctions: Set<String> = []
    ) -> [ModuleShape.Item] {
        let host = hostImports(for: abi)
        return shape.imports.filter { item in
            guard item.kind == .function, item.module != wasiModule, !linked.contains(item.module ?? "") else {
                return false
            }
            if abi == .extism && item.module == extismUserModule && hostFunctions.contains(item.name) { return false }
            if item.module == host.module {
                return host.functions[item.name] == nil
                    && !(abi != .extism && sandboxDrill && item.name == drillFunction.0)
            }
            return true
        }
    }

    static func resultForm(_ signature: ModuleShape.FunctionSignature?) -> ResultForm {
        signature?.results == [i32] ? .pointer : .packed
    }

    /// Which ABI a module speaks, judging by its exports alone.
    static func detectABI(_ shape: ModuleShape) -> InspectReport.ABI? {
        // Extism plugins say so by their imports; otherwise the exports decide, and imports it
        // may not have are a problem for loading, not for the ABI.
        if shape.imports.contains(where: { $0.module == extismModule || $0.module == extismUserModule }) {
            return .extism
        }
        if problems(shape, abi: .plugvisor).allSatisfy({ $0.kind == .refusedImport }) {
            return resultForm(shape.export("execute")?.signature) == .pointer ? .plugvisorI32 : .plugvisor
        }
        if shape.export("_start") != nil { return .wasiCommand }
        return nil
    }

    /// Capabilities the module's imports ask for.
    static func capabilities(_ shape: ModuleShape) -> [String] {
        var needs: Set<String> = []
        for item in shape.imports where item.kind == .function {
            switch (item.module, item.name) {
            case (hostModule?, "http_request"), (extismModule?, "http_request"): needs.insert("network")
            case (hostModule?, "config_get"), (extismModule?, "config_get"): needs.insert("config")
            case (hostModule?, "log"): needs.insert("log")
            case (extismModule?, let name) where name.hasPrefix("log_"): needs.insert("log")
            case (extismModule?, "var_get"), (extismModule?, "var_set"): needs.insert("vars")
            case (extismUserModule?, let name): needs.insert("host function \(name)")
            case (wasiModule?, let name):
                if name.hasPrefix("path_") || name.hasPrefix("fd_prestat") || name == "fd_readdir" {
                    needs.insert("filesystem")
                }
                if name.hasPrefix("environ_") { needs.insert("env") }
                if name.hasPrefix("clock_") { needs.insert("time") }
                if name == "random_get" { needs.insert("random") }
                if name.hasPrefix("sock_") { needs.insert("sockets (not available: use plugvisor.http_request)") }
            default: break
            }
        }
        return needs.sorted()
    }

    private static func requireFunction(
        _ shape: ModuleShape, _ name: String, _ allowed: [ModuleShape.FunctionSignature], _ problems: inout [Problem]
    ) {
        guard let item = shape.export(name), item.kind == .function else {
            problems.append(.badExport("missing export: \(name) \(allowed[0])"))
            return
        }
        checkSignature(item, allowed, &problems)
    }

    private static func optionalFunction(
        _ shape: ModuleShape, _ name: String, _ allowed: [ModuleShape.FunctionSignature], _ problems: inout [Problem]
    ) {
        guard let item = shape.export(name) else { return }
        guard item.kind == .function else {
            problems.append(.badExport("export \(name) must be a function \(allowed[0])"))
            return
        }
        checkSignature(item, allowed, &problems)
    }

    private static func checkSignature(
        _ item: ModuleShape.Item, _ allowed: [ModuleShape.FunctionSignature], _ problems: inout [Problem]
    ) {
        guard let signature = item.signature, allowed.contains(signature) else {
            let expected = allowed.map(\.description).joined(separator: " or ")
            problems.append(
                .badExport("export \(item.name) is \(item.signature?.description ?? "?"), expected \(expected)"))
            return
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
