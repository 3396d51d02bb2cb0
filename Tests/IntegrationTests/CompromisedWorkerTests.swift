import Foundation
import Glibc
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// A compromised worker (Fixtures/fake-worker.py through PLUGVISOR_WORKER: the real handshake,
/// then lies) costs only its own calls: it is killed and replaced, its caller gets a typed error
/// within the call's timeout, and the supervisor and the other plugins go on. Plugins named
/// real-* run the real worker beside them.
@Suite(.serialized, .timeLimit(.minutes(5))) struct CompromisedWorkerTests {
    /// A supervisor whose workers are fake-worker.py, one plugin per misbehaviour in `plugins`
    /// (name: extra manifest keys), plus `real-echo`, a real worker.
    // SAFETY: immutable after init; RunningSupervisor is safe to drive from several threads.
    final class Harness: @unchecked Sendable {
        let supervisor: RunningSupervisor
        private let script: String

        init(_ plugins: [String: String], arguments: [String] = []) throws {
            script = try RunningSupervisor.fakePeer(
                script: "fake-worker.py", arguments: [try Fixtures.binary("plugvisor-worker")])
            var manifest = "plugins:\n  - {name: real-echo, wasm: \"{{plugins}}/echo.wasm\"}\n"
            for (name, keys) in plugins.sorted(by: { $0.key < $1.key }) {
                manifest += "  - {name: \(name), wasm: \"{{plugins}}/echo.wasm\"\(keys.isEmpty ? "" : ", " + keys)}\n"
            }
            supervisor = try RunningSupervisor(
                manifest: manifest, arguments: arguments, environment: ["PLUGVISOR_WORKER": script])
        }

        deinit { try? FileManager.default.removeItem(at: URL(fileURLWithPath: script).deletingLastPathComponent()) }

        func pids(_ plugin: String) -> [Int32] { (try? supervisor.plugin(plugin).workers.map(\.pid)) ?? [] }

        /// A call straight on the control socket, and how long the supervisor took to answer it.
        func timedCall(_ plugin: String, _ parameters: [String: JSONValue] = [:]) throws -> (ControlResponse, Duration)
        {
            let started = ContinuousClock.now
            let response = try supervisor.directCall(plugin, parameters)
            return (response, ContinuousClock.now - started)
        }

        /// The supervisor is up and a real worker still answers.
        func expectStillServing(sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(supervisor.process.isRunning, "\(supervisor.log)", sourceLocation: sourceLocation)
            let echo = supervisor.call("real-echo", "-p", "a=1")
            #expect(echo.status == 0, "\(echo.stderr) \(supervisor.log)", sourceLocation: sourceLocation)
        }

        /// The plugin's worker was replaced: the old pid is gone and a new one serves.
        func expectReplaced(_ plugin: String, was old: [Int32], sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(
                supervisor.eventually { old.allSatisfy { !processIsAlive($0) } },
                "worker \(old) of \(plugin) still alive", sourceLocation: sourceLocation)
            #expect(
                supervisor.eventually {
                    let now = pids(plugin)
                    return !now.isEmpty && Set(now).isDisjoint(with: old)
                },
                "\(plugin) was not given a new worker: \(pids(plugin))", sourceLocation: sourceLocation)
        }
    }

    /// The bound each hostile call must be answered within: its timeout plus a slack that a
    /// loaded two-core machine keeps (the measured overshoot is a few milliseconds).
    static let slack: Duration = .milliseconds(500)

    @Test func aWorkerClaimingMoreMemoryThanItsCapIsKilledAndMetricsStillSum() async throws {
        let harness = try Harness(["huge-memory": "instances: 2"], arguments: ["--http", "127.0.0.1:0"])
        let supervisor = harness.supervisor
        let address = try #require(
            supervisor.log.firstMatch(of: /HTTP gateway listening on (http:\/\/[0-9.]+:[0-9]+)/)?.1)
        let http = HTTPClient(base: String(address))
        let before = harness.pids("huge-memory")
        #expect(before.count == 2)
        // Both workers answer a call claiming 2^63-1 bytes; summed unchecked, /metrics trapped.
        for _ in 0..<2 {
            let (response, _) = try harness.timedCall("huge-memory")
            #expect(response.error?.code == .protocolViolation, "\(response)")
            #expect(
                response.error?.message.contains("9223372036854775807 bytes of guest memory") == true, "\(response)")
        }
        _ = try await http.metrics()
        harness.expectReplaced("huge-memory", was: before)
        _ = try await http.metrics()
        harness.expectStillServing()
    }

    @Test func aWorkerCannotClaimAnErrorOnlyTheSupervisorGives() throws {
        let harness = try Harness(["lying-code": ""])
        let before = harness.pids("lying-code")
        let (response, _) = try harness.timedCall("lying-code")
        #expect(response.error?.code == .protocolViolation, "\(response)")
        #expect(
            response.error?.message.contains("error code timeout, which only the supervisor gives") == true,
            "\(response)")
        // Claiming `timeout` once marked the worker dying while nothing killed it: kill then
        // skipped it and it lived on.
        harness.expectReplaced("lying-code", was: before)
        let replacement = harness.pids("lying-code")
        #expect(harness.supervisor.cli(["kill", "lying-code"]).status == 0)
        #expect(
            harness.supervisor.eventually { replacement.allSatisfy { !processIsAlive($0) } },
            "kill left \(replacement) alive")
        #expect(try harness.supervisor.plugin("lying-code").state == .stopped)
        harness.expectStillServing()
    }

    @Test func aWorkerThatStopsReadingCannotHoldItsCallerPastTheTimeout() throws {
        let harness = try Harness(["stops-reading": "timeout: 1s"])
        let before = harness.pids("stops-reading")
        // 4 MiB of context: more than the socket buffers hold, so the send itself blocks.
        let (response, elapsed) = try harness.timedCall(
            "stops-reading", ["big": .string(String(repeating: "x", count: 4 << 20))])
        #expect(response.error?.code == .timeout, "\(response)")
        // The call's clock starts once the supervisor has the request: the test's encoding and
        // the supervisor's decoding of 4 MiB of JSON (debug builds) come on top.
        #expect(elapsed < .seconds(1) + Self.slack + .seconds(2), "answered after \(elapsed)")
        harness.expectReplaced("stops-reading", was: before)
        harness.expectStillServing()
    }

    @Test func aWorkerFloodingHostRequestsCannotHoldItsCallerPastTheTimeout() throws {
        let harness = try Harness(["floods-host": "timeout: 1s"])
        let before = harness.pids("floods-host")
        let (response, elapsed) = try harness.timedCall("floods-host")
        #expect(response.error?.code == .timeout, "\(response)")
        #expect(elapsed < .seconds(1) + Self.slack, "answered after \(elapsed)")
        harness.expectReplaced("floods-host", was: before)
        harness.expectStillServing()
    }

    @Test func aWorkerThatHangsUpAndLingersIsKilled() throws {
        let harness = try Harness(["closes-channel": "timeout: 2s"])
        let before = harness.pids("closes-channel")
        let (response, elapsed) = try harness.timedCall("closes-channel")
        #expect(response.error?.code == .protocolViolation, "\(response)")
        #expect(
            response.error?.message.contains("closed its channel during a call without exiting") == true, "\(response)")
        #expect(elapsed < .seconds(2) + Self.slack, "answered after \(elapsed)")
        harness.expectReplaced("closes-channel", was: before)
        harness.expectStillServing()
    }

    @Test func aWorkersLogFloodIsBoundedByTheSupervisor() throws {
        let harness = try Harness(["log-flood": "timeout: 10s", "oversize-log": ""])
        let supervisor = harness.supervisor
        // Three seconds of log frames just under the ceiling, as fast as the worker can write.
        let (flood, took) = try harness.timedCall("log-flood")
        #expect(flood.result?["data"] == "from the fake worker", "\(flood)")
        let log = supervisor.log
        let floodLines = log.split(separator: "\n").filter { $0.contains("flood xxxx") }
        // The ceiling's bytes a second, each line cut to 4 KiB: about 48 lines a second, in as
        // many windows as the call's seconds began (plus one).
        let perWindow = LogBudget.guestCeiling.bytesPerSecond / LogLine.maxMessageBytes
        let windows = Int(took.components.seconds) + 2
        #expect(floodLines.count <= perWindow * windows, "\(floodLines.count) flood lines reached the log in \(took)")
        #expect(
            log.utf8.count < LogBudget.guestCeiling.bytesPerSecond * windows + 64 * 1024,
            "the log grew to \(log.utf8.count) bytes")
        #expect(floodLines.allSatisfy { $0.utf8.count < LogLine.maxMessageBytes + 512 })
        #expect(log.contains("guest log lines dropped by the supervisor (rate limit)"))

        let before = harness.pids("oversize-log")
        let (oversize, _) = try harness.timedCall("oversize-log")
        #expect(oversize.error?.code == .protocolViolation, "\(oversize)")
        #expect(
            oversize.error?.message.contains("over the \(WorkerFrameCeiling.log)-byte ceiling") == true, "\(oversize)")
        harness.expectReplaced("oversize-log", was: before)
        harness.expectStillServing()
    }

    @Test func aFrameOverItsStatesCeilingIsRefusedFromItsHeader() throws {
        let harness = try Harness(["giant-frame": "timeout: 5s"])
        let before = harness.pids("giant-frame")
        let (response, elapsed) = try harness.timedCall("giant-frame")
        // A call's answer may be 8 MiB and its envelope: a 16 MiB frame is refused unread.
        let ceiling = WorkerFrameCeiling.result(maxResultBytes: LoadRequest.defaultMaxResultBytes)
        #expect(response.error?.code == .protocolViolation, "\(response)")
        #expect(
            response.error?.message.contains("frame of 16777216 bytes exceeds the \(ceiling)-byte limit") == true,
            "\(response)")
        #expect(elapsed < .seconds(5))
        harness.expectReplaced("giant-frame", was: before)
        harness.expectStillServing()
    }

    @Test func theSupervisorsMemoryComesBackAfterABurstOfFramesAtTheirCeilings() throws {
        let harness = try Harness(["burst": "instances: 4, max_queue: 16, timeout: 20s"])
        let supervisor = harness.supervisor
        let pid = supervisor.process.processIdentifier
        // Warm up every path once (the gateway-less control server, a call on each worker).
        for _ in 0..<2 { _ = try harness.timedCall("real-echo") }
        let baseline = try #require(residentKiB(pid))
        var peak = baseline
        for _ in 0..<3 {
            let calls = (0..<4).map { _ in
                Background { (try? harness.timedCall("burst").0.result?["data"]?.stringValue?.utf8.count) ?? -1 }
            }
            for call in calls { #expect(call.wait() == 9 << 20) }
            peak = max(peak, residentKiB(pid) ?? 0)
        }
        // Every buffer that held a frame is given back: the supervisor ends near its baseline.
        var after = residentKiB(pid) ?? .max
        _ = supervisor.eventually(timeout: .seconds(5)) {
            after = residentKiB(pid) ?? .max
            return after < baseline + 32 * 1024
        }
        print("supervisor RSS: baseline \(baseline) KiB, peak \(peak) KiB, after \(after) KiB")
        #expect(after < baseline + 32 * 1024, "RSS \(baseline) KiB before, \(peak) KiB at peak, \(after) KiB after")
        harness.expectStillServing()
    }

    @Test func aStaleFrameFromAnIdleWorkerNeverFailsTheNextCaller() throws {
        let harness = try Harness(["stale-frame": "timeout: 5s"])
        let first = harness.pids("stale-frame")
        let (answered, _) = try harness.timedCall("stale-frame")
        #expect(answered.result?["data"] == "from the fake worker", "\(answered)")
        // The worker sent an extra result after its answer: the next caller is served by a
        // fresh worker instead of reading it.
        let (next, _) = try harness.timedCall("stale-frame")
        #expect(next.result?["data"] == "from the fake worker", "\(next)")
        harness.expectReplaced("stale-frame", was: first)
        #expect(harness.supervisor.log.contains("worker sent a frame while idle (protocol violation); it was killed"))
        harness.expectStillServing()
    }

    @Test func whatAWorkerWritesIsPrintedAsData() throws {
        let harness = try Harness(["escape-text": ""])
        let supervisor = harness.supervisor
        let (trapped, _) = try harness.timedCall("escape-text")
        #expect(trapped.error?.code == .trap, "\(trapped)")
        #expect(trapped.error?.message.hasPrefix("trapped \u{1b}]0;owned") == true, "data for machines, as it was")
        // The worker then exits: its stderr lines become the plugin's last error in status.
        #expect(supervisor.eventually { (try? supervisor.plugin("escape-text").restarts) ?? 0 >= 1 })
        let table = supervisor.cli(["status"])
        #expect(table.status == 0)
        for (what, text) in [("the text log", supervisor.log), ("status", table.stdout)] {
            #expect(
                !text.contains("\u{1b}") && !text.contains("\r") && !text.contains("\u{202e}"),
                "\(what) printed a control character: \(text.debugDescription)")
            let forged = text.split(separator: "\n").filter { $0.hasPrefix("2000-01-01T00:00:00+0000 critical") }
            #expect(forged.isEmpty, "\(what) has a forged line: \(forged)")
        }
        #expect(table.stdout.contains("1.0\\u{1b}]0;owned\\u{7}"), "\(table.stdout)")
        #expect(table.stdout.contains("last stderr: stderr \\u{1b}]0;owned"), "\(table.stdout)")
        #expect(supervisor.log.contains("guest \\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{1b}[31m\\r\\u{202e}\\n2000-01-01"))
        #expect(supervisor.log.contains("worker stderr: stderr \\u{1b}]0;owned"))
        harness.expectStillServing()
    }

    /// Resident memory of `pid`, from /proc.
    func residentKiB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return nil }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
}

