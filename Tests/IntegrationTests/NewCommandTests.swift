import Foundation
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// `plugvisor new`: each language's folder builds with its own build.sh, and its manifest runs
/// the plugin under a real supervisor.
@Suite(.serialized, .timeLimit(.minutes(15))) struct NewCommandTests {
    func plugvisor(_ arguments: String...) throws -> ProcessRunner.Output {
        ProcessRunner.run([try Fixtures.binary("plugvisor")] + arguments)
    }

    /// The kit each language's folder carries, as kits/ has it. A Swift plugin carries none:
    /// it is built from its source by plugvisor, with the kit compiled in.
    static let kits = ["c": "kits/c/plugvisor.h", "rust": "kits/rust/plugvisor.rs"]

    @Test(arguments: ["c", "swift", "wat", "rust"])
    func aNewPluginBuildsAndAnswers(language: String) throws {
        let workspace = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: workspace) }
        let folder = workspace.appendingPathComponent("my plugin")
        let name = "hello-\(language)"
        let created = try plugvisor("new", name, "--lang", language, "--directory", folder.path)
        #expect(created.status == 0, "\(created.stderr)")
        if let kit = Self.kits[language] {
            let carried = try Data(
                contentsOf: folder.appendingPathComponent(URL(fileURLWithPath: kit).lastPathComponent))
            #expect(
                carried == (try Data(contentsOf: Fixtures.root.appendingPathComponent(kit))),
                "\(kit) as in the repository")
        }

        let buildScript = folder.appendingPathComponent("build.sh").path
        if language == "swift" {
            #expect(!FileManager.default.fileExists(atPath: buildScript), "the source form needs no build script")
            #expect(
                try String(contentsOf: folder.appendingPathComponent("plugin.yaml"), encoding: .utf8).contains(
                    "source: plugin.swift"))
        } else {
            let build = ProcessRunner.run([buildScript])
            #expect(build.status == 0, "\(build.stdout) \(build.stderr)")
            #expect(build.stdout.contains("built \(name).wasm"))
        }

        let supervisor = try RunningSupervisor(
            manifestFile: folder.appendingPathComponent("plugin.yaml").path,
            arguments: ["--cache-dir", workspace.appendingPathComponent("cache").path])
        let hello = supervisor.call(name, "-p", "name=Ada")
        #expect(hello.status == 0, "\(hello.stdout) \(hello.stderr) \(supervisor.log)")
        #expect(hello.json?["data"]?["message"] == "Hello, Ada!")
        let nameless = supervisor.call(name)
        #expect(nameless.json == ["success": false, "error": "pass a \"name\" parameter"])
        // The template declares its name and version in one line; status shows the version.
        #expect(try supervisor.plugin(name).version == "1.0.0")
        let source = try String(
            contentsOf: folder.appendingPathComponent("plugin.\(language == "rust" ? "rs" : language)"), encoding: .utf8
        )
        #expect(
            source.contains(#""\#(name)""#) || source.contains(#"\"\#(name)\""#),
            "the meta carries the plugin's own name")
        #expect(!source.contains("greeter"), "\(source)")
    }

    @Test func newRefusesABadNameOrAFolderInUseAndSaysWhy() throws {
        let workspace = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: workspace) }
        let fresh = workspace.appendingPathComponent("fresh").path
        let badName = try plugvisor("new", "Hello World", "--lang", "c", "--directory", fresh)
        #expect(badName.status != 0)
        #expect(badName.stderr.contains("'Hello World' is not a valid plugin name: lower-case letters, digits"))
        #expect(!FileManager.default.fileExists(atPath: fresh))

        let used = workspace.appendingPathComponent("used")
        try FileManager.default.createDirectory(at: used, withIntermediateDirectories: false)
        try Data("mine".utf8).write(to: used.appendingPathComponent("notes.txt"))
        let inUse = try plugvisor("new", "hello", "--lang", "c", "--directory", used.path)
        #expect(inUse.status != 0)
        #expect(inUse.stderr.contains("\(used.path) already exists and is not empty"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: used.path) == ["notes.txt"])

        let file = workspace.appendingPathComponent("file").path
        _ = FileManager.default.createFile(atPath: file, contents: Data())
        let onFile = try plugvisor("new", "hello", "--lang", "wat", "--directory", file)
        #expect(onFile.stderr.contains("\(file) exists and is not a directory"))

        let language = try plugvisor("new", "hello", "--lang", "go", "--directory", fresh)
        #expect(language.status != 0)
        #expect(language.stderr.contains("'c', 'swift', 'wat' or 'rust'"))

        let empty = workspace.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: false)
        let intoEmpty = try plugvisor("new", "hello", "--lang", "wat", "--directory", empty.path)
        #expect(intoEmpty.status == 0, "an empty folder is fine: \(intoEmpty.stderr)")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: empty.path).sorted()
                == ["README.md", "build.sh", "plugin.wat", "plugin.yaml"])
    }
}
