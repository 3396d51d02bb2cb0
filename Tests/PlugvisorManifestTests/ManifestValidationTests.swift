import Foundation
import PlugvisorManifest
import Testing

/// One field (or a few lines of fields) of a plugin that must be rejected, and where and why.
/// `fields` start on line 4 of a manifest, after `plugins:`, `- name: probe` and `wasm: echo.wasm`.
struct BadField: Sendable, CustomTestStringConvertible {
    var fields: String
    var line: Int
    var keyPath: String
    var message: String
    var testDescription: String { fields.trimmingCharacters(in: .whitespaces) }

    init(_ fields: String, line: Int = 4, _ keyPath: String, _ message: String) {
        self.fields = fields
        self.line = line
        self.keyPath = keyPath
        self.message = message
    }

    /// Checks that a folder (with a `data` directory) rejects these fields for this one reason.
    func check(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let folder = try ManifestDirectory()
        try folder.directory("data")
        let problem = try folder.problem(inPlugin: fields, sourceLocation: sourceLocation)
        #expect(problem.line == line, sourceLocation: sourceLocation)
        #expect(problem.keyPath == keyPath, sourceLocation: sourceLocation)
        #expect(problem.message.contains(message), "\(problem.message)", sourceLocation: sourceLocation)
        #expect(problem.file == folder.manifestPath, sourceLocation: sourceLocation)
    }
}

/// Manifests that are rejected: every problem is reported at once, on its own line, with its key path.
@Suite struct ManifestValidationTests {
    // MARK: Every problem at once

    @Test func severalProblemsInOneFileAreAllReportedEachOnItsLine() throws {
        let folder = try ManifestDirectory()
        let problems = folder.problems(
            """
            plugins:
              - name: alpha
                wasm: echo.wasm
                colour: blue
              - name: beta
                timeout: soon
                wasm: echo.wasm
              - wasm: echo.wasm
                name: alpha
            """)
        #expect(problems.map(\.line) == [4, 6, 9])
        #expect(problems.map(\.column) == [5, 14, 11])
        #expect(problems.map(\.keyPath) == ["plugins[0].colour", "plugins[1].timeout", "plugins[2].name"])
        try #require(problems.count == 3)
        #expect(problems[0].message.hasPrefix("unknown key (known: "))
        #expect(problems[1].message == "'soon' is not a duration (e.g. 250ms, 5s, 2m)")
        #expect(problems[2].message == "duplicate plugin name 'alpha' (first used on line 2)")
        #expect(problems.allSatisfy { $0.file == folder.manifestPath })
    }

