import Foundation
import Glibc
import PlugvisorTestSupport
import Testing

/// `plugvisor start` under a service manager: the notify protocol spoken to a datagram socket
/// of the test's own (what systemd listens on), and the shipped unit checked by systemd.
@Suite(.timeLimit(.minutes(2))) struct ServiceManagerTests {
    /// A bound datagram socket that collects what is sent to it.
    /// A service manager's end of the notify protocol: a datagram socket in a folder of its
    /// own, which goes with it.
    final class NotifyListener {
        let directory: URL
        let path: String
        let descriptor: Int32

        init() throws {
            directory = try RunningSupervisor.makeTemporaryDirectory()
            path = directory.appendingPathComponent("notify.sock").path
            descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard bound == 0 else { throw FixtureError("bind \(path): \(String(cString: strerror(errno)))") }
        }

        deinit {
            close(descriptor)
            try? FileManager.default.removeItem(at: directory)
        }

        /// The datagrams that arrive within `timeout` until one satisfies `condition`.
        func receive(timeout: Duration = .seconds(15), until condition: (String) -> Bool) -> [String] {
            let deadline = ContinuousClock.now + timeout
            var messages: [String] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while ContinuousClock.now < deadline {
                var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                guard poll(&ready, 1, 100) > 0 else { continue }
                let count = recv(descriptor, &buffer, buffer.count, 0)
                guard count > 0 else { continue }
                let message = String(decoding: buffer[..<count], as: UTF8.self)
                messages.append(message)
                if condition(message) { break }
            }
            return messages
        }
    }

    static let manifest = """
        plugins:
          - {name: echo, wasm: "{{plugins}}/echo.wasm"}
          - {name: greeter, wasm: "{{plugins}}/greeter-wat.wasm"}
        """

    /// A supervisor on the manifest with NOTIFY_SOCKET pointing at a listener, and `environment`.
    func notifying(_ environment: [String: String]) throws -> (RunningSupervisor, NotifyListener) {
        let listener = try NotifyListener()
        let supervisor = try RunningSupervisor(
            manifest: Self.manifest, environment: environment.merging(["NOTIFY_SOCKET": listener.path]) { $1 })
        return (supervisor, listener)
    }

    @Test func readyStatusWatchdogReloadingAndStoppingReachTheManager() throws {
        let (supervisor, listener) = try notifying(["WATCHDOG_USEC": "400000"])

        let started = listener.receive { $0.contains("READY=1") }
        #expect(started.last?.split(separator: "\n").contains("STATUS=2 of 2 plugins serving") == true, "\(started)")
        // Every plugin answers by the time READY=1 is sent.
        #expect(supervisor.call("echo").status == 0)

        // The watchdog at half of WATCHDOG_USEC: about five pings a second.
        let pings = listener.receive(timeout: .seconds(1)) { _ in false }.filter { $0.contains("WATCHDOG=1") }
        #expect((3...8).contains(pings.count), "\(pings)")

        kill(supervisor.process.processIdentifier, SIGHUP)
        let reload = listener.receive { $0.contains("READY=1") }
        let reloading = try #require(reload.first { $0.contains("RELOADING=1") }, "\(reload)")
        let stamp = reloading.split(separator: "\n").first { $0.hasPrefix("MONOTONIC_USEC=") }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let micros = stamp.flatMap { Int64($0.dropFirst("MONOTONIC_USEC=".count)) } ?? 0
        #expect(micros > 0 && micros <= Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000, "\(reloading)")
        #expect(reload.last?.contains("STATUS=2 of 2 plugins serving") == true, "\(reload)")

        kill(supervisor.process.processIdentifier, SIGTERM)
        let stopping = listener.receive { $0.contains("STOPPING=1") }
        #expect(stopping.last?.contains("STOPPING=1") == true, "\(stopping)")
        supervisor.waitForExit()
        #expect(supervisor.exitStatus == 0)
    }

    @Test func aWatchdogMeantForAnotherProcessIsNotPinged() throws {
        let (supervisor, listener) = try notifying(["WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"])
        #expect(listener.receive { $0.contains("READY=1") }.last?.contains("READY=1") == true)
        let pings = listener.receive(timeout: .seconds(1)) { _ in false }.filter { $0.contains("WATCHDOG=1") }
        #expect(pings.isEmpty, "\(pings)")
        _ = supervisor.stop()
    }

    @Test func theShippedUnitPassesSystemdAnalyzeVerify() throws {
        let analyze = "/usr/bin/systemd-analyze"
        try #require(FileManager.default.isExecutableFile(atPath: analyze), "scripts/bootstrap.sh installs systemd")
        let unit = try String(
            contentsOf: Fixtures.root.appendingPathComponent("dist/plugvisor.service"), encoding: .utf8)
        #expect(unit.contains("Type=notify"))
        #expect(unit.contains("WatchdogSec="))
        // verify checks that ExecStart names a program that exists: point it at the one built.
        let directory = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("plugvisor.service")
        try unit.replacingOccurrences(of: "/usr/local/bin/plugvisor", with: try Fixtures.binary("plugvisor"))
            .write(to: copy, atomically: true, encoding: .utf8)
        let verified = ProcessRunner.run([analyze, "verify", "--man=no", copy.path])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        let warnings = (verified.stdout + verified.stderr).split(separator: "\n").filter {
            $0.contains("plugvisor.service")
        }
        #expect(warnings.isEmpty, "\(warnings)")
    }
}
