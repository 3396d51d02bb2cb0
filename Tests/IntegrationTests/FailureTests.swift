import Foundation
import PlugvisorPosix
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// Plugins that misbehave end in a clear typed error while the supervisor and the others go on.
@Suite(.serialized, .timeLimit(.minutes(5))) struct FailureTests {
    @Test func aCallPastItsTimeoutKillsTheWorkerAndAFreshOneServesTheNextCall() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: sleepy, wasm: "{{plugins}}/spin-if-asked.wasm", timeout: 300ms}
                  - {name: echo, wasm: "{{plugins}}/echo.wasm"}
                """)
        let before = try #require(try supervisor.plugin("sleepy").workers.first?.pid)

        let started = ContinuousClock.now
        let timedOut = supervisor.call("sleepy", "-p", "mode=spin")
        let elapsed = ContinuousClock.now - started
        #expect(timedOut.status == 2)
        #expect(timedOut.error?.code == .timeout)
        #expect(timedOut.error?.plugin == "sleepy")
        #expect(elapsed < .seconds(5), "the caller waited \(elapsed)")
        #expect(supervisor.eventually { !processIsAlive(before) }, "the spinning worker \(before) is still alive")

        // The other plugin never noticed; the next call is served by a new worker.
        #expect(supervisor.call("echo").status == 0)
        let next = supervisor.call("sleepy", "-p", "mode=fast")
        #expect(next.status == 0, "\(next.stderr)")
        #expect(next.json?["data"] == "quick")
        let after = try #require(try supervisor.plugin("sleepy").workers.first?.pid)
        #expect(after != before)
        #expect(try supervisor.plugin("sleepy").errorsByCode["timeout"] == 1)
    }

    @Test func aTrapIsATypedErrorAndTheSameWorkerServesTheNextCall() throws {
        let supervisor = try RunningSupervisor(manifest: "plugins: [{name: trap, wasm: \"{{plugins}}/trap.wasm\"}]")
        let pid = try supervisor.plugin("trap").workers.first?.pid
        let trapped = supervisor.call("trap", "-p", "x=no")
        #expect(trapped.status == 2)
        #expect(trapped.error == PluginError(.trap, plugin: "trap", "unreachable"))
        let good = supervisor.call("trap", "-p", "x=ok")
        #expect(good.status == 0)
        #expect(good.json?["data"] == "survived")
        #expect(try supervisor.plugin("trap").workers.first?.pid == pid)
    }

    @Test func brokenAnswersAreTypedErrorsThatSayWhatIsWrong() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: bad-pointer, wasm: "{{plugins}}/bad-pointer.wasm"}
                  - {name: not-json, wasm: "{{plugins}}/not-json.wasm"}
                  - {name: legacy, wasm: "{{plugins}}/legacy-i32.wasm"}
                """)
        let pointer = supervisor.call("bad-pointer")
        #expect(pointer.error?.code == .invalidResult)
        #expect(pointer.error?.message.contains("outside the guest's 65536-byte memory") == true)
        let notJSON = supervisor.call("not-json", "--request-id", "ab")
        #expect(notJSON.error?.code == .invalidResult)
        #expect(supervisor.call("legacy").json?["data"] == ["abi": "i32", "brace": "}"])
        #expect(try supervisor.plugin("bad-pointer").state == .ready)
    }

    @Test func aPluginThatCannotLoadIsFailedWhileTheOthersServe() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: broken, wasm: "{{plugins}}/no-execute.wasm"}
                  - {name: echo, wasm: "{{plugins}}/echo.wasm"}
                """)
        let broken = try supervisor.plugin("broken")
        #expect(broken.state == .failed)
        #expect(broken.lastError?.contains("missing export: execute") == true)
        let call = supervisor.call("broken")
        #expect(call.status == 2)
        #expect(call.error?.code == .loadFailed)
        #expect(supervisor.call("echo").status == 0)
        #expect(supervisor.log.contains("plugin broken failed to load: missing export: execute"))
    }

    @Test func strictModeRefusesToRunWithAPluginThatCannotLoad() throws {
        #expect {
            try RunningSupervisor(
                manifest: """
                    plugins:
                      - {name: broken, wasm: "{{plugins}}/no-execute.wasm"}
                      - {name: echo, wasm: "{{plugins}}/echo.wasm"}
                    """, arguments: ["--strict"])
        } throws: { error in
            "\(error)".contains("exited with 1") && "\(error)".contains("--strict")
        }
    }

    @Test func aShaPinThatDoesNotMatchRefusesTheModule() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - name: pinned
                    wasm: "{{plugins}}/echo.wasm"
                    sha256: "\(String(repeating: "0", count: 64))"
                """)
        let pinned = try supervisor.plugin("pinned")
        #expect(pinned.state == .failed)
        #expect(pinned.lastError?.contains("the manifest pins 0000") == true)
    }

    @Test func garbageOnTheControlSocketDoesNotHurtTheSupervisor() throws {
        let supervisor = try RunningSupervisor(manifest: "plugins: [{name: echo, wasm: \"{{plugins}}/echo.wasm\"}]")
        for hostile in [
            [0xFF, 0xFF, 0xFF, 0xFF], [0, 0, 0, 5] + Array("{{{{{".utf8), [0, 0, 0, 2] + Array("[]".utf8),
        ] as [[UInt8]] {
            let socket = try PlugvisorPosix.Descriptors.connectUnix(path: supervisor.controlPath)
            let channel = PlugvisorPosix.FrameChannel(descriptor: socket)
            try channel.writeAll(hostile)
            let answer = try? channel.receive(ControlResponse.self, deadline: .now + .seconds(5))
            #expect(answer?.error?.code == .badRequest)
        }
        #expect(supervisor.call("echo").status == 0)
    }
}