    @Test func everyBadFieldOfOnePluginIsReportedNotJustTheFirst() throws {
        let folder = try ManifestDirectory()
        try folder.directory("data")
        let problems = folder.problems(
            ManifestDirectory.plugin(
                """
                    timeout: 0s
                    fuel: 0
                    instances: 65
                    memory: 1KiB
                    restart: {backoff: 5s..1s, max: -1, within: 1x, what: 2}
                    circuit: {failures: 0, reset: 2d, extra: 1}
                    network: {allowed_hosts: ['*', 'a..b', 'Ok.Example.COM'], other: 1}
                    filesystem:
                      - {host: data, guest: rel, mode: rx, x: 1}
                      - {host: nope, guest: /a/../b}
                      - {guest: /c}
                      - 5
                    env: {1BAD: x, GOOD: [1]}
                    config: {'': x}
                    sha256: xyz
                    abi: wasm
                """))
        let found = problems.map { "\($0.line ?? 0) \($0.keyPath ?? "-")" }
        #expect(
            found == [
                "4 plugins[0].timeout",
                "5 plugins[0].fuel",
                "6 plugins[0].instances",
                "7 plugins[0].memory",
                "8 plugins[0].restart.backoff",
                "8 plugins[0].restart.max",
                "8 plugins[0].restart.within",
                "8 plugins[0].restart.what",
                "9 plugins[0].circuit.failures",
                "9 plugins[0].circuit.reset",
                "9 plugins[0].circuit.extra",
                "10 plugins[0].network.allowed_hosts[0]",
                "10 plugins[0].network.allowed_hosts[1]",
                "10 plugins[0].network.other",
                "12 plugins[0].filesystem[0].guest",
                "12 plugins[0].filesystem[0].mode",
                "12 plugins[0].filesystem[0].x",
                "13 plugins[0].filesystem[1].host",
                "13 plugins[0].filesystem[1].guest",
                "14 plugins[0].filesystem[2]",
                "15 plugins[0].filesystem[3]",
                "16 plugins[0].env.1BAD",
                "16 plugins[0].env.GOOD",
                "17 plugins[0].config.",
                "18 plugins[0].sha256",
                "19 plugins[0].abi",
            ])
    }

    @Test func aBrokenPluginDoesNotHideTheProblemsOfTheOthers() throws {
        let folder = try ManifestDirectory()
        try folder.directory("modules")
        let problems = folder.problems(
            """
            plugins:
              - name: first
                wasm: modules
              - name: Second
                wasm: missing.wasm
              - just-a-name
              - {}
            """)
        #expect(problems.map(\.line) == [3, 4, 5, 6, 7, 7])
        #expect(
            problems.map(\.keyPath) == [
                "plugins[0].wasm", "plugins[1].name", "plugins[1].wasm", "plugins[2]", "plugins[3]", "plugins[3]",
            ])
        #expect(
            problems.map(\.message) == [
                "is a directory, not a .wasm file: \(folder.directory)/modules",
                "'Second' is not a valid name: lower-case letters, digits, '-' and '_', starting with a letter or digit, at most 64 characters",
                "file not found: \(folder.directory)/missing.wasm",
                "must be a mapping with at least 'name' and 'wasm' (or 'source')",
                "missing required key 'name'",
                "missing required key 'wasm' (a module) or 'source' (Swift sources to build)",
            ])
    }

    // MARK: Duplicate names

    @Test func aDuplicatePluginNameIsReportedWhereItIsReusedAndNamesTheFirstLine() throws {
        let folder = try ManifestDirectory()
        let problem = try folder.problem(
            """
            plugins:
              - name: echo
                wasm: echo.wasm

              - name: other
                wasm: echo.wasm

              - name: echo
                wasm: echo.wasm
            """)
        #expect(problem.line == 8)
        #expect(problem.column == 11)
        #expect(problem.keyPath == "plugins[2].name")
        #expect(problem.message == "duplicate plugin name 'echo' (first used on line 2)")
    }

    @Test func everyReuseOfANamePointsBackToItsFirstUse() throws {
        let folder = try ManifestDirectory()
        let problems = folder.problems(
            """
            plugins:
              - {name: echo, wasm: echo.wasm}
              - {name: echo, wasm: echo.wasm}
              - {name: "echo", wasm: echo.wasm}
            """)
        #expect(problems.map(\.line) == [3, 4])
        #expect(problems.map(\.keyPath) == ["plugins[1].name", "plugins[2].name"])
        #expect(problems.allSatisfy { $0.message == "duplicate plugin name 'echo' (first used on line 2)" })
    }

    // MARK: Unknown keys

    @Test func anUnknownTopLevelKeyIsReportedOnItsLine() throws {
        let folder = try ManifestDirectory()
        let problems = folder.problems(
            """
            version: 2
            plugins: [{name: echo, wasm: echo.wasm}]
            plugin: []
            """)
        #expect(problems.map(\.line) == [1, 3])
        #expect(problems.map(\.keyPath) == ["version", "plugin"])
        #expect(problems.allSatisfy { $0.message == "unknown key (the top level has only 'plugins')" })
    }

    @Test(arguments: [
        BadField(
            "    timout: 5s", "plugins[0].timout",
            "unknown key (known: abi, args, circuit, config, env, filesystem, fuel, host_functions, instances, max_queue, memory, modules, name, network, restart, sha256, source, standby, timeout, unknown_imports, vars, wasm); did you mean 'timeout'?"
        ),
        BadField("    Name: other", "plugins[0].Name", "; did you mean 'name'?"),
        BadField(
            "    restart:\n      max: 1\n      retries: 3", line: 6, "plugins[0].restart.retries",
            "unknown key (known: backoff, max, within)"),
        BadField(
            "    circuit: {failures: 1, cooldown: 5s}", "plugins[0].circuit.cooldown",
            "unknown key (known: failures, reset)"),
        BadField(
            "    network:\n      allowed_host: [example.com]", line: 5, "plugins[0].network.allowed_host",
            "unknown key (known: allowed_hosts); did you mean 'allowed_hosts'?"),
        BadField(
            "    filesystem:\n      - host: data\n        guest: /data\n        readonly: true", line: 7,
            "plugins[0].filesystem[0].readonly", "unknown key (known: guest, host, mode)"),
    ])
    func anUnknownKeyInAPluginOrInsideOneOfItsSectionsIsReported(_ bad: BadField) throws {
        try bad.check()
    }

    @Test func aKeyFarFromEveryKnownOneGetsNoGuess() {
        #expect(NearestName.suggestion(for: "colour", among: ["name", "wasm", "timeout"]) == nil)
        #expect(NearestName.suggestion(for: "stauts", among: ["start", "status", "stop"]) == "status")
        #expect(NearestName.suggestion(for: "timout", among: ["timeout", "memory"]) == "timeout")
    }

    // MARK: Required keys and shapes

    @Test func aPluginWithoutANameIsReportedAtThePlugin() throws {
        let problem = try ManifestDirectory().problem("plugins:\n  - wasm: echo.wasm\n    instances: 2\n")
        #expect(problem.line == 2)
        #expect(problem.column == 5)
        #expect(problem.keyPath == "plugins[0]")
        #expect(problem.message == "missing required key 'name'")
    }

    @Test func aPluginWithoutAWasmIsReportedAtThePlugin() throws {
        let problem = try ManifestDirectory().problem("plugins:\n  - name: echo\n")
        #expect(problem.line == 2)
        #expect(problem.keyPath == "plugins[0]")
        #expect(problem.message == "missing required key 'wasm' (a module) or 'source' (Swift sources to build)")
    }

    @Test func aSourceIsASwiftFileOrAFolderResolvedBesideTheManifest() throws {
        let folder = try ManifestDirectory()
        try folder.file("plugins/greeter.swift", contents: Data("// greeter\n".utf8))
        let file = try folder.plugin("plugins:\n  - {name: greeter, source: plugins/greeter.swift}\n")
        #expect(
            file.source
                == PluginSpec.SwiftSource(
                    path: folder.directory + "/plugins/greeter.swift", written: "plugins/greeter.swift"))
        #expect(file.wasm.isEmpty)
        let whole = try folder.plugin("plugins:\n  - {name: greeter, source: plugins}\n")
        #expect(whole.source?.path == folder.directory + "/plugins")
    }

    @Test func aSourceThatIsNotSwiftOrComesWithAModuleOrAPinIsRefused() throws {
        let folder = try ManifestDirectory()
        try folder.file("notes.txt", contents: Data("hello".utf8))
        try folder.file("greeter.swift", contents: Data("// greeter\n".utf8))
        #expect(
            try folder.problem("plugins:\n  - {name: a, source: notes.txt}\n").message
                == "must be a .swift file or a folder of them: \(folder.directory)/notes.txt")
        #expect(
            try folder.problem("plugins:\n  - {name: a, source: missing.swift}\n").message
                == "no such file or folder: \(folder.directory)/missing.swift")
        let both = try folder.problem("plugins:\n  - {name: a, wasm: echo.wasm, source: greeter.swift}\n")
        #expect(both.message == "give either 'wasm' or 'source', not both")
        #expect(both.keyPath == "plugins[0].source")
        let pinned = try folder.problem(
            "plugins:\n  - name: a\n    source: greeter.swift\n    sha256: \(String(repeating: "a", count: 64))\n")
        #expect(pinned.keyPath == "plugins[0].sha256" && pinned.line == 4)
        #expect(pinned.message.contains("pin a built .wasm instead"))
        #expect(
            try folder.problem("plugins:\n  - {name: a, source: greeter.swift, abi: extism}\n").message
                .contains("not for a plugin built from 'source'"))
        #expect(try folder.plugin("plugins:\n  - {name: a, source: greeter.swift, abi: plugvisor}\n").source != nil)
    }

    @Test func aManifestWithoutPluginsSaysSo() throws {
        let problem = try ManifestDirectory().problem("# nothing here yet\n{}\n")
        #expect(problem.line == 2)
        #expect(problem.keyPath == nil)
        #expect(problem.message == "missing required key 'plugins'")
    }

    @Test func anEmptyPluginsListIsRejected() throws {
        let problem = try ManifestDirectory().problem("plugins: []\n")
        #expect(problem.line == 1)
        #expect(problem.column == 10)
        #expect(problem.keyPath == "plugins")
        #expect(problem.message == "lists no plugin")
    }

    @Test(arguments: ["plugins:\n", "plugins: 3\n", "plugins: echo\n", "plugins: {name: echo, wasm: echo.wasm}\n"])
    func pluginsThatIsNotAListIsRejected(text: String) throws {
        let problem = try ManifestDirectory().problem(text)
        #expect(problem.line == 1)
        #expect(problem.keyPath == "plugins")
        #expect(problem.message == "must be a list of plugins")
    }

    @Test(arguments: [
        "", "# only a comment\n", "just some text\n", "42\n", "[]\n", "- name: echo\n  wasm: echo.wasm\n",
    ])
    func aTopLevelThatIsNotAMappingIsRejected(text: String) throws {
        let problem = try ManifestDirectory().problem(text)
        #expect(problem.keyPath == nil)
        #expect(problem.message == "the manifest must be a mapping with a 'plugins' list")
    }

    @Test(arguments: [
        BadField("    timeout: [5s]", "plugins[0].timeout", "must be a single value, not a list or mapping"),
        BadField("    abi: {kind: plugvisor}", "plugins[0].abi", "must be a single value, not a list or mapping"),
        BadField(
            "    fuel:\n      - 1000", line: 5, "plugins[0].fuel", "must be a single value, not a list or mapping"),
        BadField("    env: {LOG: [a, b]}", "plugins[0].env.LOG", "must be a single value, not a list or mapping"),
        BadField(
            "    config:\n      nested:\n        deep: 1", line: 6, "plugins[0].config.nested",
            "must be a single value, not a list or mapping"),
        BadField(
            "    restart: {backoff: [1s, 5s]}", "plugins[0].restart.backoff",
            "must be a single value, not a list or mapping"),
        BadField(
            "    circuit: {reset: [1s]}", "plugins[0].circuit.reset", "must be a single value, not a list or mapping"),
        BadField(
            "    network: {allowed_hosts: [[example.com]]}", "plugins[0].network.allowed_hosts[0]",
            "must be a single value, not a list or mapping"),
        BadField(
            "    filesystem: [{host: [data], guest: /data}]", "plugins[0].filesystem[0].host",
            "must be a single value, not a list or mapping"),
        BadField(
            "    filesystem: [{host: data, guest: {path: /data}}]", "plugins[0].filesystem[0].guest",
            "must be a single value, not a list or mapping"),
    ])
    func aListOrMappingWhereASingleValueBelongsIsRejected(_ bad: BadField) throws {
        try bad.check()
    }

    @Test func aNameThatIsAListIsRejected() throws {
        let problem = try ManifestDirectory().problem("plugins:\n  - name: [echo]\n    wasm: echo.wasm\n")
        #expect(problem.line == 2)
        #expect(problem.keyPath == "plugins[0].name")
        #expect(problem.message == "must be a single value, not a list or mapping")
    }

    @Test(arguments: [
        BadField(
            "    filesystem: {host: data, guest: /data}", "plugins[0].filesystem",
            "must be a list of {host, guest, mode}"),
        BadField("    filesystem: [/data]", "plugins[0].filesystem[0]", "must be a mapping {host, guest, mode}"),
        BadField("    network: [example.com]", "plugins[0].network", "must be a mapping {allowed_hosts: [...]}"),
        BadField(
            "    network: {allowed_hosts: example.com}", "plugins[0].network.allowed_hosts",
            "must be a list of host names"),
        BadField("    env: [LOG=debug]", "plugins[0].env", "must be a mapping of names to values"),
        BadField("    config: greeting", "plugins[0].config", "must be a mapping of names to values"),
        BadField("    restart: 3", "plugins[0].restart", "must be a mapping {max, within, backoff}"),
        BadField("    circuit: on", "plugins[0].circuit", "must be a mapping {failures, reset}"),
    ])
    func aSectionOfTheWrongShapeIsRejected(_ bad: BadField) throws {
        try bad.check()
    }

    @Test(arguments: [
        BadField("    timeout:", "plugins[0].timeout", "must not be empty"),
        BadField("    sha256: \"\"", "plugins[0].sha256", "must not be empty"),
        BadField("    memory: ''", "plugins[0].memory", "must not be empty"),
        BadField("    restart: {within: ''}", "plugins[0].restart.within", "must not be empty"),
    ])
    func anEmptyValueIsRejected(_ bad: BadField) throws {
        try bad.check()
    }

    // MARK: Names

    @Test(arguments: [
        "Echo", "ECHO", "-echo", "_echo", "echo server", "echo.v2", "echo/1", "écho", "echo!",
        String(repeating: "x", count: 65),
    ])
    func anInvalidNameIsRejectedWithTheRule(name: String) throws {
        let problem = try ManifestDirectory().problem("plugins:\n  - name: \"\(name)\"\n    wasm: echo.wasm\n")
        #expect(problem.line == 2)
        #expect(problem.keyPath == "plugins[0].name")
        #expect(
            problem.message
                == "'\(name)' is not a valid name: lower-case letters, digits, '-' and '_', starting with a letter or digit, at most 64 characters"
        )
    }

    // MARK: Module

    @Test func aMissingWasmFileIsReportedWithItsResolvedPath() throws {
        let folder = try ManifestDirectory()
        let problem = try folder.problem("plugins:\n  - name: echo\n    wasm: ../plugins/missing.wasm\n")
        #expect(problem.line == 3)
        #expect(problem.column == 11)
        #expect(problem.keyPath == "plugins[0].wasm")
        let parent = (folder.directory as NSString).deletingLastPathComponent
        #expect(problem.message == "file not found: \(parent)/plugins/missing.wasm")
    }

    @Test func aWasmPathThatIsADirectoryIsRejected() throws {
        let folder = try ManifestDirectory()
        let modules = try folder.directory("modules.wasm")
        let problem = try folder.problem("plugins:\n  - name: echo\n    wasm: modules.wasm/\n")
        #expect(problem.line == 3)
        #expect(problem.keyPath == "plugins[0].wasm")
        #expect(problem.message == "is a directory, not a .wasm file: \(modules)")
    }

    @Test(arguments: [
        BadField("    sha256: abc123", "plugins[0].sha256", "must be 64 hexadecimal digits"),
        BadField(
            "    sha256: \(String(repeating: "a", count: 63))", "plugins[0].sha256", "must be 64 hexadecimal digits"),
        BadField(
            "    sha256: \(String(repeating: "a", count: 65))", "plugins[0].sha256", "must be 64 hexadecimal digits"),
        BadField(
            "    sha256: \(String(repeating: "a", count: 63))g", "plugins[0].sha256", "must be 64 hexadecimal digits"),
        BadField(
            "    sha256: \"sha256:\(String(repeating: "a", count: 64))\"", "plugins[0].sha256",
            "must be 64 hexadecimal digits"),
        BadField(
            "    sha256: \" \(String(repeating: "a", count: 63))\"", "plugins[0].sha256",
            "must be 64 hexadecimal digits"),
    ])
    func aSha256ThatIsNot64HexDigitsIsRejected(_ bad: BadField) throws {
        try bad.check()
    }

    @Test func aSha256OfNonASCIIDigitsIsRejected() throws {
        // Character.isHexDigit also accepts the fullwidth forms U+FF10–U+FF19, U+FF21–U+FF26 and
        // U+FF41–U+FF46; only ASCII hex digits may spell a hash.
        let fullwidth = String(repeating: "\u{FF10}\u{FF41}", count: 32)
        let folder = try ManifestDirectory()
        let problem = try folder.problem(inPlugin: "    sha256: \(fullwidth)")
        #expect(problem.keyPath == "plugins[0].sha256")
        #expect(problem.message == "must be 64 hexadecimal digits")
    }

    @Test(arguments: ["wasi", "Plugvisor", "WASI-COMMAND", "wasi_command", "wasm"])
    func anUnknownABIIsRejectedWithTheChoices(abi: String) throws {
        try BadField("    abi: \(abi)", "plugins[0].abi", "'\(abi)' is not an ABI (plugvisor, wasi-command, extism)")
            .check()
    }

    @Test func varsAreAnExtismPluginsAndTakeASize() throws {
        let folder = try ManifestDirectory()
        #expect(try folder.plugin(ManifestDirectory.plugin("    abi: extism\n    vars: 64KiB")).maxVarBytes == 65536)
        #expect(try folder.plugin(ManifestDirectory.plugin("    abi: extism\n    vars: \"0\"")).maxVarBytes == 0)
        #expect(try folder.plugin(ManifestDirectory.plugin("    abi: extism")).maxVarBytes == 1 << 20)
        try BadField("    vars: 1MiB", "plugins[0].vars", "is for abi: extism plugins; this plugin's abi is plugvisor")
            .check()
        try BadField(
            "    abi: extism\n    vars: lots", line: 5, "plugins[0].vars",
            "'lots' is not a size up to 1GiB (e.g. 1MiB; 0 disables vars)"
        ).check()
    }

    @Test func hostFunctionsAreGrantedByName() throws {
        let folder = try ManifestDirectory()
        let plugin = try folder.plugin(
            ManifestDirectory.plugin("    abi: extism\n    host_functions: [kv_get, kv_set]"))
        #expect(plugin.hostFunctions == ["kv_get", "kv_set"])
        try BadField(
            "    abi: extism\n    host_functions: kv_get", line: 5, "plugins[0].host_functions",
            "must be a list of host function names (e.g. [kv_get])"
        ).check()
        #expect(try folder.plugin(ManifestDirectory.plugin("    host_functions: [kv_get]")).hostFunctions == ["kv_get"])
    }

    @Test func modulesAreLinkedByNameFromFilesThatExist() throws {
        let folder = try ManifestDirectory()
        let lib = try folder.file("lib.wasm")
        let plugin = try folder.plugin(ManifestDirectory.plugin("    abi: extism\n    modules: {lib: lib.wasm}"))
        #expect(plugin.modules == [PluginSpec.NamedModule(name: "lib", wasm: lib)])
        try BadField(
            "    modules: {lib: echo.wasm}", "plugins[0].modules",
            "is for abi: extism plugins; this plugin's abi is plugvisor"
        ).check()
        try BadField(
            "    abi: extism\n    modules: {lib: missing.wasm}", line: 5, "plugins[0].modules.lib", "file not found: "
        ).check()
        try BadField(
            "    abi: extism\n    modules: {\"extism:host/env\": echo.wasm}", line: 5,
            "plugins[0].modules.extism:host/env",
            "'extism:host/env' cannot be linked: the host provides that module"
        ).check()
    }

    // MARK: Durations, sizes and numbers

    @Test(arguments: ["soon", "5", "5 s", "-1s", "5sec", "5S", "1_000ms", "1d", "PT5S"])
    func aTimeoutThatIsNotADurationIsRejected(text: String) throws {
        try BadField("    timeout: \(text)", "plugins[0].timeout", "'\(text)' is not a duration (e.g. 250ms, 5s, 2m)")
            .check()
    }

    @Test(arguments: ["0s", "0ms", "999us", "3601s", "2h", "61m"])
    func aTimeoutOutsideAMillisecondToAnHourIsRejected(text: String) throws {
        try BadField(
            "    timeout: \(text)", "plugins[0].timeout",
            "'\(text)' is out of range (0.001 seconds to 3600.0 seconds)"
        ).check()
    }

    @Test(arguments: [
        BadField(
            "    restart: {within: 2d}", "plugins[0].restart.within", "'2d' is not a duration (e.g. 250ms, 5s, 2m)"),
        BadField(
            "    restart: {within: 25h}", "plugins[0].restart.within",
            "'25h' is out of range (0.001 seconds to 86400.0 seconds)"),
        BadField(
            "    circuit: {reset: never}", "plugins[0].circuit.reset", "'never' is not a duration (e.g. 250ms, 5s, 2m)"),
        BadField(
            "    circuit: {reset: 0ms}", "plugins[0].circuit.reset",
            "'0ms' is out of range (0.001 seconds to 86400.0 seconds)"),
    ])
    func aBadRestartWindowOrCircuitResetIsRejected(_ bad: BadField) throws {
        try bad.check()
    }

    @Test(arguments: ["32mb", "32 MiB", "1.5MiB", "lots", "-1MiB", "1TiB", "65535", "63KiB", "4097MiB", "5GiB"])
    func aMemorySizeThatIsNotASizeOrOutside64KiBTo4GiBIsRejected(text: String) throws {
        try BadField(
            "    memory: \(text)", "plugins[0].memory",
            "'\(text)' is not a memory size between 64KiB and 4GiB (e.g. 32MiB)"
        ).check()
    }

    @Test(arguments: [
        BadField("    instances: 0", "plugins[0].instances", "'0' is not a whole number between 1 and 64"),
        BadField("    instances: 65", "plugins[0].instances", "'65' is not a whole number between 1 and 64"),
        BadField("    instances: -1", "plugins[0].instances", "'-1' is not a whole number between 1 and 64"),
        BadField("    standby: 9", "plugins[0].standby", "'9' is not a whole number between 0 and 8"),
        BadField("    instances: two", "plugins[0].instances", "'two' is not a whole number between 1 and 64"),
        BadField("    instances: 2.0", "plugins[0].instances", "'2.0' is not a whole number between 1 and 64"),
        BadField(
            "    max_queue: 100001", "plugins[0].max_queue", "'100001' is not a whole number between 0 and 100000"),
        BadField("    max_queue: -1", "plugins[0].max_queue", "'-1' is not a whole number between 0 and 100000"),
        BadField("    fuel: 0", "plugins[0].fuel", "'0' is not a whole number of at least 1"),
        BadField("    fuel: 9223372036854775808", "plugins[0].fuel", "'9223372036854775808' is not a whole number"),
        BadField("    fuel: 1e9", "plugins[0].fuel", "'1e9' is not a whole number"),
        BadField("    fuel: 1_000_", "plugins[0].fuel", "'1_000_' is not a whole number"),
        BadField("    fuel: _1000", "plugins[0].fuel", "'_1000' is not a whole number"),
        BadField(
            "    restart: {max: 10001}", "plugins[0].restart.max", "'10001' is not a whole number between 0 and 10000"),
        BadField(
            "    circuit: {failures: 0}", "plugins[0].circuit.failures",
            "'0' is not a whole number between 1 and 100000"),
    ])
    func anIntegerThatIsNotANumberOrOutOfRangeIsRejected(_ bad: BadField) throws {
        try bad.check()
    }

    @Test(arguments: ["5s..1s", "5s", "1s..", "..5s", "fast..slow", "100ms-5s", "100ms..5s..10s"])
    func aBackoffThatIsNotAnIncreasingRangeIsRejected(text: String) throws {
        try BadField(
            "    restart:\n      backoff: \(text)", line: 5, "plugins[0].restart.backoff",
            "'\(text)' is not a range MIN..MAX of durations (e.g. 100ms..5s)"
        ).check()
    }

    @Test func aBackoffWithThreeDotsIsRejected() throws {
        let folder = try ManifestDirectory()
        let problem = try folder.problem(inPlugin: "    restart: {backoff: 100ms...5s}")
        #expect(problem.keyPath == "plugins[0].restart.backoff")
    }

    // MARK: Filesystem

    @Test func aFilesystemHostThatDoesNotExistIsRejectedWithItsResolvedPath() throws {
        let folder = try ManifestDirectory()
        let problem = try folder.problem(inPlugin: "    filesystem:\n      - host: nope\n        guest: /data")
        #expect(problem.line == 5)
        #expect(problem.column == 15)
        #expect(problem.keyPath == "plugins[0].filesystem[0].host")
        #expect(problem.message == "not an existing directory: \(folder.directory)/nope")
    }

    @Test func aFilesystemHostThatIsAFileIsRejected() throws {
        let folder = try ManifestDirectory()
        let problem = try folder.problem(inPlugin: "    filesystem: [{host: echo.wasm, guest: /data}]")
        #expect(problem.line == 4)
        #expect(problem.keyPath == "plugins[0].filesystem[0].host")
        #expect(problem.message == "not an existing directory: \(folder.echo)")
    }

    @Test(arguments: ["data", "./data", "data/", "/data/../etc", "/..", "/data/..", "..", ""])
    func aGuestPathMustBeAbsoluteWithoutDotDot(guest: String) throws {
        let expected = guest.isEmpty ? "must not be empty" : "must be an absolute path without '..'"
        try BadField(
            "    filesystem:\n      - host: data\n        guest: \"\(guest)\"", line: 6,
            "plugins[0].filesystem[0].guest", expected
        ).check()
    }

    @Test func aGuestPathWithDotsInANameIsAccepted() throws {
        let folder = try ManifestDirectory()
        try folder.directory("data")
        let plugin = try folder.plugin(
            ManifestDirectory.plugin("    filesystem: [{host: data, guest: /data/..hidden/a..b}]"))
        #expect(plugin.filesystem.map(\.guest) == ["/data/..hidden/a..b"])
    }

    @Test func theSameGuestPathMountedTwiceIsRejectedAtTheSecond() throws {
        try BadField(
            """
                filesystem:
                  - {host: data, guest: /data}
                  - {host: ., guest: /data, mode: rw}
            """, line: 6, "plugins[0].filesystem[1].guest", "guest path '/data' is mounted twice"
        ).check()
    }

    @Test(arguments: [
        BadField(
            "    filesystem: [{host: data, guest: /data, mode: rwx}]", "plugins[0].filesystem[0].mode",
            "'rwx' is not a mode (ro, rw)"),
        BadField(
            "    filesystem: [{host: data, guest: /data, mode: RW}]", "plugins[0].filesystem[0].mode",
            "'RW' is not a mode (ro, rw)"),
        BadField(
            "    filesystem: [{host: data, guest: /data, mode: read-only}]", "plugins[0].filesystem[0].mode",
            "'read-only' is not a mode (ro, rw)"),
        BadField("    filesystem: [{guest: /data}]", "plugins[0].filesystem[0]", "missing required key 'host'"),
        BadField("    filesystem: [{host: data}]", "plugins[0].filesystem[0]", "missing required key 'guest'"),
    ])
    func aFilesystemGrantWithABadModeOrAMissingKeyIsRejected(_ bad: BadField) throws {
        try bad.check()
    }

    // MARK: Network

    @Test(arguments: [
        "*", "*.", "**.example.com", "*.*.example.com", "example.*", "ex*ample.com", "a..b", ".example.com",
        "example.com..", "-example.com", "example-.com", "https://example.com", "exa mple.com",
        "under_score.example", "bücher.example", "10.0.0.0/8", "::1", "[::1", "[zz::1]", "[fe80::1%eth0]",
        "[example.com]",
        "exa%2emple.com", "127.0.0.2%00.localhost", "example.com:0", "example.com:65536", "example.com:",
        "example.com:http",
        "example.com:8443:1", "*.[::1]", "*.example.com:-1",
        String(repeating: "a", count: 64) + ".example",
        [String](repeating: String(repeating: "a", count: 63), count: 3).joined(separator: ".") + "."
            + String(repeating: "b", count: 62),
    ])
    func anInvalidHostPatternIsRejected(pattern: String) throws {
        try BadField(
            "    network: {allowed_hosts: [\"\(pattern)\"]}", "plugins[0].network.allowed_hosts[0]",
            "'\(pattern)' is not a host name or '*.suffix' pattern"
        ).check()
    }

    @Test func aHostNameMayHave253CharactersAndLabelsOf63() throws {
        let longest =
            [String](repeating: String(repeating: "a", count: 63), count: 3).joined(separator: ".")
            + "." + String(repeating: "b", count: 61)
        #expect(longest.count == 253)
        let folder = try ManifestDirectory()
        let plugin = try folder.plugin(
            ManifestDirectory.plugin("    network: {allowed_hosts: [\(longest), \"*.\(longest)\"]}"))
        #expect(plugin.allowedHosts == [longest, "*." + longest])
    }

    @Test func everyBadHostIsReportedAtItsOwnIndex() throws {
        let folder = try ManifestDirectory()
        let problems = folder.problems(
            ManifestDirectory.plugin(
                """
                    network:
                      allowed_hosts:
                        - good.example
                        - bad..example
                        - also.good
                        - "*"
                """))
        #expect(problems.map(\.line) == [7, 9])
        #expect(
            problems.map(\.keyPath) == ["plugins[0].network.allowed_hosts[1]", "plugins[0].network.allowed_hosts[3]"])
    }

    // MARK: Environment and config

    @Test(arguments: ["1BAD", "LOG-LEVEL", "with space", "ÉTÉ", "A.B"])
    func anInvalidEnvironmentVariableNameIsRejected(name: String) throws {
        try BadField(
            "    env:\n      \"\(name)\": x", line: 5, "plugins[0].env.\(name)",
            "'\(name)' is not an environment variable name"
        ).check()
    }

    @Test func anEmptyConfigKeyIsRejected() throws {
        try BadField("    config: {\"\": x}", "plugins[0].config.", "'' is not a non-empty key").check()
    }

    // MARK: YAML itself

    @Test(arguments: [
        ("plugins:\n  - name: echo\n   wasm: echo.wasm\n", 3),
        ("plugins: [{name: echo, wasm: echo.wasm}\n", 2),
        ("plugins:\n\t- name: echo\n", 2),
        ("plugins:\n  - name: echo\n    wasm: echo.wasm\n    env: {A: 1\n    config: {}\n", 5),
        ("plugins:\n  - name: echo\n    wasm: echo.wasm\n    timeout: \"5s\n", 5),
        ("plugins:\n  - name: echo\n    wasm: echo.wasm\n---\nplugins: []\n", 4),
    ])
    func aYAMLSyntaxErrorIsTheOnlyProblemAndHasALine(text: String, line: Int) throws {
        let problem = try ManifestDirectory().problem(text)
        #expect(problem.line == line)
        #expect(problem.column != nil)
        #expect(problem.keyPath == nil)
        #expect(problem.message.hasPrefix("YAML syntax: "))
    }

    @Test func aJSONSyntaxErrorHasALine() throws {
        let problem = try ManifestDirectory().problem(
            "{\n  \"plugins\": [\n    {\"name\": \"echo\" \"wasm\": \"echo.wasm\"}\n  ]\n}\n")
        #expect(problem.line == 3)
        #expect(problem.message.hasPrefix("YAML syntax: "))
    }

    @Test func aJSONManifestReportsProblemsOnTheirLines() throws {
        let folder = try ManifestDirectory()
        let problems = folder.problems(
            """
            {
              "plugins": [
                {
                  "name": "echo",
                  "wasm": "echo.wasm",
                  "timeout": "5x",
                  "colour": "blue"
                }
              ]
            }
            """)
        #expect(problems.map(\.line) == [6, 7])
        #expect(problems.map(\.keyPath) == ["plugins[0].timeout", "plugins[0].colour"])
    }

    /// Yams stops at the first repeated key and gives the position of its first use, so that is
    /// where the problem points; nothing else in the file is checked.
    @Test(arguments: [
        ("plugins:\n  - name: echo\n    wasm: echo.wasm\n    timeout: 1s\n    timeout: 2s\n", 4, "timeout"),
        ("plugins:\n  - name: echo\n    wasm: echo.wasm\n    restart:\n      max: 1\n      max: 2\n", 5, "max"),
        ("plugins: [{name: a, wasm: echo.wasm}]\nplugins: []\n", 1, "plugins"),
        ("{\"plugins\": [{\"name\": \"a\",\n \"wasm\": \"echo.wasm\",\n \"name\": \"b\"}]}", 1, "name"),
    ])
    func aKeyRepeatedInOneMappingIsReported(text: String, line: Int, key: String) throws {
        let problem = try ManifestDirectory().problem(text)
        #expect(problem.line == line)
        #expect(problem.keyPath == nil)
        #expect(problem.message == "duplicate key '\(key)' in one mapping")
    }

    // MARK: Reading the file

    @Test func aManifestThatCannotBeReadIsOneProblemWithoutALine() throws {
        let folder = try ManifestDirectory()
        let path = folder.directory + "/absent.yaml"
        let error = try #require(throws: ManifestErrors.self) { try Manifest.load(path: path) }
        try #require(error.problems.count == 1)
        #expect(error.problems[0].file == path)
        #expect(error.problems[0].line == nil)
        #expect(error.problems[0].keyPath == nil)
        #expect(error.problems[0].message.hasPrefix("cannot read manifest: "))
    }

    @Test func aManifestThatIsADirectoryCannotBeRead() throws {
        let folder = try ManifestDirectory()
        let error = try #require(throws: ManifestErrors.self) { try Manifest.load(path: folder.directory) }
        #expect(error.problems.map(\.file) == [folder.directory])
        #expect(error.problems.first?.message.hasPrefix("cannot read manifest: ") == true)
    }

    @Test func aManifestThatIsNotUTF8IsRejected() throws {
        let folder = try ManifestDirectory()
        let path = try folder.file(
            "latin1.yaml", contents: Data([0x70, 0x6C, 0x75, 0x67, 0x3A, 0x20, 0xE9, 0xFF, 0x0A]))
        let error = try #require(throws: ManifestErrors.self) { try Manifest.load(path: path) }
        #expect(
            error.problems == [
                ManifestProblem(file: path, line: nil, column: nil, keyPath: nil, message: "manifest is not UTF-8 text")
            ])
    }

    @Test func loadReportsProblemsWithThePathItWasGiven() throws {
        let folder = try ManifestDirectory()
        try folder.file(
            "plugins.yaml", contents: Data("plugins:\n  - name: echo\n    wasm: echo.wasm\n    fuel: lots\n".utf8))
        let error = try #require(throws: ManifestErrors.self) { try Manifest.load(path: folder.manifestPath) }
        #expect(
            error.problems.map(\.description) == [
                "\(folder.manifestPath):4:11: plugins[0].fuel: 'lots' is not a whole number of at least 1"
            ])
    }
}

