import Foundation
import PlugvisorManifest
import Testing

/// The committed manifests in `Fixtures/manifests`, found from this file's own path. Those that
/// load name the modules `Fixtures/plugins/echo.wasm` and `json-transformer.wasm`, which
/// `scripts/build-fixtures.sh` builds.
enum FixtureManifests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // PlugvisorManifestTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()
    static let directory = repository.appendingPathComponent("Fixtures/manifests").standardizedFileURL.path
    static let plugins = repository.appendingPathComponent("Fixtures/plugins").standardizedFileURL.path

    static var modulesAreBuilt: Bool {
        ["echo.wasm", "json-transformer.wasm"].allSatisfy { FileManager.default.fileExists(atPath: plugins + "/" + $0) }
    }

    static func path(_ name: String) -> String { directory + "/" + name }

    static func load(_ name: String) throws(ManifestErrors) -> Manifest { try Manifest.load(path: path(name)) }

    /// Every problem of a fixture that must be rejected (an issue, and no problems, if it loads).
    static func problems(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ManifestProblem] {
        do {
            let manifest = try load(name)
            Issue.record("expected \(name) to be rejected, but it loaded: \(manifest)", sourceLocation: sourceLocation)
            return []
        } catch {
            return error.problems
        }
    }

    static var all: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }
}
