import Foundation
import PlugvisorManifest
import Testing

/// Manifests that load: the values they produce, the defaults, and how paths in them resolve.
@Suite struct ManifestLoaderTests {
    @Test func aManifestWithEveryFieldParsesToTheValuesItStates() throws {
        let folder = try ManifestDirectory()
        let module = try folder.file("modules/resizer.wasm")
        let data = try folder.directory("data")
        let cache = try folder.directory("elsewhere/cache")
        let plugin = try folder.plugin(
            """
            plugins:
              - name: image-resizer_2
                wasm: modules/resizer.wasm
                sha256: E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855
                abi: wasi-command
                instances: 4
                max_queue: 0
                timeout: 250ms
                fuel: 50_000_000
                memory: 32MiB
                filesystem:
                  - host: data
                    guest: /data
                    mode: rw
                  - host: \(cache)
                    guest: /var/cache
                network:
                  allowed_hosts: [API.Example.com, "*.CDN.example.net", 10.0.0.1]
                env:
                  LOG_LEVEL: debug
                  RETRIES: 3
                  _private: "yes"
                config:
                  greeting: Bonjour tout le monde
                  version: 1.10
                  empty-ish: "0"
                restart:
                  max: 3
                  within: 2m
                  backoff: 200ms..10s
                circuit:
                  failures: 7
                  reset: 1.5s
            """)

        var expected = PluginSpec(name: "image-resizer_2", wasm: module)
        expected.sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        expected.abi = .wasiCommand
        expected.instances = 4
        expected.maxQueue = 0
        expected.timeout = .milliseconds(250)
        expected.fuel = 50_000_000
        expected.memory = 32 * 1024 * 1024
        expected.filesystem = [
            .init(host: data, guest: "/data", mode: .readWrite),
            .init(host: cache, guest: "/var/cache", mode: .readOnly),
        ]
        expected.allowedHosts = ["api.example.com", "*.cdn.example.net", "10.0.0.1"]
        expected.env = ["LOG_LEVEL": "debug", "RETRIES": "3", "_private": "yes"]
        expected.config = ["greeting": "Bonjour tout le monde", "version": "1.10", "empty-ish": "0"]
        expected.restart = .init(
            max: 3, within: .seconds(120), backoffMin: .milliseconds(200), backoffMax: .seconds(10))
        expected.circuit = .init(failures: 7, reset: .milliseconds(1500))
        #expect(plugin == expected)
        #expect(plugin.filesystem.allSatisfy { $0.host.hasPrefix("/") })
    }

    @Test func aPluginWithOnlyNameAndWasmGetsTheDefaults() throws {
        let folder = try ManifestDirectory()
        let plugin = try folder.plugin("plugins: [{name: tiny, wasm: echo.wasm}]")
        #expect(plugin.name == "tiny")
        #expect(plugin.wasm == folder.echo)
        #expect(plugin.abi == .plugvisor)
        #expect(plugin.instances == 1)
        #expect(plugin.maxQueue == 64)
        #expect(plugin.timeout == .seconds(5))
        #expect(plugin.restart == .default)
        #expect(plugin.sha256 == nil)
        #expect(plugin.fuel == nil)
        #expect(plugin.memory == nil)
        #expect(plugin.circuit == nil)
        #expect(plugin.filesystem.isEmpty)
        #expect(plugin.allowedHosts.isEmpty)
        #expect(plugin.env.isEmpty)
        #expect(plugin.config.isEmpty)
        #expect(plugin == PluginSpec(name: "tiny", wasm: folder.echo))
    }

