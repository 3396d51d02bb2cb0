import Foundation
import Glibc
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// Plugins given as Swift sources (`source:`): built by the toolchain on PATH in a sandboxed
/// worker, cached, reported with the compiler's diagnostics, reloaded on an edit.
@Suite(.timeLimit(.minutes(5))) struct SwiftSourceTests {
    static let kitGreeter = Fixtures.root.appendingPathComponent("kits/swift/greeter.swift")

    /// A folder with a manifest, the plugin's sources and a cache of its own.
    final class Project {
        let directory: URL
        var cache: String { directory.appendingPathComponent("cache").path }
        var manifest: String { directory.appendingPathComponent("plugins.yaml").path }

        init(manifest: String, files: [String: String]) throws {
            directory = try RunningSupervisor.makeTemporaryDirectory()
            chmod(directory.path, 0o755)
            try write("plugins.yaml", manifest)
            for (name, text) in files { try write(name, text) }
        }

        deinit { try? FileManager.default.removeItem(at: directory) }

        func write(_ relative: String, _ text: String) throws {
            let url = directory.appendingPathComponent(relative)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }

        func start() throws -> RunningSupervisor {
            try RunningSupervisor(manifestFile: manifest, arguments: ["--cache-dir", cache])
        }

        /// `plugvisor validate`, under strace when `traced`, which then also answers the
        /// programs it ran (as far as strace can read them) and how many build steps it
        /// started: a compiler or linker runs only in a worker started as `plugvisor-worker
        /// compile`, which execs it once locked down (strace, as an ordinary user, can no longer
        /// read that exec's path then, but it sees the worker start).
        func validate(
            traced: Bool = false, environment: [String: String] = [:]
        ) throws -> (output: ProcessRunner.Output, programs: [String], buildSteps: Int) {
            let plugvisor = try Fixtures.binary("plugvisor")
            let trace = directory.appendingPathComponent("validate.trace").path
            let command = [plugvisor, "validate", manifest, "--cache-dir", cache]
            let output = ProcessRunner.run(
                traced ? ["/usr/bin/strace", "-f", "-qq", "-e", "trace=execve", "-o", trace] + command : command,
                environment: ProcessInfo.processInfo.environment.merging(environment) { $1 })
            let lines = (try? String(contentsOfFile: trace, encoding: .utf8)) ?? ""
            let execs = lines.split(separator: "\n").filter { $0.contains("execve(") && !$0.contains("= -1 ") }
            let programs = execs.compactMap { line -> String? in
                guard let start = line.range(of: "execve(\"") else { return nil }
                return String(line[start.upperBound...].prefix { $0 != "\"" })
            }
            let buildSteps = execs.filter { $0.contains("plugvisor-worker") && $0.contains("\"compile\"]") }.count
            return (output, programs, buildSteps)
        }
    }

    static func greeterManifest(_ source: String) -> String {
        "plugins:\n  - name: greeter\n    source: \(source)\n    config: {greeting: Hello}\n"
    }

    @Test func aPluginFromSourceAnswersAndIsCachedSoThatNoCompilerRunsAgain() throws {
        let project = try Project(
            manifest: Self.greeterManifest("plugins/greeter.swift"),
            files: ["plugins/greeter.swift": try String(contentsOf: Self.kitGreeter, encoding: .utf8)])
        let supervisor = try project.start()
        let status = try supervisor.plugin("greeter")
        #expect(status.state == .ready, "\(supervisor.log)")
        #expect(status.source == "plugins/greeter.swift")
        let module = try #require(status.module)
        #expect(module.hasPrefix(project.cache + "/swift/") && module.hasSuffix(".wasm"))
        #expect(supervisor.log.contains("built from source"))
        #expect(
            supervisor.cli(["status"]).stdout.contains("greeter: built from plugins/greeter.swift, serving \(module)"))
        let answer = supervisor.call("greeter", "-p", "name=Ada")
        #expect(answer.status == 0 && answer.json?["data"]?["message"] == "Hello, Ada!", "\(answer.stderr)")
        #expect(supervisor.stop().status == 0)

        // The same sources again: the module comes from the cache, and no compiler runs.
        let cached = try project.validate(traced: true)
        #expect(cached.output.status == 0, "\(cached.output.stdout)\(cached.output.stderr)")
        #expect(!cached.programs.isEmpty, "strace saw plugvisor itself run")
        #expect(cached.buildSteps == 0, "\(cached.programs)")
        #expect(
            !cached.programs.contains { $0.hasSuffix("/swift-frontend") || $0.hasSuffix("/wasm-ld") },
            "\(cached.programs)")
        let again = try project.start()
        #expect(try again.plugin("greeter").module == module)
        #expect(again.log.contains("module from the cache") && !again.log.contains("built from source"))

        // An edit is another module: the compiler runs (and strace sees it).
        try project.write(
            "plugins/greeter.swift",
            try String(contentsOf: Self.kitGreeter, encoding: .utf8).replacingOccurrences(of: "1.0.0", with: "1.0.1"))
        let rebuilt = try project.validate(traced: true)
        #expect(rebuilt.output.status == 0, "\(rebuilt.output.stdout)\(rebuilt.output.stderr)")
        #expect(rebuilt.buildSteps == 2, "the compiler, then the linker: \(rebuilt.programs)")
        if geteuid() == 0 {
            #expect(
                rebuilt.programs.contains { $0.hasSuffix("/swift-frontend") }
                    && rebuilt.programs.contains { $0.hasSuffix("/wasm-ld") })
        }
    }

    @Test func aCompileErrorIsALoadErrorWithItsLineRelativeToTheManifest() throws {
        let broken = """
            let plugin = Plugin(name: "broken", version: "1.0.0") { context throws(PluginError) in
                let count: Int = "three"
                return ["count": .number(Double(count))]
            }
            """
        let project = try Project(
            manifest: Self.greeterManifest("plugins/broken.swift"), files: ["plugins/broken.swift": broken])
        let validated = try project.validate()
        #expect(validated.output.status == 1)
        #expect(
            validated.output.stdout.contains("plugin greeter: plugins/broken.swift does not compile")
                && validated.output.stdout.contains(
                    "plugins/broken.swift:2:22: error: cannot convert value of type 'String'"),
            "\(validated.output.stdout)")
        #expect(!validated.output.stdout.contains("plugvisor-build-"), "the sandbox's copies are not named")

        let supervisor = try project.start()
        let status = try supervisor.plugin("greeter")
        #expect(status.state == .failed)
        #expect(status.lastError?.contains("plugins/broken.swift:2:22: error:") == true, "\(status.lastError ?? "")")
        #expect(supervisor.log.contains("plugins/broken.swift:2:22"))
        let table = supervisor.cli(["status"]).stdout
        #expect(
            table.contains("\n    plugins/broken.swift:2:22: error:"), "diagnostics are lines of their own: \(table)")
    }

    @Test func anEditReloadsAndAnEditThatDoesNotCompileLeavesThePreviousVersionServing() throws {
        let greeter = try String(contentsOf: Self.kitGreeter, encoding: .utf8)
        let project = try Project(
            manifest: Self.greeterManifest("plugins/greeter"), files: ["plugins/greeter/greeter.swift": greeter])
        let supervisor = try project.start()
        #expect(
            supervisor.call("greeter", "-p", "name=Ada").json?["data"]?["message"] == "Hello, Ada!", "\(supervisor.log)"
        )

        try project.write(
            "plugins/greeter/greeter.swift", greeter.replacingOccurrences(of: "\\(name)!", with: "\\(name), welcome!"))
        #expect(supervisor.eventually(timeout: .seconds(120)) { (try? supervisor.plugin("greeter").generation) == 1 })
        #expect(supervisor.call("greeter", "-p", "name=Ada").json?["data"]?["message"] == "Hello, Ada, welcome!")

        // A second file in the folder is part of the plugin; one that does not compile is refused.
        try project.write("plugins/greeter/extra.swift", "let broken: Int = \"x\"\n")
        #expect(
            supervisor.eventually(timeout: .seconds(120)) {
                (try? supervisor.plugin("greeter").lastReload)?.contains("plugins/greeter/extra.swift:1:19: error:")
                    == true
            }, "\((try? supervisor.plugin("greeter").lastReload) ?? "")")
        let status = try supervisor.plugin("greeter")
        #expect(status.state == .ready && status.generation == 1)
        #expect(supervisor.call("greeter", "-p", "name=Ada").json?["data"]?["message"] == "Hello, Ada, welcome!")
    }

    @Test func aSourceCannotLoadACompilerPluginThroughAMacro() throws {
        // The toolchain's own swiftc loads SwiftMacros from its plugin folder and compiles this;
        // plugvisor's build gives the compiler no plugin folder (nor has one in its sandbox).
        let macro = """
            @attached(member, names: named(RawValue), named(rawValue), named(init), arbitrary)
            @attached(extension, conformances: OptionSet)
            macro Flagged<RawType>() = #externalMacro(module: "SwiftMacros", type: "OptionSetMacro")

            @Flagged<UInt8>
            struct Flags {
                private enum Options: Int { case loud, quiet }
            }

            let plugin = Plugin(name: "macro", version: "1.0.0") { _ throws(PluginError) in
                ["flags": .number(Double(Flags.quiet.rawValue))]
            }
            """
        let project = try Project(manifest: Self.greeterManifest("macro.swift"), files: ["macro.swift": macro])
        let validated = try project.validate()
        #expect(validated.output.status == 1)
        #expect(
            validated.output.stdout.contains("plugin for module 'SwiftMacros' not found"), "\(validated.output.stdout)")
    }

    @Test func aLinkInASourceFolderToAFileElsewhereIsRefused() throws {
        let project = try Project(
            manifest: Self.greeterManifest("plugins"),
            files: ["plugins/greeter.swift": try String(contentsOf: Self.kitGreeter, encoding: .utf8)])
        let secret = project.directory.appendingPathComponent("secret.swift").path
        try "let secret = \"s3cr3t\"\n".write(toFile: secret, atomically: true, encoding: .utf8)
        #expect(symlink(secret, project.directory.appendingPathComponent("plugins/secret.swift").path) == 0)
        let validated = try project.validate()
        #expect(validated.output.status == 1)
        #expect(
            validated.output.stdout.contains("plugins/secret.swift is a symbolic link"), "\(validated.output.stdout)")

        // The one file a manifest names, replaced by a link since: refused too, and what it
        // points at is never quoted in a diagnostic.
        try project.write("plugins.yaml", Self.greeterManifest("single/greeter.swift"))
        try FileManager.default.createDirectory(
            at: project.directory.appendingPathComponent("single"), withIntermediateDirectories: true)
        #expect(symlink(secret, project.directory.appendingPathComponent("single/greeter.swift").path) == 0)
        let single = try project.validate()
        #expect(single.output.status == 1)
        #expect(single.output.stdout.contains("single/greeter.swift is a symbolic link"), "\(single.output.stdout)")
        #expect(!single.output.stdout.contains("s3cr3t"))
    }

    @Test func aCacheFolderOthersCanWriteIsNotTrusted() throws {
        let project = try Project(
            manifest: Self.greeterManifest("greeter.swift"),
            files: ["greeter.swift": try String(contentsOf: Self.kitGreeter, encoding: .utf8)])
        let shared = project.directory.appendingPathComponent("cache/swift").path
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        chmod(shared, 0o777)
        let validated = try project.validate()
        #expect(validated.output.status == 1)
        #expect(
            validated.output.stdout.contains("is not a folder of this user's that only it can write"),
            "\(validated.output.stdout)")
    }

    /// Pids of the processes whose command line starts with `program`.
    static func processes(running program: String) -> [String] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.filter { pid in
            guard Int(pid) != nil, let line = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else {
                return false
            }
            return String(decoding: line.prefix { $0 != 0 }, as: UTF8.self) == program
        }
    }

    /// A toolchain whose swift-frontend (and wasm-ld, and swiftc) is the probe, built with
    /// `defines`; returns the PATH that puts it first.
    static func probeToolchain(in project: Project, defines: [String]) throws -> String {
        let toolchain = project.directory.appendingPathComponent("toolchain/usr")
        for folder in ["bin", "lib/swift/embedded/wasm32-unknown-none-wasm"] {
            try FileManager.default.createDirectory(
                at: toolchain.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        let probe = toolchain.appendingPathComponent("bin/swift-frontend").path
        let built = ProcessRunner.run(
            ["/usr/bin/env", "clang", "-O1", "-o", probe]
                + [Fixtures.root.appendingPathComponent("Fixtures/build/compiler-probe.c").path]
                + defines.map { "-D" + $0 })
        try #require(built.status == 0, "\(built.stderr)")
        for tool in ["swiftc", "wasm-ld"] {
            #expect(symlink(probe, toolchain.appendingPathComponent("bin/\(tool)").path) == 0)
        }
        chmod(project.directory.appendingPathComponent("toolchain").path, 0o755)
        return toolchain.appendingPathComponent("bin").path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "")
    }

    /// What a compiler taken over by a hostile source could reach: a probe in the compiler's
    /// place tries to read beside the sources, write outside its output folder, connect to the
    /// host, run a shell and leave a process behind.
    @Test func theCompilerReachesNothingButItsToolchainAndItsOutputFolder() throws {
        let project = try Project(
            manifest: Self.greeterManifest("plugins/greeter.swift"),
            files: ["plugins/greeter.swift": "// greeter\n", "plugins/secret.txt": "s3cr3t\n"])
        let listener = try LoopbackListener()
        let outside = project.directory.appendingPathComponent("escaped").path
        let path = try Self.probeToolchain(
            in: project,
            defines: [
                "PROBE_SECRET=\"\(project.directory.path)/plugins/secret.txt\"",
                "PROBE_SOURCE=\"\(project.directory.path)/plugins/greeter.swift\"",
                "PROBE_OUTSIDE=\"\(outside)\"", "PROBE_PORT=\(listener.port)",
            ])
        let temporary = project.directory.appendingPathComponent("tmp").path
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        let validated = try project.validate(environment: ["PATH": path, "TMPDIR": temporary])
        let report = validated.output.stdout
        #expect(validated.output.status == 1)
        #expect(report.contains("probe: write in its output folder: ok"), "the probe ran in the sandbox: \(report)")
        // It left a folder closed to everyone in its output: the build folder went anyway.
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary).isEmpty)
        for attempt in [
            "read a file beside the sources", "read the original source", "read /etc/passwd",
            "write outside its output folder", "connect to the host's loopback", "run /bin/sh",
        ] {
            #expect(report.contains("probe: \(attempt): refused"), "\(attempt): \(report)")
        }
        #expect(!FileManager.default.fileExists(atPath: outside))
        #expect(listener.acceptedAny() == false)
        #expect(report.contains("probe: child "), "\(report)")
        let forks = report.components(separatedBy: "probe: forks ").dropFirst().first.flatMap {
            Int($0.prefix { $0.isNumber })
        }
        if geteuid() == 0 {
            // Its own uid, so RLIMIT_NPROC counts its processes alone.
            #expect(forks.map { $0 < 256 } == true, "\(report)")
        }
        // Its pid is the sandbox's own; what shows it gone is that no process runs the probe.
        let probe = project.directory.appendingPathComponent("toolchain/usr/bin/swift-frontend").path
        #expect(
            pollUntil(timeout: .seconds(5)) { Self.processes(running: probe).isEmpty },
            "the probe's child outlived its step")
    }

    /// A linker taken over leaves a link where the module should be, to a file the sandbox
    /// cannot reach: the supervisor must not follow it (and cache what it points to).
    @Test func aModuleThatTheLinkerLeftAsALinkIsRefused() throws {
        let project = try Project(
            manifest: Self.greeterManifest("greeter.swift"), files: ["greeter.swift": "// greeter\n"])
        let secret = project.directory.appendingPathComponent("secret").path
        try "\0asm s3cr3t".write(toFile: secret, atomically: true, encoding: .utf8)
        let path = try Self.probeToolchain(
            in: project,
            defines: [
                "PROBE_LINK_TO_SECRET", "PROBE_SECRET=\"\(secret)\"", "PROBE_SOURCE=\"\"", "PROBE_OUTSIDE=\"\"",
                "PROBE_PORT=0",
            ])
        let validated = try project.validate(environment: ["PATH": path])
        #expect(validated.output.status == 1)
        #expect(
            validated.output.stdout.contains("plugin.wasm is a symbolic link, not a file"), "\(validated.output.stdout)"
        )
        let cached = (try? FileManager.default.contentsOfDirectory(atPath: project.cache + "/swift")) ?? []
        #expect(cached.filter { $0.hasSuffix(".wasm") }.isEmpty, "nothing was cached: \(cached)")
    }
}

/// A TCP listener on 127.0.0.1 that only counts whether anyone connected.
final class LoopbackListener {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.descriptor = descriptor
        port = try bindToLoopback(descriptor)
        guard listen(descriptor, 8) == 0 else { throw FixtureError("listen: \(String(cString: strerror(errno)))") }
        _ = fcntl(descriptor, F_SETFL, O_NONBLOCK)
    }

    deinit { close(descriptor) }

    func acceptedAny() -> Bool {
        let client = accept(descriptor, nil, nil)
        if client >= 0 { close(client) }
        return client >= 0
    }
}
