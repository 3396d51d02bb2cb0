import Foundation
import Glibc
import PlugvisorPosix
import PlugvisorProtocol
import PlugvisorTestSupport

/// A real `plugvisor start` process on a manifest of fixture plugins, with its own control
/// socket in a private temporary directory, driven through the real `plugvisor` CLI.
// SAFETY: the CLI helpers only read immutable state; exitStatus is written by the test thread.
final class RunningSupervisor: @unchecked Sendable {
    let directory: URL
    let controlPath: String
    let manifestPath: String
    let logPath: String
    let process: Process
    private(set) var exitStatus: Int32?

    /// Writes `manifest` (where `{{plugins}}` stands for the fixture plugins directory and
    /// `{{extism}}` for `../shared/extism`, Extism's own plugins) and starts
    /// a supervisor on it, returning once its control socket answers.
    convenience init(manifest: String, arguments: [String] = [], environment: [String: String] = [:]) throws {
        _ = try Fixtures.plugin("echo")  // builds the fixtures once
        let directory = try Self.makeTemporaryDirectory()
        let manifestPath = directory.appendingPathComponent("plugins.yaml").path
        let text = manifest.replacingOccurrences(of: "{{plugins}}", with: Fixtures.pluginsDirectory.path)
            .replacingOccurrences(of: "{{extism}}", with: Fixtures.extismDirectory.path)
        try text.write(toFile: manifestPath, atomically: true, encoding: .utf8)
        try self.init(manifestFile: manifestPath, directory: directory, arguments: arguments, environment: environment)
    }

