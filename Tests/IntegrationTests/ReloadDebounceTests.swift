import Foundation
import Glibc
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// Hot reload waits for a module file to settle, and only for that file: other files written
/// in the plugin's folder (the supervisor's own log, as the guide's workflow has it) do not hold
/// the reload off.
@Suite(.serialized) struct ReloadDebounceTests {
    /// A folder with `plugin.wasm` (the `versioned-1` fixture) and whatever else a test writes.
    final class PluginFolder {
        let url: URL
        var module: String { url.appendingPathComponent("plugin.wasm").path }

        init() throws {
            url = try RunningSupervisor.makeTemporaryDirectory()
            try Data(Fixtures.pluginBytes("versioned-1")).write(to: URL(fileURLWithPath: module))
        }

        deinit { try? FileManager.default.removeItem(at: url) }

        /// As build tools do: write a new file, rename it over the module.
        func replaceModule(with fixture: String) throws {
            let temporary = url.appendingPathComponent(".plugin.wasm.tmp")
            try Data(Fixtures.pluginBytes(fixture)).write(to: temporary)
            guard rename(temporary.path, module) == 0 else { throw FixtureError("rename failed") }
        }
    }

    /// Appends a line to `path` every 50 ms until stopped, as a busy log does.
    final class Appender: @unchecked Sendable {
        // SAFETY: `stopped` is only touched under `lock`; `handle` only by the appending thread.
        private let lock = NSLock()
        private var stopped = false
        private let handle: FileHandle

        init(path: String) throws {
            guard FileManager.default.createFile(atPath: path, contents: nil),
                let handle = FileHandle(forWritingAtPath: path)
            else { throw FixtureError("cannot create \(path)") }
            self.handle = handle
            Thread { [self] in
                while !lock.withLock({ stopped }) {
                    handle.seekToEndOfFile()
                    handle.write(Data("a log line\n".utf8))
                    Thread.sleep(forTimeInterval: 0.05)
                }
                try? handle.close()
            }.start()
        }

        func stop() { lock.withLock { stopped = true } }
    }

    func answer(_ supervisor: RunningSupervisor) -> String {
        guard let response = try? supervisor.directCall("versioned") else { return "unanswered" }
        return response.result?["data"]?.stringValue ?? "error: \(String(describing: response.error?.code))"
    }

    @Test func aChangedModuleReloads() throws {
        let folder = try PluginFolder()
        let supervisor = try RunningSupervisor(manifest: "plugins: [{name: versioned, wasm: \"\(folder.module)\"}]")
        #expect(answer(supervisor) == "v1")
        try folder.replaceModule(with: "versioned-2")
        #expect(supervisor.eventually(timeout: .seconds(5)) { answer(supervisor) == "v2" })
    }

    @Test func aFileAppendedEvery50msBesideTheModuleDoesNotHoldTheReloadOff() throws {
        let folder = try PluginFolder()
        let supervisor = try RunningSupervisor(manifest: "plugins: [{name: versioned, wasm: \"\(folder.module)\"}]")
        #expect(answer(supervisor) == "v1")
        let log = try Appender(path: folder.url.appendingPathComponent("sup.log").path)
        defer { log.stop() }
        Thread.sleep(forTimeInterval: 0.3)  // the log is busy before the build lands
        let replaced = ContinuousClock.now
        try folder.replaceModule(with: "versioned-2")
        let reloaded = supervisor.eventually(timeout: .seconds(5)) { answer(supervisor) == "v2" }
        #expect(reloaded, "no reload within 5 s while sup.log was appended every 50 ms")
        if reloaded { print("reloaded \(ContinuousClock.now - replaced) after the module changed") }
    }
}
