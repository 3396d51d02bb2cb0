import Foundation
import PlugvisorManifest
import Testing

/// A private temporary directory standing in for the directory of a manifest: it holds a dummy
/// `echo.wasm` (the loader only checks that a module exists, never its bytes), and manifest text
/// is parsed as if it were `plugins.yaml` in it. Removed when the test lets go of it.
final class ManifestDirectory {
    /// Absolute and already standardized, as the loader's resolved paths are.
    let directory: String
    var manifestPath: String { directory + "/plugins.yaml" }
    /// The dummy module every folder starts with.
    var echo: String { directory + "/echo.wasm" }

    init() throws {
        let base = (NSTemporaryDirectory() as NSString).standardizingPath
        directory = base + "/plugvisor-manifest-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try file("echo.wasm")
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Creates a file (and its parent directories) at `relative`, returning its absolute path.
    @discardableResult
    func file(
        _ relative: String, contents: Data = Data([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00])
    ) throws -> String {
        let path = directory + "/" + relative
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try contents.write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Creates a directory at `relative`, returning its absolute path.
    @discardableResult
    func directory(_ relative: String) throws -> String {
        let path = directory + "/" + relative
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func parse(_ text: String) throws(ManifestErrors) -> Manifest {
        try Manifest.parse(text, path: manifestPath)
    }

    /// The one plugin of a manifest that must be valid.
    func plugin(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> PluginSpec {
        let manifest = try parse(text)
        try #require(manifest.plugins.count == 1, sourceLocation: sourceLocation)
        return manifest.plugins[0]
    }

    /// Every problem of a manifest that must be rejected (an issue, and no problems, if it parses).
    func problems(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ManifestProblem] {
        do {
            let manifest = try parse(text)
            Issue.record(
                "expected the manifest to be rejected, but it parsed: \(manifest)", sourceLocation: sourceLocation)
            return []
        } catch {
            return error.problems
        }
    }

    /// The single problem of a manifest that must be rejected for exactly one reason.
    func problem(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ManifestProblem {
        let problems = problems(text, sourceLocation: sourceLocation)
        try #require(problems.count == 1, "expected one problem, got: \(problems)", sourceLocation: sourceLocation)
        return problems[0]
    }

    /// The single problem of a one-plugin manifest whose extra lines (indented as plugin fields)
    /// follow `name: probe` and `wasm: echo.wasm`: the first extra line is line 4.
    func problem(inPlugin fields: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ManifestProblem {
        try problem(Self.plugin(fields), sourceLocation: sourceLocation)
    }

    /// A one-plugin manifest with `fields` (already indented by four spaces) from line 4 on.
    static func plugin(_ fields: String) -> String {
        """
        plugins:
          - name: probe
            wasm: echo.wasm

        """ + fields + "\n"
    }
}
