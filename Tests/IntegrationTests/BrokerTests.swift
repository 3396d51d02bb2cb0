import Foundation
import Glibc
import PlugvisorPosix
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// The network broker: guests' HTTP requests are performed in `plugvisor-broker`, a locked-down
/// child of the supervisor, so that libcurl never parses a remote server's bytes in the trusted
/// process. A broker that dies costs only the requests in flight on it.
@Suite(.serialized, .timeLimit(.minutes(5))) struct BrokerTests {
    static func manifest(_ server: NetworkTests.LoopbackServer) -> String {
        """
        plugins:
          - {name: fetch, wasm: "{{plugins}}/fetch.wasm", network: {allowed_hosts: ["\(server.allowed)"]}, timeout: 12s}
        """
    }

    @Test func requestsRunInASeparateLockedDownBrokerProcess() throws {
        let server = try NetworkTests.LoopbackServer()
        let supervisor = try RunningSupervisor(manifest: Self.manifest(server))
        let supervisorPID = supervisor.process.processIdentifier
        #expect(brokers(of: supervisorPID).isEmpty, "the broker starts with the first request")

        let hello = supervisor.call("fetch", "-p", "url=\(server.url("hello"))")
        #expect(hello.json?["data"]?["status"] == 200, "\(hello.stderr) \(supervisor.log)")
        let found = brokers(of: supervisorPID)
        try #require(found.count == 1, "\(supervisor.log)")
        let broker = found[0]
        #expect(broker != supervisorPID)
        let status = try String(contentsOfFile: "/proc/\(broker)/status", encoding: .utf8)
        #expect(status.contains("NoNewPrivs:\t1"), "\(status)")
        #expect(status.contains("Seccomp:\t2"), "\(status)")
        if geteuid() == 0 {
            // Under root the broker drops to the first uid of the workers' range, its own.
            #expect(status.contains("Uid:\t61184\t61184\t61184\t61184"), "\(status)")
        }
        // The supervisor itself stays free of libcurl: it never loads FoundationNetworking.
        let maps = try String(contentsOfFile: "/proc/\(supervisorPID)/maps", encoding: .utf8)
        #expect(!maps.contains("libcurl"))
        #expect(!maps.contains("FoundationNetworking"))
        withExtendedLifetime(server) {}
    }

    @Test func aKilledBrokerFailsOnlyItsRequestsAndIsReplaced() throws {
        let server = try NetworkTests.LoopbackServer()
        let supervisor = try RunningSupervisor(manifest: Self.manifest(server))
        let supervisorPID = supervisor.process.processIdentifier
        let first = supervisor.call("fetch", "-p", "url=\(server.url("hello"))")
        #expect(first.json?["data"]?["status"] == 200, "\(first.stderr) \(supervisor.log)")
        let broker = try #require(brokers(of: supervisorPID).first)

        // A request in flight (the server answers /slow after 10 s) when the broker is killed.
        let slowURL = server.url("slow")
        let slow = Background { supervisor.call("fetch", "-p", "url=\(slowURL)") }
        Thread.sleep(forTimeInterval: 1)
        #expect(!slow.isDone)
        kill(broker, SIGKILL)
        let answer = slow.wait()
        #expect(
            answer.json?["data"]?["error"]?.stringValue?.hasPrefix("the network broker died") == true,
            "\(answer.stdout) \(answer.stderr)")
        // Reaped by the supervisor: neither running nor a zombie.
        #expect(supervisor.eventually { !FileManager.default.fileExists(atPath: "/proc/\(broker)") })
        #expect(supervisor.process.isRunning)
        #expect(supervisor.log.contains("the network broker died"))

        let again = supervisor.call("fetch", "-p", "url=\(server.url("hello"))")
        #expect(again.json?["data"]?["status"] == 200, "\(again.stderr) \(supervisor.log)")
        let replacement = brokers(of: supervisorPID)
        #expect(replacement.count == 1 && replacement.first != broker)
        withExtendedLifetime(server) {}
    }

    @Test func stopLeavesNoBroker() throws {
        let server = try NetworkTests.LoopbackServer()
        let supervisor = try RunningSupervisor(manifest: Self.manifest(server))
        let hello = supervisor.call("fetch", "-p", "url=\(server.url("hello"))")
        #expect(hello.json?["data"]?["status"] == 200, "\(hello.stderr) \(supervisor.log)")
        let broker = try #require(brokers(of: supervisor.process.processIdentifier).first)
        let stopped = supervisor.stop()
        #expect(stopped.status == 0, "\(stopped.stderr)")
        #expect(supervisor.exitStatus == 0, "\(supervisor.log)")
        #expect(!processIsAlive(broker), "broker \(broker) outlived its supervisor")
        withExtendedLifetime(server) {}
    }

    @Test func aBrokerThatBreaksTheProtocolIsKilledAndStrayAnswersAreDropped() throws {
        let server = try NetworkTests.LoopbackServer()
        let (garbageBroker, strayBroker) = (try fakeBroker("garbage"), try fakeBroker("wrong-id"))
        defer {
            for script in [garbageBroker, strayBroker] {
                try? FileManager.default.removeItem(at: URL(fileURLWithPath: script).deletingLastPathComponent())
            }
        }
        let garbage = try RunningSupervisor(
            manifest: Self.manifest(server), environment: ["PLUGVISOR_BROKER": garbageBroker])
        let refused = garbage.call("fetch", "-p", "url=\(server.url("hello"))")
        #expect(
            refused.json?["data"]?["error"]?.stringValue?.contains("was killed for breaking the protocol") == true,
            "\(refused.stdout) \(refused.stderr) \(garbage.log)")
        #expect(garbage.process.isRunning)
        #expect(garbage.log.contains("the network broker broke the protocol"))

        let stray = try RunningSupervisor(
            manifest: Self.manifest(server), environment: ["PLUGVISOR_BROKER": strayBroker])
        let answered = stray.call("fetch", "-p", "url=\(server.url("hello"))")
        #expect(answered.json?["data"]?["status"] == 299, "\(answered.stdout) \(answered.stderr) \(stray.log)")
        withExtendedLifetime(server) {}
    }

    /// The broker's lockdown on its own (`--drill`): after it, exec, fork and ptrace die of
    /// SIGSYS and the reporter names the syscall; sockets, its job, still work.
    @Test(arguments: [(2, "execve"), (3, "fork"), (6, "ptrace")])
    func theBrokersSeccompFilterRefusesExecForkAndPtrace(drill: Int32, syscall: String) throws {
        let (exit, stderr) = try runBroker(["--drill", "\(drill)"])
        #expect(exit == .signalled(SIGSYS), "\(stderr)")
        #expect(stderr.contains("seccomp refused syscall") && stderr.contains("(\(syscall))"), "\(stderr)")
    }

    @Test func theLockedDownBrokerMayStillOpenSockets() throws {
        let (exit, stderr) = try runBroker(["--drill", "0"] + (geteuid() == 0 ? ["--user", "65534:65534"] : []))
        #expect(exit == .exited(code: 0), "\(stderr)")
    }

    /// Runs plugvisor-broker as the supervisor would (a socketpair on fd 3), to its end.
    func runBroker(_ arguments: [String]) throws -> (ProcessExit, String) {
        let (ours, theirs) = try Descriptors.socketPair()
        let (stderrRead, stderrWrite) = try Descriptors.pipe()
        let process = try ChildProcess.spawn(
            executable: try Fixtures.binary("plugvisor-broker"), arguments: arguments,
            environment: ["SWIFT_BACKTRACE": "enable=no"], channel: theirs, stderr: stderrWrite)
        theirs.close()
        stderrWrite.close()
        let stderr = try Descriptors.readAll(stderrRead.rawValue, limit: 64 * 1024)
        let exit = process.waitForExit()
        withExtendedLifetime(ours) {}
        return (exit, String(decoding: stderr, as: UTF8.self))
    }

    /// A script that runs Fixtures/fake-broker.py in `mode`.
    func fakeBroker(_ mode: String) throws -> String {
        try RunningSupervisor.fakePeer(script: "fake-broker.py", arguments: [mode])
    }

    /// Children of `parent` running `plugvisor-broker`, from /proc.
    func brokers(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, Int32(fields[1]) == parent, fields[0] != "Z",
                let command = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
            else { return false }
            let program = String(decoding: command.prefix { $0 != 0 }, as: UTF8.self)
            return program.hasSuffix("/plugvisor-broker")
        }
    }
}