/// A real guest, within the ABI, cannot forge log lines or drive the terminal either.
@Suite(.serialized, .timeLimit(.minutes(5))) struct GuestTextTests {
    @Test func aGuestsLogLineAndVersionArePrintedAsData() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: forges-logs, wasm: "{{plugins}}/forges-logs.wasm"}
                """)
        #expect(supervisor.call("forges-logs").json?["data"] == "logged")
        let table = supervisor.cli(["status"])
        #expect(table.status == 0)
        let log = supervisor.log
        for (what, text) in [("the text log", log), ("status", table.stdout)] {
            #expect(
                !text.contains("\u{1b}") && !text.contains("\r"),
                "\(what) printed a control character: \(text.debugDescription)")
            let forged = text.split(separator: "\n").filter { $0.hasPrefix("2000-01-01T00:00:00+0000 critical") }
            #expect(forged.isEmpty, "\(what) has a forged line: \(forged)")
        }
        #expect(
            log.contains(
                "hello\\n2000-01-01T00:00:00+0000 critical plugvisor.supervisor: plugin=good [Plugvisor] forged line\\u{1b}]0;owned\\u{7}"
            ),
            "\(log)")
        #expect(table.stdout.contains("1.0\\u{1b}]0;owned\\u{7}\\u{1b}[31m\\nforged"), "\(table.stdout)")
        // Machines get the text as it was, in JSON.
        #expect(try supervisor.plugin("forges-logs").version == "1.0\u{1b}]0;owned\u{7}\u{1b}[31m\nforged")
    }
}
