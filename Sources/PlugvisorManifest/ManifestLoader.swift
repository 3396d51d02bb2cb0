import Foundation
import PlugvisorProtocol
import Yams

extension Manifest {
    /// Reads and validates the manifest at `path`.
    /// - Throws: `ManifestErrors` with every problem found, each with its line.
    public static func load(path: String) throws(ManifestErrors) -> Manifest {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ManifestErrors([
                ManifestProblem(
                    file: path, line: nil, column: nil, keyPath: nil,
                    message: "cannot read manifest: \(error.localizedDescription)")
            ])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ManifestErrors([
                ManifestProblem(file: path, line: nil, column: nil, keyPath: nil, message: "manifest is not UTF-8 text")
            ])
        }
        return try parse(text, path: path)
    }

    /// Parses and validates manifest text (YAML, or JSON, which YAML reads too).
    /// Relative paths in it are resolved against the directory of `path`, and must exist.
    public static func parse(_ text: String, path: String) throws(ManifestErrors) -> Manifest {
        var reader = ManifestReader(file: path)
        let manifest = reader.read(text)
        if let manifest, reader.problems.isEmpty { return manifest }
        // In file order, as a person reads them (the walk finds some, such as duplicates, late).
        throw ManifestErrors(
            reader.problems.enumerated().sorted {
                ($0.element.line ?? 0, $0.element.column ?? 0, $0.offset) < (
                    $1.element.line ?? 0, $1.element.column ?? 0, $1.offset
                )
            }.map(\.element))
    }

    /// What a plugin's name may be, said to people whose name breaks it.
    public static let pluginNameRule =
        "lower-case letters, digits, '-' and '_', starting with a letter or digit, at most 64 characters"

    public static func isValidPluginName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 64 else { return false }
        let lowerOrDigit: (Unicode.Scalar) -> Bool = { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
        return lowerOrDigit(first) && name.unicodeScalars.allSatisfy { lowerOrDigit($0) || $0 == "-" || $0 == "_" }
    }
}

/// Walks the YAML node tree once, collecting every problem instead of stopping at the first.
struct ManifestReader {
    let file: String
    let baseDirectory: String
    var problems: [ManifestProblem] = []

    init(file: String) {
        self.file = file
        let absolute = file.hasPrefix("/") ? file : FileManager.default.currentDirectoryPath + "/" + file
        baseDirectory = (absolute as NSString).deletingLastPathComponent
    }

