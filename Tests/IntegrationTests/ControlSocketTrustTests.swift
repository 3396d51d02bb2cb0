import Foundation
import Glibc
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// The CLI talks only to a supervisor of its own user (or root), and `start` never uses a socket
/// directory another user squats: Fixtures/fake-control-server.py plays the squatter, recording
/// whatever a client sends and answering a forged success.
@Suite(.serialized, .timeLimit(.minutes(5))) struct ControlSocketTrustTests {
    static let nobody: uid_t = 65534
    static let isRoot = geteuid() == 0

    /// The squatter, listening on `socket` as `uid` (through setpriv when that is not us).
    final class Squatter {
        let process = Process()
        let record: String

        init(socket: String, record: String, uid: uid_t? = nil) throws {
            self.record = record
            let script = Fixtures.root.appendingPathComponent("Fixtures/fake-control-server.py").path
            if let uid {
                process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
                process.arguments = [
                    "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "/usr/bin/python3", script, socket, record,
                ]
            } else {
                process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
                process.arguments = [script, socket, record]
            }
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let line = output.fileHandleForReading.readData(ofLength: 10)
            guard String(decoding: line, as: UTF8.self).hasPrefix("listening") else {
                throw FixtureError("fake-control-server.py did not listen on \(socket)")
            }
        }

        deinit {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        /// What clients sent it.
        var received: Data { (try? Data(contentsOf: URL(fileURLWithPath: record))) ?? Data() }
    }

    /// A temporary directory that uid 65534 may traverse (so that a squatter can reach its part).
    func makeRuntimeDirectory() throws -> URL {
        let runtime = try RunningSupervisor.makeTemporaryDirectory()
        chmod(runtime.path, 0o755)
        return runtime
    }

    /// `<runtime>/plugvisor` as a squatter leaves it: mode 0777, owned by uid 65534 when we are
    /// root (chown needs root), else by us: writable by others either way.
    func squat(_ runtime: URL) throws -> (directory: String, expected: String) {
        let directory = runtime.appendingPathComponent("plugvisor").path
        guard mkdir(directory, 0o777) == 0, chmod(directory, 0o777) == 0 else {
            throw FixtureError("mkdir \(directory)")
        }
        if Self.isRoot {
            guard chown(directory, Self.nobody, gid_t(Self.nobody)) == 0 else {
                throw FixtureError("chown \(directory)")
            }
            return (directory, "belongs to uid 65534")
        }
        return (directory, "is writable by other users (mode 0777)")
    }

    @Test func aSquattedSocketDirectoryGetsNothingFromTheCLI() throws {
        let runtime = try makeRuntimeDirectory()
        defer { try? FileManager.default.removeItem(at: runtime) }
        let (directory, expected) = try squat(runtime)
        let squatter = try Squatter(
            socket: directory + "/control.sock", record: directory + "/received",
            uid: Self.isRoot ? Self.nobody : nil)

        let call = ProcessRunner.run(
            [try Fixtures.binary("plugvisor"), "call", "echo", "-p", "card=4111111111111111"],
            environment: ["XDG_RUNTIME_DIR": runtime.path])
        #expect(call.status == 2, "the forged answer was believed: \(call.stdout)")
        #expect(call.error?.code == .untrustedSocket, "\(call.stderr)")
        #expect(call.error?.message.contains(directory) == true)
        #expect(call.error?.message.contains(expected) == true, "\(call.stderr)")
        #expect(call.error?.message.contains("nothing was sent") == true)
        #expect(call.stdout.isEmpty)

        let status = ProcessRunner.run(
            [try Fixtures.binary("plugvisor"), "status", "--control", directory + "/control.sock"])
        #expect(status.error?.code == .untrustedSocket, "\(status.stderr)")
        #expect(squatter.received.isEmpty, "the squatter received \(squatter.received.count) bytes")
    }

    @Test func startRefusesASquattedSocketDirectoryClearly() throws {
        let runtime = try makeRuntimeDirectory()
        defer { try? FileManager.default.removeItem(at: runtime) }
        let (directory, expected) = try squat(runtime)
        let manifest = runtime.appendingPathComponent("m.yaml").path
        try "plugins: [{name: echo, wasm: \(try Fixtures.plugin("echo"))}]".write(
            toFile: manifest, atomically: true, encoding: .utf8)

        let start = ProcessRunner.run(
            [try Fixtures.binary("plugvisor"), "start", manifest],
            environment: ["XDG_RUNTIME_DIR": runtime.path, "PATH": "/usr/bin:/bin"])
        #expect(start.status == 1)
        #expect(start.stderr.contains("refusing to listen: control socket directory \(directory) "), "\(start.stderr)")
        #expect(start.stderr.contains(expected), "\(start.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/control.sock"))
    }

    @Test(.enabled(if: isRoot, "needs root: a listener of another uid, and chown"))
    func aListenerOfAnotherUserIsRefusedByItsPeerCredentials() throws {
        let runtime = try makeRuntimeDirectory()
        defer { try? FileManager.default.removeItem(at: runtime) }
        // The squatter binds in a directory of its own; its socket is then moved into ours and
        // given to us, so that only SO_PEERCRED can tell who listens.
        let staging = runtime.appendingPathComponent("staging").path
        let ours = runtime.appendingPathComponent("plugvisor").path
        guard mkdir(staging, 0o700) == 0, chown(staging, Self.nobody, gid_t(Self.nobody)) == 0, mkdir(ours, 0o700) == 0
        else {
            throw FixtureError("cannot prepare \(runtime.path)")
        }
        let squatter = try Squatter(socket: staging + "/control.sock", record: staging + "/received", uid: Self.nobody)
        let socket = ours + "/control.sock"
        guard rename(staging + "/control.sock", socket) == 0, chown(socket, 0, 0) == 0 else {
            throw FixtureError("cannot move the squatter's socket")
        }

        let call = ProcessRunner.run([
            try Fixtures.binary("plugvisor"), "call", "echo", "-p", "card=4111", "--control", socket,
        ])
        #expect(call.status == 2, "the forged answer was believed: \(call.stdout)")
        #expect(call.error?.code == .untrustedSocket, "\(call.stderr)")
        #expect(
            call.error?.message.contains("the process listening on \(socket) runs as uid 65534") == true,
            "\(call.stderr)")
        #expect(squatter.received.isEmpty, "the squatter received \(squatter.received.count) bytes")
    }
}
