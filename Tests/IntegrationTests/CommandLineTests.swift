import Foundation
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// The CLI's contract: exit codes, error lines, validate and inspect, the control socket.
@Suite(.serialized, .timeLimit(.minutes(5))) struct CommandLineTests {
    func plugvisor(_ arguments: String...) throws -> ProcessRunner.Output {
        ProcessRunner.run([try Fixtures.binary("plugvisor")] + arguments)
    }

    @Test func exitCodesTellSuccessPluginFailureAndSupervisorError() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: echo, wasm: "{{plugins}}/echo.wasm"}
                  - {name: refuses, wasm: "{{plugins}}/refuses.wasm"}
                """)
        #expect(supervisor.call("echo").status == 0)
        let refused = supervisor.call("refuses")
        #expect(refused.status == 1)
        #expect(refused.json == ["success": false, "error": "refused on purpose"])
        #expect(refused.stderr.isEmpty)
        let unknown = supervisor.call("nope")
        #expect(unknown.status == 2)
        #expect(unknown.error?.code == .unknownPlugin)
        #expect(unknown.stdout.isEmpty)
    }

    @Test func callingWithNoSupervisorIsNotRunning() throws {
        let output = try plugvisor("call", "echo", "--control", "/tmp/plugvisor-test-nowhere/control.sock")
        #expect(output.status == 2)
        #expect(output.error?.code == .notRunning)
        #expect(output.stderr.contains("plugvisor start"))
    }

    @Test func validateReportsEveryProblemWithItsLine() throws {
        let directory = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let manifest = directory.appendingPathComponent("bad.yaml").path
        try """
        plugins:
          - name: echo
            wasm: missing.wasm
            timeout: soon
          - name: echo
            wasm: \(try Fixtures.plugin("echo"))
            colour: blue
        """.write(toFile: manifest, atomically: true, encoding: .utf8)
        let output = try plugvisor("validate", manifest)
        #expect(output.status == 1)
        #expect(output.stdout.contains("bad.yaml:3:11: plugins[0].wasm: file not found"))
        #expect(output.stdout.contains("bad.yaml:4:14: plugins[0].timeout: 'soon' is not a duration"))
        #expect(output.stdout.contains("bad.yaml:5:11: plugins[1].name: duplicate plugin name 'echo'"))
        #expect(output.stdout.contains("bad.yaml:7:5: plugins[1].colour: unknown key"))
        #expect(output.stdout.contains("4 problem(s)"))

        let start = try plugvisor("start", manifest, "--control", directory.appendingPathComponent("c.sock").path)
        #expect(start.status == 1)
        #expect(start.stderr.contains("nothing was started"))
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("c.sock").path))
    }

    @Test func sandboxPolicyPrintsEachPolicyWithItsReasons() throws {
        let worker = try plugvisor("sandbox-policy", "--names-only")
        #expect(worker.status == 0)
        let allowed = Set(worker.stdout.split(separator: "\n").map(String.init))
        #expect(allowed.contains("read") && allowed.contains("write"))
        #expect(!allowed.contains("socket") && !allowed.contains("execve") && !allowed.contains("openat"))
        let withFiles = Set(
            try plugvisor("sandbox-policy", "--filesystem", "--names-only").stdout.split(separator: "\n").map(
                String.init))
        #expect(withFiles.contains("openat"))

        let broker = try plugvisor("sandbox-policy", "--broker")
        #expect(broker.status == 0)
        let execve = try #require(
            broker.stdout.split(separator: "\n").first { $0.hasPrefix("execve ") }, "\(broker.stdout)")
        #expect(execve.count > "execve ".count + 10, "a reason follows the name: \(execve)")
        #expect(!broker.stdout.contains("\nsocket "), "the broker needs sockets")
        let both = try plugvisor("sandbox-policy", "--broker", "--filesystem")
        #expect(both.status != 0)
        #expect(both.stderr.contains("--broker has one policy"))
    }

    @Test func validateAcceptsTheDemoManifest() throws {
        _ = try Fixtures.plugin("echo")
        let output = try plugvisor("validate", Fixtures.root.appendingPathComponent("Fixtures/demo.yaml").path)
        #expect(output.status == 0, "\(output.stdout)")
        #expect(output.stdout.contains("ok, 6 plugin(s)"))
    }

    @Test func inspectDescribesAModuleAndWhatItLacks() throws {
        let good = try plugvisor("inspect", try Fixtures.plugin("hello-c"))
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.contains("ABI: plugvisor"))
        #expect(good.stdout.contains("func execute (i32, i32) -> i64"))
        #expect(good.stdout.contains("func plugvisor.config_get (i32, i32, i32, i32) -> i32"))
        #expect(good.stdout.contains("capabilities needed: config, log"))

        let broken = try plugvisor("inspect", try Fixtures.plugin("no-execute"), "--json")
        #expect(broken.status == 1)
        let report = try JSONCoding.decode(InspectReport.self, from: Array(broken.stdout.utf8))
        #expect(report.problems.contains { $0.contains("missing export: execute") })

        let legacy = try plugvisor("inspect", try Fixtures.plugin("legacy-i32"))
        #expect(legacy.stdout.contains("ABI: plugvisor-i32"))
    }

    @Test func inspectRefusesGarbageWithAClearMessage() throws {
        let directory = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let garbage = directory.appendingPathComponent("garbage.wasm").path
        try Data("MZ this is not wasm".utf8).write(to: URL(fileURLWithPath: garbage))
        let output = try plugvisor("inspect", garbage)
        #expect(output.status == 1)
        #expect(output.stdout.contains("not a valid WebAssembly module"))
    }

    @Test func theDefaultControlSocketIsPrivate() throws {
        let runtime = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: runtime) }
        let manifest = runtime.appendingPathComponent("m.yaml").path
        try "plugins: [{name: echo, wasm: \(try Fixtures.plugin("echo"))}]".write(
            toFile: manifest, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Fixtures.binary("plugvisor"))
        process.arguments = ["start", manifest]
        process.environment = ["XDG_RUNTIME_DIR": runtime.path, "PATH": "/usr/bin:/bin"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        let socket = runtime.appendingPathComponent("plugvisor/control.sock").path
        let client = {
            ProcessRunner.run(
                [try! Fixtures.binary("plugvisor"), "status"], environment: ["XDG_RUNTIME_DIR": runtime.path])
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while client().status != 0 && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(client().status == 0)
        var info = stat()
        #expect(stat(socket, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(stat(runtime.appendingPathComponent("plugvisor").path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o700)

        // A second supervisor on the same socket is refused and leaves the first one alone.
        let second = ProcessRunner.run(
            [try Fixtures.binary("plugvisor"), "start", manifest],
            environment: ["XDG_RUNTIME_DIR": runtime.path])
        #expect(second.status == 1)
        #expect(second.stderr.contains("already listening"))
        #expect(client().status == 0)
    }
}