    /// Starts a supervisor on an existing manifest file, with its control socket and log in
    /// `directory` (a new temporary one by default), which goes when this does.
    init(
        manifestFile: String, directory: URL? = nil, arguments: [String] = [], environment: [String: String] = [:]
    ) throws {
        self.directory = try directory ?? Self.makeTemporaryDirectory()
        controlPath = self.directory.appendingPathComponent("control.sock").path
        manifestPath = manifestFile
        logPath = self.directory.appendingPathComponent("supervisor.log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)

        process = Process()
        process.executableURL = URL(fileURLWithPath: try Fixtures.binary("plugvisor"))
        process.arguments = ["start", manifestPath, "--control", controlPath] + arguments
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = FileHandle.nullDevice
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        try process.run()

        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if !process.isRunning {
                process.waitUntilExit()
                exitStatus = process.terminationStatus
                throw FixtureError("plugvisor start exited with \(process.terminationStatus): \(log)")
            }
            if cli(["status", "--json"]).status == 0 { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw FixtureError("supervisor did not answer within 30s: \(log)")
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Runs the `plugvisor` CLI against this supervisor.
    func cli(_ arguments: [String], stdin: String? = nil) -> ProcessRunner.Output {
        guard let binary = try? Fixtures.binary("plugvisor") else {
            return ProcessRunner.Output(status: -1, stdout: "", stderr: "plugvisor not built")
        }
        return ProcessRunner.run([binary] + arguments + ["--control", controlPath], stdin: stdin)
    }

    func call(_ plugin: String, _ arguments: String...) -> ProcessRunner.Output {
        cli(["call", plugin] + arguments)
    }

    func status() throws -> StatusReport {
        let output = cli(["status", "--json"])
        guard output.status == 0 else { throw FixtureError("status failed: \(output.stderr)") }
        return try JSONCoding.decode(StatusReport.self, from: Array(output.stdout.utf8))
    }

    func plugin(_ name: String) throws -> PluginStatus {
        guard let plugin = try status().plugins.first(where: { $0.name == name }) else {
            throw FixtureError("no plugin \(name) in status")
        }
        return plugin
    }

    /// One request straight on the control socket (no CLI process): for load and chaos tests.
    func request(_ request: ControlRequest, timeout: Duration = .seconds(60)) throws -> ControlResponse {
        let channel = FrameChannel(descriptor: try Descriptors.connectUnix(path: controlPath), maxFrameLength: 64 << 20)
        try channel.send(request)
        return try channel.receive(ControlResponse.self, deadline: .now + timeout)
    }

    func directCall(_ plugin: String, _ parameters: [String: JSONValue] = [:]) throws -> ControlResponse {
        try request(ControlRequest(op: .call, plugin: plugin, context: ["parameters": .object(parameters)]))
    }

    func eventually(timeout: Duration = .seconds(10), _ condition: () throws -> Bool) rethrows -> Bool {
        try pollUntil(timeout: timeout, condition)
    }

    /// `plugvisor stop`, then waits for the supervisor process to exit.
    func stop() -> ProcessRunner.Output {
        let output = cli(["stop"])
        waitForExit()
        return output
    }

    func waitForExit(timeout: Duration = .seconds(30)) {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if !process.isRunning {
            process.waitUntilExit()
            exitStatus = process.terminationStatus
        }
    }

    /// An executable that runs the Python fixture `Fixtures/<script>` with `arguments` (and
    /// whatever its spawner passes), for a hostile stand-in of the broker or of a worker. The
    /// supervisor gives those an empty environment, so the interpreter's path is spelled out.
    /// The caller removes the script's directory.
    static func fakePeer(script: String, arguments: [String]) throws -> String {
        let python = ProcessRunner.run(["/usr/bin/env", "python3", "-c", "import sys; print(sys.executable)"])
        let interpreter = python.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard python.status == 0, !interpreter.isEmpty else { throw FixtureError("no python3: \(python.stderr)") }
        let directory = try makeTemporaryDirectory()
        let path = directory.appendingPathComponent(script.replacingOccurrences(of: ".py", with: "")).path
        let source = Fixtures.root.appendingPathComponent("Fixtures/\(script)").path
        let words = ([interpreter, source] + arguments).map { "'\($0)'" }.joined(separator: " ")
        try "#!/bin/sh\nexec \(words) \"$@\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    static func makeTemporaryDirectory() throws -> URL {
        var template = Array("/tmp/plugvisor-test-XXXXXX".utf8CString)
        guard let path = mkdtemp(&template) else { throw FixtureError("mkdtemp failed") }
        return URL(fileURLWithPath: String(cString: path))
    }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
func pollUntil(timeout: Duration, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return try condition()
}

/// Starts `arguments` with no descriptor of ours but stdin from /dev/null and stdout and
/// stderr to `output` (/dev/null by default), for a child that forks daemons: one that kept
/// Foundation's exit-watch socket would make `waitUntilExit` hang. With `ownProcessGroup` it
/// leads a process group of its own, which the caller can signal as a whole. The caller reaps it.
func spawnWithoutDescriptors(
    _ arguments: [String], environment: [String: String], output: String = "/dev/null", ownProcessGroup: Bool = false
) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    // glibc ignores a close of a descriptor that was closed meanwhile.
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for descriptor in open.compactMap(Int32.init) where descriptor > 2 {
        posix_spawn_file_actions_addclose(&actions, descriptor)
    }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    if ownProcessGroup {
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
    }
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
    guard spawned == 0 else { throw FixtureError("cannot run \(arguments[0]): \(String(cString: strerror(spawned)))") }
    return pid
}

/// Whether a process with this pid exists (and is not a zombie we are about to reap).
func processIsAlive(_ pid: Int32) -> Bool {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
    return !status.contains("State:\tZ")
}

extension ProcessRunner.Output {
    /// The typed error the CLI printed on stderr.
    var error: PluginError? {
        struct Envelope: Decodable { var error: PluginError }
        guard let line = stderr.split(separator: "\n").last else { return nil }
        return try? JSONCoding.decode(Envelope.self, from: Array(line.utf8)).error
    }

    var json: JSONValue? { try? JSONCoding.decode(JSONValue.self, from: Array(stdout.utf8)) }
}
