import Foundation
import Glibc
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// The worker's lockdown, proven on live workers: forbidden syscalls die of SIGSYS and are
/// named, /proc shows the filter and the limits, grants are exactly what the manifest says.
@Suite(.serialized) struct SandboxTests {
    @Test func forbiddenSyscallsKillTheWorkerAndTheSupervisorNamesThem() throws {
        let supervisor = try RunningSupervisor(manifest: """
            plugins:
              - name: drill
                wasm: "{{plugins}}/sandbox-drill.wasm"
                restart: {max: 100, within: 60s, backoff: 1ms..1ms}
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
            """, arguments: ["--sandbox-drill"])
        let drills = [(0, "socket"), (1, "connect"), (2, "execve"), (3, "fork"), (4, "clone"), (5, "openat"), (6, "ptrace")]
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

    @Test func aLiveWorkerRunsUnderSeccompNoNewPrivsAndItsLimits() throws {
        let supervisor = try RunningSupervisor(manifest: """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm", memory: 32MiB}
            """)
        let pid = try #require(try supervisor.plugin("echo").workers.first?.pid)
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        #expect(status.contains("Seccomp:\t2"))
        #expect(status.contains("NoNewPrivs:\t1"))
        if geteuid() == 0 {
            let nobody = try #require(getpwnam("nobody")).pointee.pw_uid
            #expect(status.contains("Uid:\t\(nobody)\t\(nobody)\t\(nobody)\t\(nobody)"), "\(status)")
        }
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        let data = (32 << 20) * 2 + (256 << 20)
        #expect(limits.contains(limitLine("Max data size", data, "bytes")), "\(limits)")
        #expect(limits.contains(limitLine("Max open files", 64, "files")))
        #expect(limits.contains(limitLine("Max core file size", 0, "bytes")))
        #expect(limits.contains(limitLine("Max cpu time", 3600, "seconds")))
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").sorted()
        #expect(descriptors == ["0", "1", "2", "3"])
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
            try "hello from the host\n".write(to: directory.appendingPathComponent("hello.txt"), atomically: true, encoding: .utf8)
        }
        // Both directories are writable by anyone (workers run as nobody when the tests run as
        // root): only the sandbox can make "ro" read-only.
        chmod(host.path, 0o755)
        chmod(readOnly.path, 0o777)
        chmod(readWrite.path, 0o777)
        let supervisor = try RunningSupervisor(manifest: """
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
        let supervisor = try RunningSupervisor(manifest: """
            plugins:
              - {name: env, wasm: "{{plugins}}/list-env.wasm", env: {MODE: prod, GREETING: "hi there"}}
              - {name: bare, wasm: "{{plugins}}/list-env.wasm"}
            """, environment: ["PLUGVISOR_TEST_SECRET": "must-not-leak"])
        let seen = supervisor.call("env").json?["data"]
        guard case let .array(entries)? = seen else { Issue.record("no list: \(String(describing: seen))"); return }
        #expect(entries.compactMap(\.stringValue).sorted() == ["GREETING=hi there", "MODE=prod"])
        #expect(supervisor.call("bare").json?["data"] == [])
    }
}

/// DESIGN §9's hostile plugins: each ends in a clear typed error (or a refused load) while the
/// supervisor and every other plugin keep answering.
@Suite(.serialized) struct HostilePluginTests {
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

        #expect(state("runaway-start")?.state == "failed")
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
        let flood = Background { supervisor.call("log-flood") }
        var answeredDuringFlood = 0
        while !flood.isDone {
            if supervisor.call("echo").status == 0 { answeredDuringFlood += 1 }
        }
        #expect(flood.wait().json?["data"] == "flooded")
        #expect(answeredDuringFlood > 0)
        let lines = supervisor.log.split(separator: "\n")
        let floodLines = lines.filter { $0.contains("flood flood") }.count
        // 300,000 lines were logged; at most 100 a second get through (the call takes seconds).
        #expect(floodLines > 0 && floodLines < 2000, "\(floodLines) flood lines reached the log")
        #expect(lines.contains { $0.contains("guest log lines dropped (rate limit)") })
    }

    @Test func garbageAndTruncatedModulesAreRefusedAtLoad() throws {
        let directory = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let echo = try Fixtures.pluginBytes("echo")
        try Data(echo.prefix(echo.count / 2)).write(to: directory.appendingPathComponent("truncated.wasm"))
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: directory.appendingPathComponent("garbage.wasm"))
        try Data().write(to: directory.appendingPathComponent("empty.wasm"))
        let supervisor = try RunningSupervisor(manifest: """
            plugins:
              - {name: truncated, wasm: "\(directory.path)/truncated.wasm"}
              - {name: garbage, wasm: "\(directory.path)/garbage.wasm"}
              - {name: empty, wasm: "\(directory.path)/empty.wasm"}
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
            """)
        for name in ["truncated", "garbage", "empty"] {
            let plugin = try supervisor.plugin(name)
            #expect(plugin.state == "failed")
            #expect(plugin.lastError?.contains("not a valid WebAssembly module") == true, "\(name): \(plugin.lastError ?? "")")
        }
        #expect(supervisor.call("echo").status == 0)
    }
}