    @Test func theDefaultRestartPolicyAllowsFiveRestartsAMinuteBackingOffFrom100msTo5s() {
        #expect(
            PluginSpec.RestartPolicy.default
                == .init(
                    max: 5, within: .seconds(60), backoffMin: .milliseconds(100), backoffMax: .seconds(5)))
    }

    @Test func aPartialRestartPolicyKeepsTheDefaultsItDoesNotMention() throws {
        let folder = try ManifestDirectory()
        let plugin = try folder.plugin(ManifestDirectory.plugin("    restart: {max: 2}"))
        #expect(
            plugin.restart
                == .init(max: 2, within: .seconds(60), backoffMin: .milliseconds(100), backoffMax: .seconds(5)))
        let other = try folder.plugin(ManifestDirectory.plugin("    restart: {backoff: 1s..1m}"))
        #expect(other.restart == .init(max: 5, within: .seconds(60), backoffMin: .seconds(1), backoffMax: .seconds(60)))
    }

    @Test func anEmptyCircuitMappingTurnsTheBreakerOnWithDefaults() throws {
        let folder = try ManifestDirectory()
        let plugin = try folder.plugin(ManifestDirectory.plugin("    circuit: {}"))
        #expect(plugin.circuit == .init(failures: 5, reset: .seconds(30)))
        let partial = try folder.plugin(ManifestDirectory.plugin("    circuit: {failures: 2}"))
        #expect(partial.circuit == .init(failures: 2, reset: .seconds(30)))
    }

    @Test func emptyCapabilitySectionsGrantNothing() throws {
        let folder = try ManifestDirectory()
        let plugin = try folder.plugin(
            ManifestDirectory.plugin(
                """
                    filesystem: []
                    network: {}
                    env: {}
                    config: {}
                """))
        #expect(plugin.filesystem.isEmpty)
        #expect(plugin.allowedHosts.isEmpty)
        #expect(plugin.env.isEmpty)
        #expect(plugin.config.isEmpty)
        let noHosts = try folder.plugin(ManifestDirectory.plugin("    network: {allowed_hosts: []}"))
        #expect(noHosts.allowedHosts.isEmpty)
    }

    @Test func aFilesystemGrantIsReadOnlyUnlessItSaysRw() throws {
        let folder = try ManifestDirectory()
        let data = try folder.directory("data")
        let plugin = try folder.plugin(
            ManifestDirectory.plugin(
                """
                    filesystem:
                      - {host: data, guest: /a}
                      - {host: data, guest: /b, mode: ro}
                      - {host: data, guest: /c, mode: rw}
                """))
        #expect(
            plugin.filesystem == [
                .init(host: data, guest: "/a", mode: .readOnly),
                .init(host: data, guest: "/b", mode: .readOnly),
                .init(host: data, guest: "/c", mode: .readWrite),
            ])
    }

    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)), ("1ms", .milliseconds(1)), ("1000us", .milliseconds(1)),
        ("1.5s", .milliseconds(1500)), ("2m", .seconds(120)), ("1h", .seconds(3600)),
    ])
    func aTimeoutAcceptsAnyUnitBetweenAMillisecondAndAnHour(text: String, expected: Duration) throws {
        let folder = try ManifestDirectory()
        #expect(try folder.plugin(ManifestDirectory.plugin("    timeout: \(text)")).timeout == expected)
    }

    @Test(arguments: [("64KiB", 65_536), ("65536", 65_536), ("16MB", 16_000_000), ("1GiB", 1 << 30), ("4GiB", 4 << 30)])
    func aMemoryCapAcceptsSizesFrom64KiBTo4GiB(text: String, expected: Int) throws {
        let folder = try ManifestDirectory()
        #expect(try folder.plugin(ManifestDirectory.plugin("    memory: \(text)")).memory == expected)
    }

    @Test func fuelAcceptsUnderscoresAndTheLargestSignedValue() throws {
        let folder = try ManifestDirectory()
        #expect(try folder.plugin(ManifestDirectory.plugin("    fuel: 1_000_000_000")).fuel == 1_000_000_000)
        #expect(try folder.plugin(ManifestDirectory.plugin("    fuel: 9223372036854775807")).fuel == UInt64(Int64.max))
        #expect(try folder.plugin(ManifestDirectory.plugin("    fuel: 1")).fuel == 1)
    }

    @Test func integersAtTheEdgesOfTheirRangesAreAccepted() throws {
        let folder = try ManifestDirectory()
        let low = try folder.plugin(
            ManifestDirectory.plugin(
                "    instances: 1\n    max_queue: 0\n    restart: {max: 0}\n    circuit: {failures: 1}"))
        #expect(low.instances == 1)
        #expect(low.maxQueue == 0)
        #expect(low.restart.max == 0)
        #expect(low.circuit?.failures == 1)
        let high = try folder.plugin(
            ManifestDirectory.plugin(
                "    instances: 64\n    max_queue: 100_000\n    restart: {max: 10000}\n    circuit: {failures: 100000}")
        )
        #expect(high.instances == 64)
        #expect(high.maxQueue == 100_000)
        #expect(high.restart.max == 10_000)
        #expect(high.circuit?.failures == 100_000)
    }

    @Test func anUpperCaseSha256IsStoredLowerCase() throws {
        let folder = try ManifestDirectory()
        let hash = String(repeating: "AbCdEf0123456789", count: 4)
        #expect(try folder.plugin(ManifestDirectory.plugin("    sha256: \(hash)")).sha256 == hash.lowercased())
    }

    @Test func allowedHostsAreNormalisedAndMayBeWildcardSuffixesWithPorts() throws {
        let folder = try ManifestDirectory()
        let plugin = try folder.plugin(
            ManifestDirectory.plugin(
                """
                    network:
                      allowed_hosts:
                        - Example.COM
                        - "*.Internal.Example.com"
                        - localhost
                        - 10.0.0.1
                        - a-b.c-d.example
                        - xn--bcher-kva.example
                        - API.Example.com.:8443
                        - "*.Internal.Example:8443"
                        - "[::1]:8080"
                        - "[FE80::1]"
                        - 127.0.0.1:80
                """))
        #expect(
            plugin.allowedHosts == [
                "example.com", "*.internal.example.com", "localhost", "10.0.0.1", "a-b.c-d.example",
                "xn--bcher-kva.example",
                "api.example.com:8443", "*.internal.example:8443", "[::1]:8080", "[fe80::1]", "127.0.0.1:80",
            ])
    }

    @Test func envAndConfigValuesKeepTheirTextExactlyAsWritten() throws {
        let folder = try ManifestDirectory()
        let plugin = try folder.plugin(
            ManifestDirectory.plugin(
                """
                    env:
                      COUNT: 007
                      ENABLED: yes
                      RATIO: 1.10
                      HEX: 0x1F
                      QUOTED: "  padded  "
                    config:
                      version: 1.10
                      flag: true
                      url: https://example.com/a?b=c
                      multi word key: value
                      42: answer
                """))
        #expect(
            plugin.env == ["COUNT": "007", "ENABLED": "yes", "RATIO": "1.10", "HEX": "0x1F", "QUOTED": "  padded  "])
        #expect(
            plugin.config == [
                "version": "1.10", "flag": "true", "url": "https://example.com/a?b=c", "multi word key": "value",
                "42": "answer",
            ])
    }

    @Test(arguments: ["a", "0day", "echo", "echo-2_b", String(repeating: "x", count: 64)])
    func aValidNameIsLowerCaseLettersDigitsDashesAndUnderscores(name: String) throws {
        let folder = try ManifestDirectory()
        #expect(try folder.plugin("plugins: [{name: \(name), wasm: echo.wasm}]").name == name)
    }

    @Test func pluginsKeepTheOrderOfTheManifest() throws {
        let folder = try ManifestDirectory()
        let manifest = try folder.parse(
            """
            plugins:
              - {name: zulu, wasm: echo.wasm}
              - {name: alpha, wasm: echo.wasm}
              - {name: mike, wasm: echo.wasm}
            """)
        #expect(manifest.plugins.map(\.name) == ["zulu", "alpha", "mike"])
        #expect(manifest.path == folder.manifestPath)
    }

    // MARK: Paths

    @Test func aRelativeWasmPathResolvesAgainstTheManifestsDirectory() throws {
        let folder = try ManifestDirectory()
        let module = try folder.file("plugins/echo.wasm")
        let manifestPath = try folder.directory("manifests") + "/plugins.yaml"
        let manifest = try Manifest.parse("plugins: [{name: echo, wasm: ../plugins/echo.wasm}]", path: manifestPath)
        #expect(manifest.plugins.first?.wasm == module)
        #expect(manifest.path == manifestPath)
    }

    @Test(arguments: ["echo.wasm", "./echo.wasm", "sub/../echo.wasm", ".//echo.wasm"])
    func aResolvedWasmPathIsAbsoluteAndStandardized(relative: String) throws {
        let folder = try ManifestDirectory()
        try folder.directory("sub")
        #expect(try folder.plugin("plugins: [{name: echo, wasm: \"\(relative)\"}]").wasm == folder.echo)
    }

    @Test func anAbsoluteWasmPathIsKeptAsItIs() throws {
        let folder = try ManifestDirectory()
        let elsewhere = try ManifestDirectory()
        let plugin = try folder.plugin("plugins: [{name: echo, wasm: \(elsewhere.echo)}]")
        #expect(plugin.wasm == elsewhere.echo)
    }

    @Test func aRelativeManifestPathResolvesAgainstTheWorkingDirectory() throws {
        let directory = "no-such-dir-\(UUID().uuidString)"
        let error = try #require(throws: ManifestErrors.self) {
            try Manifest.parse("plugins: [{name: echo, wasm: echo.wasm}]", path: directory + "/plugins.yaml")
        }
        let cwd = FileManager.default.currentDirectoryPath
        #expect(error.problems.map(\.message) == ["file not found: \(cwd)/\(directory)/echo.wasm"])
        #expect(error.problems.map(\.file) == [directory + "/plugins.yaml"])
    }

    @Test func aRelativeFilesystemHostResolvesAgainstTheManifestsDirectory() throws {
        let folder = try ManifestDirectory()
        let shared = try folder.directory("shared")
        let manifestPath = try folder.directory("manifests") + "/plugins.yaml"
        try folder.file("manifests/echo.wasm")
        let manifest = try Manifest.parse(
            """
            plugins:
              - name: echo
                wasm: echo.wasm
                filesystem:
                  - {host: ../shared, guest: /shared}
                  - {host: ., guest: /here}
            """, path: manifestPath)
        #expect(
            manifest.plugins.first?.filesystem == [
                .init(host: shared, guest: "/shared", mode: .readOnly),
                .init(host: folder.directory + "/manifests", guest: "/here", mode: .readOnly),
            ])
    }

    // MARK: JSON and file loading

    @Test func aJSONManifestIsAccepted() throws {
        let folder = try ManifestDirectory()
        let data = try folder.directory("data")
        let manifest = try folder.parse(
            """
            {
              "plugins": [
                {
                  "name": "echo",
                  "wasm": "echo.wasm",
                  "instances": 2,
                  "timeout": "250ms",
                  "fuel": 50000000,
                  "memory": "16MiB",
                  "filesystem": [{"host": "data", "guest": "/data", "mode": "rw"}],
                  "network": {"allowed_hosts": ["API.example.com"]},
                  "env": {"LOG": "debug"},
                  "config": {"greeting": "hi"},
                  "restart": {"max": 2, "within": "30s", "backoff": "50ms..1s"},
                  "circuit": {"failures": 3, "reset": "10s"}
                },
                {"name": "second", "wasm": "echo.wasm"}
              ]
            }
            """)
        var expected = PluginSpec(name: "echo", wasm: folder.echo)
        expected.instances = 2
        expected.timeout = .milliseconds(250)
        expected.fuel = 50_000_000
        expected.memory = 16 << 20
        expected.filesystem = [.init(host: data, guest: "/data", mode: .readWrite)]
        expected.allowedHosts = ["api.example.com"]
        expected.env = ["LOG": "debug"]
        expected.config = ["greeting": "hi"]
        expected.restart = .init(max: 2, within: .seconds(30), backoffMin: .milliseconds(50), backoffMax: .seconds(1))
        expected.circuit = .init(failures: 3, reset: .seconds(10))
        #expect(manifest.plugins == [expected, PluginSpec(name: "second", wasm: folder.echo)])
    }

    @Test func aJSONManifestIndentedWithTabsIsAccepted() throws {
        let folder = try ManifestDirectory()
        let manifest = try folder.parse(
            "{\n\t\"plugins\": [\n\t\t{\"name\": \"echo\", \"wasm\": \"echo.wasm\"}\n\t]\n}\n")
        #expect(manifest.plugins.map(\.name) == ["echo"])
    }

    @Test func loadReadsTheManifestFromDisk() throws {
        let folder = try ManifestDirectory()
        try folder.file("plugins.yaml", contents: Data("plugins:\n  - name: echo\n    wasm: echo.wasm\n".utf8))
        let manifest = try Manifest.load(path: folder.manifestPath)
        #expect(manifest.path == folder.manifestPath)
        #expect(manifest.plugins == [PluginSpec(name: "echo", wasm: folder.echo)])
    }

    @Test func windowsLineEndingsAndAByteOrderMarkAreAccepted() throws {
        let folder = try ManifestDirectory()
        let manifest = try folder.parse("\u{FEFF}plugins:\r\n  - name: echo\r\n    wasm: echo.wasm\r\n")
        #expect(manifest.plugins == [PluginSpec(name: "echo", wasm: folder.echo)])
    }
}
