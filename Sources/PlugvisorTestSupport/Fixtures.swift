import Foundation

/// Finds the repository's fixtures and built binaries for tests, building the guest plugins
/// from source (once per test process) with `scripts/build-fixtures.sh`.
public enum Fixtures {
    /// The repository root, from this file's location.
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static let pluginsDirectory = root.appendingPathComponent("Fixtures/plugins")
    public static let manifestsDirectory = root.appendingPathComponent("Fixtures/manifests")
    /// Real Extism plugins and Extism's kernel, beside the checkout (`../shared/extism`, as in
    /// CI): test data, never copied into the repository.
    public static let extismDirectory = root.deletingLastPathComponent().appendingPathComponent("shared/extism")

    private static let buildResult: Result<Void, FixtureError> = {
        let script = root.appendingPathComponent("scripts/build-fixtures.sh").path
        let result = ProcessRunner.run(["/bin/bash", script])
        if result.status != 0 {
            return .failure(FixtureError("scripts/build-fixtures.sh failed (\(result.status)): \(result.stderr)"))
        }
        return .success(())
    }()

    /// Path of a built plugin, e.g. `plugin("echo")` → `.../Fixtures/plugins/echo.wasm`.
    public static func plugin(_ name: String) throws -> String {
        try buildResult.get()
        let path = pluginsDirectory.appendingPathComponent("\(name).wasm").path
        guard FileManager.default.fileExists(atPath: path) else { throw FixtureError("no fixture plugin \(path)") }
        return path
    }

    public static func pluginBytes(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: try plugin(name))))
    }

    /// The directory holding `plugvisor` and `plugvisor-worker`: beside the test bundle.
    public static let binDirectory: URL = {
        let exe =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The xctest bundle on Linux is a file beside the products; be robust to a nested layout.
        while directory.path != "/"
            && !FileManager.default.fileExists(atPath: directory.appendingPathComponent("plugvisor").path)
        {
            directory.deleteLastPathComponent()
        }
        return directory
    }()

    public static func binary(_ name: String) throws -> String {
        let path = binDirectory.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw FixtureError("\(name) is not built next to the tests; run `swift build` first")
        }
        return path
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
