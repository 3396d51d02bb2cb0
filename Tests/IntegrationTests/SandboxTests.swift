import Foundation
import Glibc
import PlugvisorPosix
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// The worker's lockdown, proven on live workers: forbidden syscalls die of SIGSYS and are
/// named, /proc shows the filter and the limits, grants are exactly what the manifest says.
@Suite(.serialized, .timeLimit(.minutes(5))) struct SandboxTests {
    @Test func forbiddenSyscallsKillTheWorkerAndTheSupervisorNamesThem() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - name: drill
                    wasm: "{{plugins}}/sandbox-drill.wasm"
                    restart: {max: 100, within: 60s, backoff: 1ms..1ms}
                  - {name: echo, wasm: "{{plugins}}/echo.wasm"}
                """, arguments: ["--sandbox-drill"])
        // What an escaped guest would try, natively, after lockdown: processes, programs, files,
        // other processes' signals (fcntl F_SETOWN/F_SETSIG/O_ASYNC make the kernel signal any
        // pid of this uid when a frame arrives; leases and notifications signal too), and
        // executable memory for injected code.
        let drills = [
            (0, "socket"), (1, "connect"), (2, "execve"), (3, "fork"), (4, "clone"), (5, "openat"), (6, "ptrace"),
            (7, "fcntl"), (8, "fcntl"), (9, "fcntl"), (10, "fcntl"), (11, "fcntl"), (12, "fcntl"),
            (13, "mmap"), (14, "mprotect"), (16, "kill"),
        ]
        for (which, name) in drills {
            #expect(supervisor.eventually { (try? supervisor.plugin("drill").workers.count) == 1 })
            let output = supervisor.call("drill", "--request-id", "\(which)")
            #expect(output.status == 2, "drill \(name) was not stopped: \(output.stdout)")
            #expect(output.error?.code == .workerCrashed)
            #expect(output.error?.message.contains("killed by SIGSYS") == true, "\(output.stderr)")
            #expect(output.error?.message.contains("(\(name))") == true, "\(output.stderr)")
            #expect(try supervisor.plugin("drill").lastError?.contains("(\(name))") == true)
            #expect(supervisor.log.contains("seccomp refused syscall"))
            #expect(supervisor.call("echo").status == 0)
        }
    }

    /// An escaped guest sees an empty root with only its grants in it: not /etc, not /proc, not
    /// even with stat (which Landlock does not govern), whether or not it was granted files.
    @Test func anEscapedGuestSeesNoPathOutsideItsGrants() throws {
        let granted = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: granted) }
        chmod(granted.path, 0o777)
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - name: bare
                    wasm: "{{plugins}}/sandbox-drill.wasm"
                  - name: granted
                    wasm: "{{plugins}}/sandbox-drill.wasm"
                    filesystem: [{host: "\(granted.path)", guest: /data, mode: rw}]
                """, arguments: ["--sandbox-drill"])
        for plugin in ["bare", "granted"] {
            let stat = supervisor.call(plugin, "--request-id", "15")
            #expect(stat.json?["data"] == "refused", "\(plugin): stat /etc/shadow: \(stat.stdout) \(stat.stderr)")
        }
        let proc = supervisor.call("granted", "--request-id", "17")
        #expect(proc.json?["data"] == "refused", "open /proc/self/status: \(proc.stdout) \(proc.stderr)")
    }

    /// Each worker has its own user, mount, network, IPC and UTS namespaces and no capability in
    /// them; under root each plugin has a uid of its own, none of them root or the supervisor's.
    @Test func workersHaveNamespacesNoCapabilitiesAndUnderRootAUidPerPlugin() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: one, wasm: "{{plugins}}/echo.wasm"}
                  - {name: two, wasm: "{{plugins}}/echo.wasm"}
                """)
        var uids: [String: String] = [:]
        for plugin in ["one", "two"] {
            let pid = try #require(try supervisor.plugin(plugin).workers.first?.pid)
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            for capabilities in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
                #expect(status.contains("\(capabilities):\t0000000000000000"), "\(plugin): \(status)")
            }
            let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }.map(String.init) ?? ""
            uids[plugin] = uid
            if geteuid() == 0 {
                let supervisorPID = supervisor.process.processIdentifier
                for namespace in ["user", "mnt", "net", "ipc", "uts"] {
                    let worker = try FileManager.default.destinationOfSymbolicLink(
                        atPath: "/proc/\(pid)/ns/\(namespace)")
                    let host = try FileManager.default.destinationOfSymbolicLink(
                        atPath: "/proc/\(supervisorPID)/ns/\(namespace)")
                    #expect(worker != host, "\(plugin) shares the supervisor's \(namespace) namespace")
                }
                // Its root is an empty tmpfs: nothing of the host's tree.
                let root = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/root")
                #expect(root.isEmpty, "\(plugin) sees \(root) in its root")
                let number = try #require(uid.split(separator: "\t").dropFirst().first.flatMap { UInt32($0) })
                #expect((61185...65518).contains(number), "\(plugin) runs as \(uid)")
            } else {
                #expect(uid.contains("\t\(geteuid())\t"), "\(plugin): \(uid)")
            }
            #expect(supervisor.call(plugin).status == 0)
        }
        if geteuid() == 0 { #expect(uids["one"] != uids["two"], "two plugins share a uid: \(uids)") }
    }

    /// `plugvisor inspect` parses hostile bytes in a worker locked down as for a load (seccomp,
    /// no_new_privs, namespaces, never root). A module with many exports makes a report larger
    /// than the socket's buffer, so the worker is still there, blocked in its send, to be seen.
    @Test func inspectParsesTheModuleOnlyUnderLockdown() throws {
        let directory = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("many-exports.wasm").path
        try Data(Self.moduleWithExports(20_000)).write(to: URL(fileURLWithPath: path))
        let channel = try Descriptors.socketPair()
        let module = try Descriptors.sealedMemoryFile(
            name: "inspect-test", contents: try Array(Data(contentsOf: URL(fileURLWithPath: path))))
        let process = try ChildProcess.spawn(
            executable: try Fixtures.binary("plugvisor-worker"), arguments: ["inspect"],
            environment: ["SWIFT_BACKTRACE": "enable=no"], channel: channel.1, extra: module)
        channel.1.close()
        module.close()
        defer {
            process.signal(SIGKILL)
            _ = process.waitForExit()
        }
        let frames = FrameChannel(descriptor: channel.0)
        guard case .hello = try frames.receive(WorkerMessage.self, deadline: .now + .seconds(10)) else {
            Issue.record("no hello")
            return
        }
        let user = WorkerUser(uid: 65519, gid: 65519)
        try frames.send(SupervisorMessage.inspect(InspectRequest(workerUser: geteuid() == 0 ? user : nil)))
        // The report is megabytes: the worker blocks in send, locked down, until we read.
        var status = ""
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            status = (try? String(contentsOfFile: "/proc/\(process.pid)/status", encoding: .utf8)) ?? ""
            if status.contains("Seccomp:\t2") { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(status.contains("Seccomp:\t2"), "\(status)")
        #expect(status.contains("NoNewPrivs:\t1"))
        if geteuid() == 0 { #expect(status.contains("Uid:\t65519\t65519\t65519\t65519"), "\(status)") }
        guard case let .inspected(report) = try frames.receive(WorkerMessage.self, deadline: .now + .seconds(30)) else {
            Issue.record("no report")
            return
        }
        #expect(report.exports.count == 20_000)
        // And through the CLI, as a user runs it (exit 1: a module without `execute` cannot load).
        let cli = ProcessRunner.run([try Fixtures.binary("plugvisor"), "inspect", path])
        #expect(cli.stdout.contains("func f19999 () -> ()"), "\(cli.stdout.suffix(300)) \(cli.stderr)")
    }

    /// A module with one function exported `count` times (f0, f1, …).
    static func moduleWithExports(_ count: Int) -> [UInt8] {
        func leb(_ value: Int) -> [UInt8] {
            var value = value
            var bytes: [UInt8] = []
            repeat {
                var byte = UInt8(value & 0x7f)
                value >>= 7
                if value != 0 { byte |= 0x80 }
                bytes.append(byte)
            } while value != 0
            return bytes
        }
        func section(_ id: UInt8, _ body: [UInt8]) -> [UInt8] { [id] + leb(body.count) + body }
        var exports = leb(count)
        for index in 0..<count {
            let name = Array("f\(index)".utf8)
            exports += leb(name.count) + name + [0x00, 0x00]  // func 0
        }
        return [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]
            + section(1, [0x01, 0x60, 0x00, 0x00])  // one type: () -> ()
            + section(3, [0x01, 0x00])  // one function of type 0
            + section(7, exports)
            + section(10, [0x01, 0x02, 0x00, 0x0b])  // its body: end
    }

    @Test func aLiveWorkerRunsUnderSeccompNoNewPrivsAndItsLimits() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: echo, wasm: "{{plugins}}/echo.wasm", memory: 32MiB}
                """)
        let pid = try #require(try supervisor.plugin("echo").workers.first?.pid)
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        #expect(status.contains("Seccomp:\t2"))
        #expect(status.contains("NoNewPrivs:\t1"))
        #expect(!status.contains("Uid:\t0\t"), "\(status)")
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        let data = (32 << 20) * 2 + (256 << 20)
        #expect(limits.contains(limitLine("Max data size", data, "bytes")), "\(limits)")
        #expect(limits.contains(limitLine("Max open files", 64, "files")))
        #expect(limits.contains(limitLine("Max core file size", 0, "bytes")))
        #expect(limits.contains(limitLine("Max cpu time", 3600, "seconds")))
        // Listing another process's descriptors needs ptrace access: root has it; an ordinary
        // user does not, since the worker's credential changes made it undumpable.
        if geteuid() == 0 {
            let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").sorted()
            #expect(descriptors == ["0", "1", "2", "3"])
        }
        #expect(supervisor.call("echo").status == 0)
    }

    func limitLine(_ name: String, _ value: Int, _ unit: String) -> String {
        name.padding(toLength: 26, withPad: " ", startingAt: 0)
            + "\(value)".padding(toLength: 21, withPad: " ", startingAt: 0)
            + "\(value)".padding(toLength: 21, withPad: " ", startingAt: 0) + unit
    }

    @Test func grantedDirectoriesAreTheOnlyOnesAndReadOnlyMeansReadOnly() throws {
        let host = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: host) }
        let readOnly = host.appendingPathComponent("ro")
        let readWrite = host.appendingPathComponent("rw")
        for directory in [readOnly, readWrite] {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
            try "hello from the host\n".write(
                to: directory.appendingPathComponent("hello.txt"), atomically: true, encoding: .utf8)
        }
        // Both directories are writable by anyone (workers run as nobody when the tests run as
        // root): only the sandbox can make "ro" read-only.
        chmod(host.path, 0o755)
        chmod(readOnly.path, 0o777)
        chmod(readWrite.path, 0o777)
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - name: ro
                    wasm: "{{plugins}}/escape-fs.wasm"
                    filesystem: [{host: "\(readOnly.path)", guest: /data, mode: ro}]
                  - name: rw
                    wasm: "{{plugins}}/escape-fs.wasm"
                    filesystem: [{host: "\(readWrite.path)", guest: /data, mode: rw}]
                """)
        let ro = try #require(supervisor.call("ro").json?["data"])
        #expect(ro["inside"] == "read: hello from the host")
        for escape in ["dotdot", "absolute", "symlink"] {
            #expect(ro[escape]?.stringValue?.hasPrefix("error:") == true, "\(escape): \(ro[escape] ?? nil)")
        }
        #expect(ro["write"]?.stringValue?.hasPrefix("error:") == true)
        #expect(!FileManager.default.fileExists(atPath: readOnly.appendingPathComponent("new-file.txt").path))
        #expect(!FileManager.default.fileExists(atPath: readOnly.appendingPathComponent("escape").path))

        let rw = try #require(supervisor.call("rw").json?["data"])
        #expect(rw["write"] == "written")
        #expect(rw["dotdot"]?.stringValue?.hasPrefix("error:") == true)
        #expect(rw["absolute"]?.stringValue?.hasPrefix("error:") == true)
        #expect(rw["symlink"]?.stringValue?.hasPrefix("read: root:") != true)
        let written = try String(contentsOf: readWrite.appendingPathComponent("new-file.txt"), encoding: .utf8)
        #expect(written == "written by a plugin\n")
    }

    @Test func aGuestSeesExactlyTheEnvironmentItWasGranted() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: env, wasm: "{{plugins}}/list-env.wasm", env: {MODE: prod, GREETING: "hi there"}}
                  - {name: bare, wasm: "{{plugins}}/list-env.wasm"}
                """, environment: ["PLUGVISOR_TEST_SECRET": "must-not-leak"])
        let seen = supervisor.call("env").json?["data"]
        guard case let .array(entries)? = seen else {
            Issue.record("no list: \(String(describing: seen))")
            return
        }
        #expect(entries.compactMap(\.stringValue).sorted() == ["GREETING=hi there", "MODE=prod"])
        #expect(supervisor.call("bare").json?["data"] == [])
    }
}