    mutating func read(_ text: String) -> Manifest? {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            report(error)
            return nil
        } catch {
            problem(nil, nil, "cannot parse: \(error)")
            return nil
        }
        guard let root, case let .mapping(top) = root else {
            problem(root, nil, "the manifest must be a mapping with a 'plugins' list")
            return nil
        }
        var plugins: [PluginSpec] = []
        var sawPlugins = false
        for (keyNode, value) in top {
            let key = keyNode.scalar?.string ?? "?"
            switch key {
            case "plugins":
                sawPlugins = true
                guard case let .sequence(items) = value else {
                    problem(value, "plugins", "must be a list of plugins")
                    continue
                }
                if items.isEmpty { problem(value, "plugins", "lists no plugin") }
                for (index, item) in items.enumerated() {
                    if let spec = readPlugin(item, path: "plugins[\(index)]") { plugins.append(spec) }
                }
            default:
                problem(keyNode, key, "unknown key (the top level has only 'plugins')")
            }
        }
        if !sawPlugins { problem(root, nil, "missing required key 'plugins'") }
        checkUniqueNames(in: root)
        return Manifest(plugins: plugins, path: file)
    }

    private mutating func checkUniqueNames(in root: Node) {
        var firstLine: [String: Int] = [:]
        guard case let .mapping(top) = root, case let .sequence(items)? = top["plugins"] else { return }
        for (index, item) in items.enumerated() {
            guard case let .mapping(m) = item, let nameNode = m["name"], let name = nameNode.scalar?.string else {
                continue
            }
            if let line = firstLine[name] {
                problem(
                    nameNode, "plugins[\(index)].name", "duplicate plugin name '\(name)' (first used on line \(line))")
            } else {
                firstLine[name] = nameNode.mark?.line ?? 0
            }
        }
    }

    // MARK: - One plugin

    private mutating func readPlugin(_ node: Node, path: String) -> PluginSpec? {
        guard case let .mapping(fields) = node else {
            problem(node, path, "must be a mapping with at least 'name' and 'wasm' (or 'source')")
            return nil
        }
        var spec = PluginSpec(name: "", wasm: "")
        var valid = true
        var extismOnlyKeys: [(Node, String)] = []
        let known: Set<String> = [
            "name", "wasm", "source", "sha256", "abi", "instances", "standby", "max_queue", "timeout", "fuel", "memory",
            "filesystem", "network", "env", "config", "restart", "circuit", "args", "unknown_imports", "vars",
            "modules", "host_functions",
        ]
        for (keyNode, value) in fields {
            let key = keyNode.scalar?.string ?? "?"
            let at = "\(path).\(key)"
            guard known.contains(key) else {
                problem(
                    keyNode, at,
                    "unknown key (known: \(known.sorted().joined(separator: ", ")))"
                        + NearestName.hint(for: key, among: known))
                valid = false
                continue
            }
            let before = problems.count
            switch key {
            case "name":
                if let name = string(value, at) {
                    if Manifest.isValidPluginName(name) {
                        spec.name = name
                    } else {
                        problem(value, at, "'\(name)' is not a valid name: \(Manifest.pluginNameRule)")
                    }
                }
            case "wasm":
                if let file = string(value, at) {
                    let resolved = resolve(file)
                    var isDirectory: ObjCBool = false
                    if !FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory) {
                        problem(value, at, "file not found: \(resolved)")
                    } else if isDirectory.boolValue {
                        problem(value, at, "is a directory, not a .wasm file: \(resolved)")
                    } else {
                        spec.wasm = resolved
                    }
                }
            case "source":
                if let written = string(value, at) {
                    // Without resolving links (standardizingPath would): a source that is a
                    // link is refused when it is read.
                    let joined = written.hasPrefix("/") ? written : baseDirectory + "/" + written
                    let resolved = URL(fileURLWithPath: joined).standardized.path
                    var isDirectory: ObjCBool = false
                    if !FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory) {
                        problem(value, at, "no such file or folder: \(resolved)")
                    } else if !isDirectory.boolValue && !resolved.hasSuffix(".swift") {
                        problem(value, at, "must be a .swift file or a folder of them: \(resolved)")
                    } else {
                        spec.source = PluginSpec.SwiftSource(path: resolved, written: written)
                    }
                }
            case "sha256":
                if let hash = string(value, at) {
                    let lower = hash.lowercased()
                    if lower.count == 64, lower.allSatisfy({ $0.isASCII && $0.isHexDigit }) {
                        spec.sha256 = lower
                    } else {
                        problem(value, at, "must be 64 hexadecimal digits")
                    }
                }
            case "abi":
                if let text = string(value, at) {
                    if let abi = PluginSpec.ABI(rawValue: text) {
                        spec.abi = abi
                    } else {
                        problem(
                            value, at,
                            "'\(text)' is not an ABI (\(PluginSpec.ABI.allCases.map(\.rawValue).joined(separator: ", ")))"
                        )
                    }
                }
            case "instances":
                if let n = integer(value, at, in: 1...64) { spec.instances = n }
            case "standby":
                if let n = integer(value, at, in: 0...8) { spec.standby = n }
            case "max_queue":
                if let n = integer(value, at, in: 0...100_000) { spec.maxQueue = n }
            case "timeout":
                if let d = duration(value, at, min: .milliseconds(1), max: .seconds(3600)) { spec.timeout = d }
            case "fuel":
                if let n = integer(value, at, in: 1...Int.max) { spec.fuel = UInt64(n) }
            case "host_functions":
                if case let .sequence(items) = value {
                    spec.hostFunctions = items.enumerated().compactMap { index, item in
                        guard case let .scalar(scalar) = item, !scalar.string.isEmpty else {
                            problem(item, "\(at)[\(index)]", "must be a host function's name")
                            return nil
                        }
                        return scalar.string
                    }
                } else {
                    problem(value, at, "must be a list of host function names (e.g. [kv_get])")
                }
            case "modules":
                extismOnlyKeys.append((keyNode, key))
                spec.modules = readModules(value, at)
            case "vars":
                extismOnlyKeys.append((keyNode, key))
                if let text = string(value, at) {
                    if let bytes = Units.size(text), bytes <= 1 << 30 {
                        spec.maxVarBytes = bytes
                    } else {
                        problem(value, at, "'\(text)' is not a size up to 1GiB (e.g. 1MiB; 0 disables vars)")
                    }
                }
            case "memory":
                if let text = string(value, at) {
                    if let bytes = Units.size(text), bytes >= 65536, bytes <= 4 << 30 {
                        spec.memory = bytes
                    } else {
                        problem(value, at, "'\(text)' is not a memory size between 64KiB and 4GiB (e.g. 32MiB)")
                    }
                }
            case "filesystem":
                spec.filesystem = readFilesystem(value, at)
            case "network":
                spec.allowedHosts = readNetwork(value, at)
            case "env":
                spec.env = readStringMap(
                    value, at, keyRule: isValidEnvName, keyRuleText: "an environment variable name")
            case "config":
                spec.config = readStringMap(value, at, keyRule: { !$0.isEmpty }, keyRuleText: "a non-empty key")
            case "unknown_imports":
                if let text = string(value, at) {
                    switch text {
                    case "refuse": spec.trapUnknownImports = false
                    case "trap": spec.trapUnknownImports = true
                    default: problem(value, at, "'\(text)' is not a choice (refuse, trap)")
                    }
                }
            case "args":
                if case let .sequence(items) = value {
                    spec.args = items.enumerated().compactMap { index, item in
                        guard case let .scalar(scalar) = item else {
                            problem(item, "\(at)[\(index)]", "must be a single value")
                            return nil
                        }
                        return scalar.string
                    }
                } else {
                    problem(value, at, "must be a list of arguments, the first being the program's name")
                }
            case "restart":
                if let policy = readRestart(value, at) { spec.restart = policy }
            case "circuit":
                spec.circuit = readCircuit(value, at)
            default:
                break
            }
            if problems.count != before { valid = false }
        }
        if fields["name"] == nil {
            problem(node, path, "missing required key 'name'")
            valid = false
        }
        switch (fields["wasm"], fields["source"]) {
        case (nil, nil):
            problem(node, path, "missing required key 'wasm' (a module) or 'source' (Swift sources to build)")
            valid = false
        case (_?, let source?):
            problem(source, "\(path).source", "give either 'wasm' or 'source', not both")
            valid = false
        case (nil, _?):
            for key in ["sha256", "abi", "modules"] where fields[key] != nil && (key != "abi" || spec.abi != .plugvisor)
            {
                problem(
                    fields[key], "\(path).\(key)",
                    key == "sha256"
                        ? "pins a module's bytes, which a build from 'source' does not fix: pin a built .wasm instead"
                        : "is not for a plugin built from 'source' (its ABI is plugvisor's, through the Swift kit)")
                valid = false
            }
        default:
            break
        }
        for (keyNode, key) in extismOnlyKeys where spec.abi != .extism {
            problem(keyNode, "\(path).\(key)", "is for abi: extism plugins; this plugin's abi is \(spec.abi.rawValue)")
            valid = false
        }
        return valid ? spec : nil
    }

    private mutating func readFilesystem(_ node: Node, _ at: String) -> [PluginSpec.DirectoryGrant] {
        guard case let .sequence(items) = node else {
            problem(node, at, "must be a list of {host, guest, mode}")
            return []
        }
        var grants: [PluginSpec.DirectoryGrant] = []
        var guestPaths: Set<String> = []
        for (index, item) in items.enumerated() {
            let here = "\(at)[\(index)]"
            guard case let .mapping(m) = item else {
                problem(item, here, "must be a mapping {host, guest, mode}")
                continue
            }
            rejectUnknownKeys(m, allowed: ["host", "guest", "mode"], at: here)
            var host: String?
            if let node = m["host"], let text = string(node, "\(here).host") {
                let resolved = resolve(text)
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory), isDirectory.boolValue {
                    host = resolved
                } else {
                    problem(node, "\(here).host", "not an existing directory: \(resolved)")
                }
            } else if m["host"] == nil {
                problem(item, here, "missing required key 'host'")
            }
            var guest: String?
            if let node = m["guest"], let text = string(node, "\(here).guest") {
                if !text.hasPrefix("/") || text.split(separator: "/").contains("..") {
                    problem(node, "\(here).guest", "must be an absolute path without '..'")
                } else if !guestPaths.insert(text).inserted {
                    problem(node, "\(here).guest", "guest path '\(text)' is mounted twice")
                } else {
                    guest = text
                }
            } else if m["guest"] == nil {
                problem(item, here, "missing required key 'guest'")
            }
            var mode = PluginSpec.AccessMode.readOnly
            if let node = m["mode"], let text = string(node, "\(here).mode") {
                if let parsed = PluginSpec.AccessMode(rawValue: text) {
                    mode = parsed
                } else {
                    problem(node, "\(here).mode", "'\(text)' is not a mode (ro, rw)")
                }
            }
            if let host, let guest { grants.append(.init(host: host, guest: guest, mode: mode)) }
        }
        return grants
    }

    private mutating func readNetwork(_ node: Node, _ at: String) -> [String] {
        guard case let .mapping(m) = node else {
            problem(node, at, "must be a mapping {allowed_hosts: [...]}")
            return []
        }
        rejectUnknownKeys(m, allowed: ["allowed_hosts"], at: at)
        guard let hostsNode = m["allowed_hosts"] else { return [] }
        guard case let .sequence(items) = hostsNode else {
            problem(hostsNode, "\(at).allowed_hosts", "must be a list of host names")
            return []
        }
        var hosts: [String] = []
        for (index, item) in items.enumerated() {
            let here = "\(at).allowed_hosts[\(index)]"
            guard let text = string(item, here) else { continue }
            switch HostPattern.parse(text) {
            case let .success(pattern): hosts.append(pattern.description)
            case let .failure(reason):
                problem(
                    item, here, "'\(text)' is not a host name or '*.suffix' pattern, with an optional :port (\(reason))"
                )
            }
        }
        return hosts
    }

    /// `modules: {NAME: FILE, ...}`: each file must exist; a name is what the plugin imports from.
    private mutating func readModules(_ node: Node, _ at: String) -> [PluginSpec.NamedModule] {
        guard case let .mapping(m) = node else {
            problem(node, at, "must be a mapping of module names to .wasm files (e.g. {lib: plugins/lib.wasm})")
            return []
        }
        var modules: [PluginSpec.NamedModule] = []
        for (keyNode, value) in m {
            let name = keyNode.scalar?.string ?? ""
            let here = "\(at).\(name)"
            guard !name.isEmpty, !["extism:host/env", "wasi_snapshot_preview1"].contains(name) else {
                problem(keyNode, here, "'\(name)' cannot be linked: the host provides that module")
                continue
            }
            guard let file = string(value, here) else { continue }
            let resolved = resolve(file)
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory) || isDirectory.boolValue {
                problem(value, here, "file not found: \(resolved)")
                continue
            }
            modules.append(PluginSpec.NamedModule(name: name, wasm: resolved))
        }
        return modules
    }

    private mutating func readStringMap(
        _ node: Node, _ at: String, keyRule: (String) -> Bool, keyRuleText: String
    ) -> [String: String] {
        guard case let .mapping(m) = node else {
            problem(node, at, "must be a mapping of names to values")
            return [:]
        }
        var result: [String: String] = [:]
        for (keyNode, value) in m {
            let key = keyNode.scalar?.string ?? ""
            guard keyRule(key) else {
                problem(keyNode, "\(at).\(key)", "'\(key)' is not \(keyRuleText)")
                continue
            }
            guard case let .scalar(scalar) = value else {
                problem(value, "\(at).\(key)", "must be a single value, not a list or mapping")
                continue
            }
            result[key] = scalar.string
        }
        return result
    }

    private mutating func readRestart(_ node: Node, _ at: String) -> PluginSpec.RestartPolicy? {
        guard case let .mapping(m) = node else {
            problem(node, at, "must be a mapping {max, within, backoff}")
            return nil
        }
        rejectUnknownKeys(m, allowed: ["max", "within", "backoff"], at: at)
        var policy = PluginSpec.RestartPolicy.default
        if let n = m["max"], let max = integer(n, "\(at).max", in: 0...10_000) { policy.max = max }
        if let n = m["within"], let d = duration(n, "\(at).within", min: .milliseconds(1), max: .seconds(86400)) {
            policy.within = d
        }
        if let n = m["backoff"], let text = string(n, "\(at).backoff") {
            if let (low, high) = Units.durationRange(text) {
                policy.backoffMin = low
                policy.backoffMax = high
            } else {
                problem(n, "\(at).backoff", "'\(text)' is not a range MIN..MAX of durations (e.g. 100ms..5s)")
            }
        }
        return policy
    }

    private mutating func readCircuit(_ node: Node, _ at: String) -> PluginSpec.CircuitPolicy? {
        guard case let .mapping(m) = node else {
            problem(node, at, "must be a mapping {failures, reset}")
            return nil
        }
        rejectUnknownKeys(m, allowed: ["failures", "reset"], at: at)
        var policy = PluginSpec.CircuitPolicy(failures: 5, reset: .seconds(30))
        if let n = m["failures"], let f = integer(n, "\(at).failures", in: 1...100_000) { policy.failures = f }
        if let n = m["reset"], let d = duration(n, "\(at).reset", min: .milliseconds(1), max: .seconds(86400)) {
            policy.reset = d
        }
        return policy
    }

    // MARK: - Scalars

    private mutating func string(_ node: Node, _ at: String) -> String? {
        guard case let .scalar(scalar) = node else {
            problem(node, at, "must be a single value, not a list or mapping")
            return nil
        }
        if scalar.string.isEmpty {
            problem(node, at, "must not be empty")
            return nil
        }
        return scalar.string
    }

    private mutating func integer(_ node: Node, _ at: String, in range: ClosedRange<Int>) -> Int? {
        guard let text = string(node, at) else { return nil }
        guard let value = Units.integer(text), value <= UInt64(Int.max), range.contains(Int(value)) else {
            let expected =
                range.upperBound == Int.max
                ? "a whole number of at least \(range.lowerBound)"
                : "a whole number between \(range.lowerBound) and \(range.upperBound)"
            problem(node, at, "'\(text)' is not \(expected)")
            return nil
        }
        return Int(value)
    }

    private mutating func duration(_ node: Node, _ at: String, min: Duration, max: Duration) -> Duration? {
        guard let text = string(node, at) else { return nil }
        guard let value = Units.duration(text) else {
            problem(node, at, "'\(text)' is not a duration (e.g. 250ms, 5s, 2m)")
            return nil
        }
        guard value >= min, value <= max else {
            problem(node, at, "'\(text)' is out of range (\(min) to \(max))")
            return nil
        }
        return value
    }

    // MARK: - Helpers

    private mutating func rejectUnknownKeys(_ mapping: Node.Mapping, allowed: Set<String>, at: String) {
        for key in mapping.keys {
            let name = key.scalar?.string ?? "?"
            if !allowed.contains(name) {
                problem(
                    key, "\(at).\(name)",
                    "unknown key (known: \(allowed.sorted().joined(separator: ", ")))"
                        + NearestName.hint(for: name, among: allowed))
            }
        }
    }

    private func resolve(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : baseDirectory + "/" + path
        return (joined as NSString).standardizingPath
    }

    private func isValidEnvName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy {
            ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_"
        }
    }

    private mutating func problem(_ node: Node?, _ keyPath: String?, _ message: String) {
        problems.append(
            ManifestProblem(
                file: file, line: node?.mark?.line, column: node?.mark?.column, keyPath: keyPath, message: message))
    }

    private mutating func report(_ error: YamlError) {
        switch error {
        case let .scanner(_, problemText, mark, _), let .parser(_, problemText, mark, _),
            let .composer(_, problemText, mark, _):
            problems.append(
                ManifestProblem(
                    file: file, line: mark.line, column: mark.column, keyPath: nil,
                    message: "YAML syntax: \(problemText)"))
        case let .duplicatedKeysInMapping(duplicates, context):
            problems.append(
                ManifestProblem(
                    file: file, line: context.mark.line, column: context.mark.column, keyPath: nil,
                    message: "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) in one mapping"))
        default:
            problems.append(
                ManifestProblem(file: file, line: nil, column: nil, keyPath: nil, message: "YAML: \(error)"))
        }
    }
}
