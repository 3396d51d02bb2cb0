import Foundation
import Glibc
import PlugvisorTestSupport
import Testing

/// `plugvisor status --watch` in a real terminal (a tmux pane, read with capture-pane, keys
/// sent with send-keys) and through a pipe.
@Suite(.serialized, .timeLimit(.minutes(3))) struct StatusWatchTests {
    static let manifest = """
        plugins:
          - {name: echo, wasm: "{{plugins}}/echo.wasm"}
          - {name: greeter, wasm: "{{plugins}}/greeter-wat.wasm"}
        """

    /// A detached tmux session of its own (its own server socket) running `command` in a
    /// 200×30 pane; once `command` ends the pane says how it exited and whether the terminal
    /// was given back in its cooked mode (line editing and echo on).
    final class Pane {
        let socket: String
        let directory: URL

        init(_ command: [String]) throws {
            directory = try RunningSupervisor.makeTemporaryDirectory()
            socket = directory.appendingPathComponent("tmux.sock").path
            let line = command.map { "'\($0)'" }.joined(separator: " ")
            let script =
                "\(line); echo exited=$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e -icanon -e icanon -e -echo -e echo | tr '\\n' ' '; echo; echo pane-done; sleep 600"
            // The server this starts is forked from its client and keeps whatever descriptors
            // the client had: Foundation's Process watches for its child's exit through one, so
            // the client starts with none of ours.
            let arguments = [
                "/usr/bin/tmux", "-u", "-f", "/dev/null", "-S", socket, "new-session", "-d", "-x", "200", "-y", "30",
                script,
            ]
            let pid = try spawnWithoutDescriptors(arguments, environment: Self.environment)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            guard (status >> 8) & 0xff == 0 else { throw FixtureError("tmux new-session exited \(status)") }
        }

        deinit {
            _ = tmux(["kill-server"])
            try? FileManager.default.removeItem(at: directory)
        }

        @discardableResult
        func tmux(_ arguments: [String]) -> ProcessRunner.Output {
            ProcessRunner.run(
                ["/usr/bin/tmux", "-u", "-f", "/dev/null", "-S", socket] + arguments, environment: Self.environment)
        }

        // The pane's shell is sh, whatever the user's login shell (uid 65534's is nologin).
        static let environment = ProcessInfo.processInfo.environment.merging(["SHELL": "/bin/sh", "TERM": "xterm"]) {
            $1
        }

        var screen: String { tmux(["capture-pane", "-p"]).stdout }

        func waitFor(timeout: Duration = .seconds(10), _ condition: (String) -> Bool) -> String? {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                let text = screen
                if condition(text) { return text }
                Thread.sleep(forTimeInterval: 0.1)
            }
            return nil
        }
    }

    /// The row of `plugin` in a status table on `screen`, by column heading.
    static func row(_ plugin: String, in screen: String) -> [String: String]? {
        let lines = screen.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        guard let header = lines.first(where: { $0.first == "PLUGIN" }),
            let row = lines.first(where: { $0.first == plugin && $0.count == header.count })
        else { return nil }
        return Dictionary(uniqueKeysWithValues: zip(header, row))
    }

    @Test func aTerminalGetsOneTableRedrawnInPlaceWithRatesAndQuitsOnQ() throws {
        let supervisor = try RunningSupervisor(manifest: Self.manifest)
        let pane = try Pane([
            try Fixtures.binary("plugvisor"), "status", "--watch", "--interval", "200ms", "--control",
            supervisor.controlPath,
        ])
        let first = try #require(pane.waitFor { Self.row("greeter", in: $0) != nil }, "\(pane.screen)")
        #expect(first.contains("plugvisor status, every 200ms; q quits"))
        #expect(Self.row("echo", in: first)?["STATE"] == "ready")

        // Calls while it watches: the count follows, and calls/s says they are happening now.
        let calling = Background {
            (0..<40).map { _ -> Int32 in
                Thread.sleep(forTimeInterval: 0.03)
                return supervisor.call("echo").status
            }
        }
        let busy = pane.waitFor {
            guard let echo = Self.row("echo", in: $0) else { return false }
            return (Double(echo["CALLS/S"] ?? "") ?? 0) > 1 && echo["ERRORS/S"] == "0.0"
        }
        #expect(busy != nil, "\(pane.screen)")
        #expect(calling.wait().allSatisfy { $0 == 0 })
        let settled = pane.waitFor {
            Self.row("echo", in: $0)?["CALLS"] == "40" && Self.row("echo", in: $0)?["CALLS/S"] == "0.0"
        }
        #expect(settled != nil, "\(pane.screen)")
        // In place: one table on the screen after many frames, not one below the other.
        #expect(pane.screen.components(separatedBy: "PLUGIN").count == 2, "\(pane.screen)")

        pane.tmux(["send-keys", "q"])
        let after = try #require(pane.waitFor { $0.contains("pane-done") }, "\(pane.screen)")
        #expect(after.contains("exited=0"), "\(after)")
        #expect(after.contains("icanon echo"), "the terminal is back in cooked mode: \(after)")
        #expect(!after.contains("PLUGIN"), "the alternate screen is gone: \(after)")
    }

    @Test func ctrlCQuitsCleanlyToo() throws {
        let supervisor = try RunningSupervisor(manifest: Self.manifest)
        let pane = try Pane([
            try Fixtures.binary("plugvisor"), "status", "--watch", "--control", supervisor.controlPath,
        ])
        #expect(pane.waitFor { Self.row("echo", in: $0) != nil } != nil, "\(pane.screen)")
        pane.tmux(["send-keys", "C-c"])
        let after = try #require(pane.waitFor { $0.contains("pane-done") }, "\(pane.screen)")
        #expect(after.contains("exited=0"), "\(after)")
        #expect(after.contains("icanon echo"), "\(after)")
    }

    @Test func aPipeGetsPlainTablesOneAfterAnother() throws {
        let supervisor = try RunningSupervisor(manifest: Self.manifest)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Fixtures.binary("plugvisor"))
        process.arguments = ["status", "--watch", "--interval", "100ms", "--control", supervisor.controlPath]
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = Pipe()
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = Background { output.fileHandleForReading.readDataToEndOfFile() }
        Thread.sleep(forTimeInterval: 1.0)
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let printed = String(decoding: text.wait(), as: UTF8.self)
        #expect(!printed.contains("\u{1b}"), "no terminal controls in a pipe")
        let tables = printed.components(separatedBy: "\n\n").filter { $0.hasPrefix("PLUGIN") }
        #expect(tables.count >= 4, "\(printed)")
        #expect(tables.allSatisfy { $0.contains("CALLS/S") && Self.row("echo", in: $0) != nil })

        let refused = supervisor.cli(["status", "--watch", "--interval", "10ms"])
        #expect(refused.status == 64)
        #expect(refused.stderr.contains("--interval '10ms' is not a duration of at least 100ms"), "\(refused.stderr)")
    }
}