/// DESIGN §9's hostile plugins: each ends in a clear typed error (or a refused load) while the
/// supervisor and every other plugin keep answering.
@Suite(.serialized, .timeLimit(.minutes(5))) struct HostilePluginTests {
    static let manifest = """
        plugins:
          - {name: runaway-start, wasm: "{{plugins}}/runaway-start.wasm", timeout: 1s}
          - {name: memory-bomb, wasm: "{{plugins}}/memory-bomb.wasm", memory: 1MiB}
          - {name: recursion, wasm: "{{plugins}}/recursion.wasm"}
          - {name: giant-result, wasm: "{{plugins}}/giant-result.wasm"}
          - {name: forbidden-import, wasm: "{{plugins}}/forbidden-import.wasm"}
          - {name: huge-memory, wasm: "{{plugins}}/huge-memory.wasm"}
          - {name: log-flood, wasm: "{{plugins}}/log-flood.wasm", timeout: 30s}
          - {name: spin, wasm: "{{plugins}}/spin.wasm", fuel: 1_000_000, timeout: 30s}
          - {name: echo, wasm: "{{plugins}}/echo.wasm"}
        """

    @Test func everyHostilePluginEndsInATypedErrorWhileTheOthersServe() throws {
        let supervisor = try RunningSupervisor(manifest: Self.manifest)
        let started = try supervisor.status()
        func state(_ name: String) -> PluginStatus? { started.plugins.first { $0.name == name } }

        #expect(state("runaway-start")?.state == .failed)
        #expect(state("runaway-start")?.lastError?.contains("runaway start function") == true)
        #expect(state("forbidden-import")?.lastError?.contains("env.system") == true)
        #expect(state("huge-memory")?.lastError?.contains("exceeds the plugin's memory limit") == true)

        // memory.grow fails (-1) at the cap: 1 MiB is 16 pages, and the guest goes on.
        #expect(supervisor.call("memory-bomb").json?["data"] == "00016")
        let recursion = supervisor.call("recursion")
        #expect(recursion.error == PluginError(.trap, plugin: "recursion", "call stack exhausted"))
        let giant = supervisor.call("giant-result")
        #expect(giant.error?.code == .invalidResult)
        #expect(giant.error?.message.contains("over the 8388608-byte limit") == true)
        let spin = supervisor.call("spin")
        #expect(spin.error?.code == .outOfFuel)
        #expect(supervisor.call("runaway-start").error?.code == .loadFailed)

        #expect(supervisor.call("echo").status == 0)
        let after = try supervisor.status()
        for name in ["memory-bomb", "recursion", "giant-result", "spin", "echo"] {
            let before = started.plugins.first { $0.name == name }?.workers.map(\.pid)
            #expect(after.plugins.first { $0.name == name }?.workers.map(\.pid) == before, "\(name) lost its worker")
        }
    }

    @Test func aLogFloodIsCutDownAndOtherPluginsKeepAnswering() throws {
        let supervisor = try RunningSupervisor(manifest: Self.manifest)
        let floodStarted = ContinuousClock.now
        let flood = Background { supervisor.call("log-flood") }
        var answeredDuringFlood = 0
        while !flood.isDone {
            if supervisor.call("echo").status == 0 { answeredDuringFlood += 1 }
        }
        #expect(flood.wait().json?["data"] == "flooded")
        #expect(answeredDuringFlood > 0)
        let lines = supervisor.log.split(separator: "\n")
        let floodLines = lines.filter { $0.contains("flood flood") }.count
        // 300,000 lines were logged; at most 100 a second get through, however long the call
        // took on a busy machine.
        let seconds = Int((ContinuousClock.now - floodStarted).components.seconds) + 2
        #expect(
            floodLines > 0 && floodLines <= 100 * seconds, "\(floodLines) flood lines reached the log in \(seconds) s")
        #expect(lines.contains { $0.contains("guest log lines dropped (rate limit)") })
        // An honest worker keeps under the supervisor's ceiling, its own summaries included.
        #expect(!lines.contains { $0.contains("dropped by the supervisor") })
    }

    @Test func garbageAndTruncatedModulesAreRefusedAtLoad() throws {
        let directory = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let echo = try Fixtures.pluginBytes("echo")
        try Data(echo.prefix(echo.count / 2)).write(to: directory.appendingPathComponent("truncated.wasm"))
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(
            to: directory.appendingPathComponent("garbage.wasm"))
        try Data().write(to: directory.appendingPathComponent("empty.wasm"))
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: truncated, wasm: "\(directory.path)/truncated.wasm"}
                  - {name: garbage, wasm: "\(directory.path)/garbage.wasm"}
                  - {name: empty, wasm: "\(directory.path)/empty.wasm"}
                  - {name: echo, wasm: "{{plugins}}/echo.wasm"}
                """)
        for name in ["truncated", "garbage", "empty"] {
            let plugin = try supervisor.plugin(name)
            #expect(plugin.state == .failed)
            #expect(
                plugin.lastError?.contains("not a valid WebAssembly module") == true,
                "\(name): \(plugin.lastError ?? "")")
        }
        #expect(supervisor.call("echo").status == 0)
    }
}
