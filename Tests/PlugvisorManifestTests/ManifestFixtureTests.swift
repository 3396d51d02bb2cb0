import Foundation
import PlugvisorManifest
import Testing

/// The committed manifests in `Fixtures/manifests`, loaded from disk as `plugvisor` would.
@Suite(
    .enabled(if: FixtureManifests.modulesAreBuilt, "Fixtures/plugins/*.wasm are missing: run scripts/build-fixtures.sh")
)
struct ManifestFixtureTests {
    let plugins = FixtureManifests.plugins

    @Test func twoPluginsLoadWithTheirModulesResolvedNextToTheManifests() throws {
        let manifest = try FixtureManifests.load("two-plugins.yaml")
        var transformer = PluginSpec(name: "json-transformer", wasm: plugins + "/json-transformer.wasm")
        transformer.timeout = .seconds(2)
        #expect(manifest.plugins == [PluginSpec(name: "echo", wasm: plugins + "/echo.wasm"), transformer])
        #expect(manifest.path == FixtureManifests.path("two-plugins.yaml"))
    }

    @Test func theJSONFormOfAManifestLoadsToTheSamePlugins() throws {
        let yaml = try FixtureManifests.load("two-plugins.yaml")
        let json = try FixtureManifests.load("two-plugins.json")
        #expect(json.plugins == yaml.plugins)
    }

    @Test func everyFieldLoadsToTheValuesItStates() throws {
        let manifest = try FixtureManifests.load("every-field.yaml")
        let plugin = try #require(manifest.plugins.first)
        #expect(manifest.plugins.count == 1)
        #expect(plugin.name == "json-transformer")
        #expect(plugin.wasm == plugins + "/json-transformer.wasm")
        #expect(plugin.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(plugin.abi == .wasiCommand)
        #expect(plugin.instances == 4)
        #expect(plugin.maxQueue == 256)
        #expect(plugin.timeout == .milliseconds(250))
        #expect(plugin.fuel == 50_000_000)
        #expect(plugin.memory == 33_554_432)
        #expect(
            plugin.filesystem == [
                .init(host: plugins, guest: "/modules", mode: .readOnly),
                .init(host: FixtureManifests.directory, guest: "/manifests", mode: .readWrite),
            ])
        #expect(plugin.allowedHosts == ["api.example.com", "*.cdn.example.net"])
        #expect(plugin.env == ["LOG_LEVEL": "debug", "RETRIES": "3"])
        #expect(plugin.config == ["greeting": "Bonjour", "version": "1.10"])
        #expect(
            plugin.restart
                == .init(max: 3, within: .seconds(120), backoffMin: .milliseconds(200), backoffMax: .seconds(10)))
        #expect(plugin.circuit == .init(failures: 7, reset: .milliseconds(1500)))
    }

    @Test func aDuplicateNameIsReportedOnLine9PointingBackToLine3() throws {
        let problems = FixtureManifests.problems("duplicate-name.invalid.yaml")
        #expect(
            problems.map(\.description) == [
                FixtureManifests.path("duplicate-name.invalid.yaml")
                    + ":9:11: plugins[2].name: duplicate plugin name 'echo' (first used on line 3)"
            ])
    }

    @Test func unknownKeysAreReportedAtEveryLevel() throws {
        let problems = FixtureManifests.problems("unknown-field.invalid.yaml")
        #expect(problems.map(\.line) == [2, 6, 8, 11, 13, 17])
        #expect(
            problems.map(\.keyPath) == [
                "version",
                "plugins[0].timout",
                "plugins[0].restart.retries",
                "plugins[0].circuit.cooldown",
                "plugins[0].network.allowed_host",
                "plugins[0].filesystem[0].readonly",
            ])
        #expect(problems.allSatisfy { $0.message.hasPrefix("unknown key") })
    }

    @Test func everyBadValueIsReportedOnItsLineWithItsReason() throws {
        let problems = FixtureManifests.problems("bad-values.invalid.yaml")
        let expected: [(Int, String, String)] = [
            (3, "plugins[0].name", "'Echo' is not a valid name"),
            (5, "plugins[0].sha256", "must be 64 hexadecimal digits"),
            (6, "plugins[0].abi", "'wasi' is not an ABI (plugvisor, wasi-command, extism)"),
            (7, "plugins[0].instances", "'0' is not a whole number between 1 and 64"),
            (8, "plugins[0].max_queue", "'lots' is not a whole number between 0 and 100000"),
            (9, "plugins[0].timeout", "'5 seconds' is not a duration"),
            (10, "plugins[0].fuel", "'1_000_' is not a whole number"),
            (11, "plugins[0].memory", "'32 megabytes' is not a memory size between 64KiB and 4GiB"),
            (14, "plugins[0].filesystem[0].guest", "must be an absolute path without '..'"),
            (15, "plugins[0].filesystem[0].mode", "'rwx' is not a mode (ro, rw)"),
            (
                17, "plugins[0].network.allowed_hosts[0]",
                "'https://example.com' is not a host name or '*.suffix' pattern"
            ),
            (19, "plugins[0].env.log-level", "'log-level' is not an environment variable name"),
            (21, "plugins[0].restart.backoff", "'10s..1s' is not a range MIN..MAX of durations"),
            (23, "plugins[0].circuit.reset", "'never' is not a duration"),
        ]
        #expect(problems.map(\.line) == expected.map(\.0))
        #expect(problems.map(\.keyPath) == expected.map(\.1))
        for (problem, (_, _, message)) in zip(problems, expected) {
            #expect(problem.message.contains(message), "\(problem)")
        }
    }

    @Test func aMissingModuleIsReportedWithItsAbsolutePath() throws {
        let problems = FixtureManifests.problems("missing-file.invalid.yaml")
        #expect(
            problems.map(\.description) == [
                FixtureManifests.path("missing-file.invalid.yaml")
                    + ":4:11: plugins[0].wasm: file not found: \(plugins)/ghost.wasm"
            ])
    }

    @Test func aSyntaxErrorIsReportedOnTheMisindentedLine() throws {
        let problems = FixtureManifests.problems("syntax-error.invalid.yaml")
        try #require(problems.count == 1)
        #expect(problems[0].line == 6)
        #expect(problems[0].keyPath == nil)
        #expect(problems[0].message.hasPrefix("YAML syntax: "))
    }

    @Test func everyInvalidFixtureIsRejectedWithLocatedProblemsAndEveryOtherLoads() throws {
        let names = FixtureManifests.all
        try #require(!names.isEmpty, "no fixtures in \(FixtureManifests.directory)")
        for name in names {
            #expect(
                name.wholeMatch(of: /[a-z0-9]+(-[a-z0-9]+)*(\.invalid)?\.(yaml|json)/) != nil,
                "\(name) is not kebab-case .yaml/.json")
            do {
                let manifest = try FixtureManifests.load(name)
                #expect(!name.contains(".invalid."), "\(name) loaded: \(manifest)")
                #expect(!manifest.plugins.isEmpty)
            } catch {
                #expect(name.contains(".invalid."), "\(name): \(error)")
                #expect(!error.problems.isEmpty)
                #expect(
                    error.problems.allSatisfy { $0.line != nil && $0.file == FixtureManifests.path(name) }, "\(error)")
            }
        }
    }
}