@Suite struct WasiCommandManifestTests {
    @Test func argsAreReadInOrder() throws {
        let folder = try ManifestDirectory()
        let spec = try folder.plugin(
            """
            plugins:
              - name: wc
                wasm: echo.wasm
                abi: wasi-command
                args: [wc, --fast, "two words"]
            """)
        #expect(spec.abi == .wasiCommand)
        #expect(spec.args == ["wc", "--fast", "two words"])
    }

    @Test func argsThatAreNotAListAreReportedWithTheirLine() throws {
        let folder = try ManifestDirectory()
        let problems = folder.problems(
            """
            plugins:
              - name: wc
                wasm: echo.wasm
                args: "--fast"
            """)
        #expect(problems.map(\.keyPath) == ["plugins[0].args"])
        #expect(problems.first?.line == 4)
    }
}

@Suite struct UnknownImportsManifestTests {
    @Test func unknownImportsIsRefuseOrTrap() throws {
        let folder = try ManifestDirectory()
        let spec = try folder.plugin("plugins:\n  - {name: p, wasm: echo.wasm, unknown_imports: trap}\n")
        #expect(spec.trapUnknownImports)
        let problem = try folder.problem(inPlugin: "    unknown_imports: ignore")
        #expect(problem.keyPath == "plugins[0].unknown_imports")
        #expect(problem.message == "'ignore' is not a choice (refuse, trap)")
    }
}
