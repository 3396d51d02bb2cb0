import Foundation
import Glibc
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// Hot reload through the real binaries: files replaced under load, explicit reloads, SIGHUP.
@Suite(.serialized) struct ReloadTests {
    /// A plugin directory of its own, whose `plugin.wasm` the tests replace.
    final class PluginDirectory {
        let url: URL
        var module: String { url.appendingPathComponent("plugin.wasm").path }

        init(initial: String) throws {
            url = try RunningSupervisor.makeTemporaryDirectory()
            try Data(Fixtures.pluginBytes(initial)).write(to: URL(fileURLWithPath: module))
        }

        deinit { try? FileManager.default.removeItem(at: url) }

        /// As editors and build tools do: write a new file, rename it over the old one.
        func renameOver(with fixture: String) throws {
            let temporary = url.appendingPathComponent(".plugin.wasm.tmp")
            try Data(Fixtures.pluginBytes(fixture)).write(to: temporary)
            guard rename(temporary.path, module) == 0 else { throw FixtureError("rename failed") }
        }

        /// Overwrite the file in place (truncate and write).
        func writeInPlace(with fixture: String) throws {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: module))
            try handle.truncate(atOffset: 0)
            try handle.write(contentsOf: Fixtures.pluginBytes(fixture))
            try handle.close()
        }
    }

    final class Tally: @unchecked Sendable {
        // SAFETY: guarded by `lock`.
        private let lock = NSLock()
        private var answers: [String: Int] = [:]
        private var stopped = false
        func add(_ answer: String) { lock.withLock { answers[answer, default: 0] += 1 } }
        func stop() { lock.withLock { stopped = true } }
        var isStopped: Bool { lock.withLock { stopped } }
        var snapshot: [String: Int] { lock.withLock { answers } }
    }

    func answer(_ supervisor: RunningSupervisor) -> String {
        guard let response = try? supervisor.directCall("versioned") else { return "unanswered" }
        if let error = response.error { return "error: \(error.code)" }
        return response.result?["data"]?.stringValue ?? "bad result"
    }

    @Test func replacingTheFileTwentyTimesUnderLoadFailsNoCall() throws {
        let directory = try PluginDirectory(initial: "versioned-1")
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: versioned, wasm: "\(directory.module)", instances: 2}
                """)
        let tally = Tally()
        let callers = (0..<4).map { _ in
            Thread {
                while !tally.isStopped { tally.add(self.answer(supervisor)) }
            }
        }
        callers.forEach { $0.start() }
        defer { tally.stop() }

        var expected = "v1"
        var switched = 0
        for round in 1...20 {
            if round == 11 {
                // A broken build lands in between: reported, never served.
                try directory.renameOver(with: "no-execute")
                #expect(
                    supervisor.eventually {
                        (try? supervisor.plugin("versioned").lastReload)?.hasPrefix("failed") == true
                    })
                #expect(answer(supervisor) == expected)
                continue
            }
            expected = expected == "v1" ? "v2" : "v1"
            let fixture = expected == "v1" ? "versioned-1" : "versioned-2"
            if round % 3 == 0 {
                try directory.writeInPlace(with: fixture)
            } else {
                try directory.renameOver(with: fixture)
            }
            if supervisor.eventually(timeout: .seconds(10), { answer(supervisor) == expected }) { switched += 1 }
        }
        tally.stop()
        callers.forEach { _ in }
        Thread.sleep(forTimeInterval: 0.2)
        let answers = tally.snapshot
        #expect(switched == 19, "answers switched after \(switched) of 19 good replacements")
        #expect(Set(answers.keys).isSubset(of: ["v1", "v2"]), "\(answers)")
        #expect((answers["v1"] ?? 0) + (answers["v2"] ?? 0) > 100, "\(answers)")
        let status = try supervisor.plugin("versioned")
        // 19 good versions; the broken one uses up no version number.
        #expect(status.generation >= 19, "generation \(status.generation)")
        #expect(status.lastReload == "ok")
        #expect(status.errors == 0)
        #expect(supervisor.log.contains("reload failed, the previous version goes on serving: missing export: execute"))
        // Old generations are gone: only the serving workers remain.
        #expect(status.workers.count == 2)
    }

    @Test func anUnchangedRewriteDoesNotReload() throws {
        let directory = try PluginDirectory(initial: "versioned-1")
        let supervisor = try RunningSupervisor(manifest: "plugins: [{name: versioned, wasm: \"\(directory.module)\"}]")
        let pid = try supervisor.plugin("versioned").workers.first?.pid
        try directory.writeInPlace(with: "versioned-1")
        try directory.renameOver(with: "versioned-1")
        Thread.sleep(forTimeInterval: 1)
        let status = try supervisor.plugin("versioned")
        #expect(status.generation == 0)
        #expect(status.lastReload == nil)
        #expect(status.workers.first?.pid == pid)
        // Positive control: the watcher is alive, and a changed file does reload.
        try directory.renameOver(with: "versioned-2")
        #expect(supervisor.eventually { (try? supervisor.plugin("versioned").generation) == 1 })
        #expect(answer(supervisor) == "v2")
    }

    /// A failed plugin reloaded or restarted with a module that still fails stays failed, and
    /// the command says so (exit 2) rather than reporting success.
    @Test func aFailedPluginThatStillFailsIsReportedAsFailedByReloadAndRestart() throws {
        let directory = try PluginDirectory(initial: "no-execute")
        let supervisor = try RunningSupervisor(
            manifest: "plugins: [{name: versioned, wasm: \"\(directory.module)\"}]",
            arguments: [])
        #expect(try supervisor.plugin("versioned").state == .failed)
        let reload = supervisor.cli(["reload", "versioned"])
        #expect(reload.status == 2, "\(reload.stdout) \(reload.stderr)")
        #expect(reload.error?.code == .reloadFailed, "\(reload.stderr)")
        #expect(reload.error?.message.contains("missing export: execute") == true, "\(reload.stderr)")
        let afterReload = try supervisor.plugin("versioned")
        #expect(afterReload.state == .failed)
        #expect(afterReload.lastReload?.hasPrefix("failed: ") == true, "\(afterReload.lastReload ?? "nil")")
        #expect(afterReload.generation == 0, "a failed attempt uses up no version number")
        #expect(!supervisor.log.contains("[Plugvisor] reloaded"), "\(supervisor.log)")

        let restart = supervisor.cli(["restart", "versioned"])
        #expect(restart.status == 2, "\(restart.stdout) \(restart.stderr)")
        #expect(restart.error?.code == .loadFailed, "\(restart.stderr)")
        #expect(restart.error?.message.contains("missing export: execute") == true, "\(restart.stderr)")

        // Fixed on disk: the watcher brings it up as version 1, and both commands succeed.
        try directory.renameOver(with: "versioned-1")
        #expect(supervisor.eventually { (try? supervisor.plugin("versioned").state) == .ready })
        #expect(try supervisor.plugin("versioned").generation == 1)
        #expect(try supervisor.plugin("versioned").lastReload == "ok")
        let fixed = supervisor.cli(["reload", "versioned"])
        #expect(fixed.status == 0, "\(fixed.stderr)")
        #expect(fixed.stdout.hasPrefix("versioned: generation 2, sha256 "), "\(fixed.stdout)")
        #expect(supervisor.cli(["restart", "versioned"]).status == 0)
        #expect(answer(supervisor) == "v1")
    }

    @Test func anExplicitReloadAnswersHowItWent() throws {
        let directory = try PluginDirectory(initial: "versioned-1")
        let supervisor = try RunningSupervisor(
            manifest: "plugins: [{name: versioned, wasm: \"\(directory.module)\"}]",
            arguments: [])
        let reload = supervisor.cli(["reload", "versioned"])
        #expect(reload.status == 0, "\(reload.stderr)")
        #expect(reload.stdout.hasPrefix("versioned: generation 1, sha256 "))
        // Broken on disk: the watcher refuses it, and an explicit reload says why, exit 2.
        try directory.renameOver(with: "forbidden-import")
        let broken = supervisor.cli(["reload", "versioned"])
        #expect(broken.status == 2)
        #expect(broken.error?.code == .reloadFailed)
        #expect(broken.error?.message.contains("env.system") == true)
        #expect(answer(supervisor) == "v1")
        // The table says so too, not only `status --json`.
        let table = supervisor.cli(["status"])
        #expect(table.stdout.contains("versioned: last reload failed: "), "\(table.stdout)")
    }

    /// A FIFO where the module was: a blocking open would wait for a writer forever.
    @Test func aModulePathThatIsNotARegularFileIsRefusedAtOnce() throws {
        let fifo = try PluginDirectory(initial: "versioned-1")
        let other = try PluginDirectory(initial: "versioned-1")
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: versioned, wasm: "\(fifo.module)"}
                  - {name: other, wasm: "\(other.module)"}
                """)
        guard unlink(fifo.module) == 0, mkfifo(fifo.module, 0o600) == 0 else { throw FixtureError("mkfifo failed") }

        let started = ContinuousClock.now
        let refused = try supervisor.request(ControlRequest(op: .reload, plugin: "versioned"), timeout: .seconds(5))
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(refused.error?.code == .reloadFailed)
        #expect(
            refused.error?.message.contains("\(fifo.module) is a FIFO, not a regular file") == true,
            "\(String(describing: refused.error))")
        #expect(answer(supervisor) == "v1", "the old version goes on serving")
        // The watcher saw the FIFO appear too, and its reload left nothing stuck behind it.
        try other.renameOver(with: "versioned-2")
        let reloaded = try supervisor.request(ControlRequest(op: .reload, plugin: "other"), timeout: .seconds(5))
        #expect(reloaded.error == nil, "\(String(describing: reloaded.error))")
        #expect(try supervisor.plugin("other").lastReload == "ok")

        // A directory is refused the same way.
        guard unlink(fifo.module) == 0, mkdir(fifo.module, 0o700) == 0 else { throw FixtureError("mkdir failed") }
        let directory = try supervisor.request(ControlRequest(op: .reload, plugin: "versioned"), timeout: .seconds(5))
        #expect(directory.error?.message.contains("is a directory, not a regular file") == true)
    }

    @Test func aFIFOModuleAtStartFailsOnlyThatPluginAndStartGoesOn() throws {
        let fifo = try PluginDirectory(initial: "versioned-1")
        guard unlink(fifo.module) == 0, mkfifo(fifo.module, 0o600) == 0 else { throw FixtureError("mkfifo failed") }
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: versioned, wasm: "\(fifo.module)"}
                  - {name: echo, wasm: "{{plugins}}/echo.wasm"}
                """)
        let failed = try supervisor.plugin("versioned")
        #expect(failed.state == .failed)
        #expect(failed.lastError?.contains("is a FIFO, not a regular file") == true, "\(failed.lastError ?? "")")
        #expect(supervisor.call("echo").status == 0)
    }

    /// One plugin's slow reload (a new version whose start function never returns takes its
    /// whole load time to fail) does not hold up another plugin's reload.
    @Test func onePluginsSlowReloadDoesNotHoldUpAnothers() throws {
        let slow = try PluginDirectory(initial: "versioned-1")
        let quick = try PluginDirectory(initial: "versioned-1")
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: slow, wasm: "\(slow.module)", timeout: 8s}
                  - {name: quick, wasm: "\(quick.module)"}
                """, arguments: [])
        try slow.renameOver(with: "runaway-start")
        let slowReload = Background {
            try? supervisor.request(ControlRequest(op: .reload, plugin: "slow"), timeout: .seconds(30))
        }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(!slowReload.isDone)
        let started = ContinuousClock.now
        let quickReload = try supervisor.request(ControlRequest(op: .reload, plugin: "quick"), timeout: .seconds(30))
        let took = ContinuousClock.now - started
        #expect(quickReload.error == nil, "\(String(describing: quickReload.error))")
        #expect(took < .seconds(4), "quick's reload waited \(took) behind slow's")
        #expect(!slowReload.isDone, "slow's reload should still be loading")
        #expect(slowReload.wait()?.error?.code == .reloadFailed)
    }

    @Test func aShaPinRefusesANewFile() throws {
        let directory = try PluginDirectory(initial: "versioned-1")
        let pin = try supervisorSHA(of: directory.module)
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: versioned, wasm: "\(directory.module)", sha256: "\(pin)"}
                """)
        try directory.renameOver(with: "versioned-2")
        #expect(
            supervisor.eventually {
                (try? supervisor.plugin("versioned").lastReload)?.contains("the manifest pins") == true
            })
        #expect(answer(supervisor) == "v1")
    }

    /// The sha256 the supervisor reports for a module, from `plugvisor inspect`.
    func supervisorSHA(of path: String) throws -> String {
        let output = ProcessRunner.run([try Fixtures.binary("plugvisor"), "inspect", path, "--json"])
        return try JSONCoding.decode(InspectReport.self, from: Array(output.stdout.utf8)).sha256 ?? ""
    }

    @Test func sighupAddsAndRemovesPluginsAndABadManifestChangesNothing() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: echo, wasm: "{{plugins}}/echo.wasm"}
                  - {name: trap, wasm: "{{plugins}}/trap.wasm"}
                """)
        let trapPID = try #require(try supervisor.plugin("trap").workers.first?.pid)
        try """
        plugins:
          - {name: echo, wasm: "\(Fixtures.pluginsDirectory.path)/echo.wasm"}
          - {name: transformer, wasm: "\(Fixtures.pluginsDirectory.path)/json-transformer.wasm"}
        """.write(toFile: supervisor.manifestPath, atomically: true, encoding: .utf8)
        kill(supervisor.process.processIdentifier, SIGHUP)
        #expect(supervisor.eventually { (try? supervisor.status().plugins.map(\.name)) == ["echo", "transformer"] })
        #expect(supervisor.eventually { (try? supervisor.plugin("transformer").state) == .ready })
        #expect(supervisor.call("transformer", "--request-id", "r").json?["data"]?["_request_id"] == "r")
        #expect(supervisor.call("trap").error?.code == .unknownPlugin)
        #expect(supervisor.eventually { !processIsAlive(trapPID) })

        // A manifest with problems: `plugvisor reload` reports them all and nothing changes.
        try """
        plugins:
          - {name: echo, wasm: nowhere.wasm, timeout: soon}
        """.write(toFile: supervisor.manifestPath, atomically: true, encoding: .utf8)
        let refused = supervisor.cli(["reload"])
        #expect(refused.status == 2)
        #expect(refused.error?.code == .invalidManifest)
        #expect(refused.error?.message.contains("file not found") == true)
        #expect(refused.error?.message.contains("'soon' is not a duration") == true)
        #expect(try supervisor.status().plugins.map(\.name) == ["echo", "transformer"])
        #expect(supervisor.call("echo").status == 0)
    }
}
