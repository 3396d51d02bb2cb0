import Foundation
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// `abi: wasi-command`: ordinary WASI programs as plugins, under the same sandbox.
@Suite(.serialized, .timeLimit(.minutes(5))) struct WasiCommandTests {
    @Test func aWasiCommandReadsTheContextOnStdinAndAnswersOnStdout() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - name: wc
                    wasm: "{{plugins}}/word-count.wasm"
                    abi: wasi-command
                    args: [wc, --fast]
                    env: {MODE: prod}
                  - {name: plain, wasm: "{{plugins}}/word-count.wasm", abi: wasi-command}
                """)
        let context = #"{"request_id":"r","headers":{},"parameters":{"text":"one two three"}}"#
        let output = supervisor.cli(["call", "wc", "--json", "-"], stdin: context)
        #expect(output.status == 0, "\(output.stderr)")
        let data = try #require(output.json?["data"])
        // The context the supervisor sends is the one given (keys sorted): its bytes and words.
        #expect(data["argv"] == ["wc", "--fast"])
        #expect(data["mode"] == "prod")
        // {"headers":{},"parameters":{"text":"one two three"},"request_id":"r"}: headers,
        // parameters, text, one, two, three, request, id, r.
        #expect(data["words"] == 9)
        #expect(supervisor.log.contains("word-count read"))
        // Without args, argv is the plugin's name; without env, the program sees none.
        let plain = supervisor.call("plain").json?["data"]
        #expect(plain?["argv"] == ["plain"])
        #expect(plain?["mode"] == .null)
        // Each call runs the program afresh.
        #expect(supervisor.cli(["call", "wc", "--json", "-"], stdin: context).json?["data"] == data)
    }

    @Test func aCommandThatExitsNonZeroOrPrintsNonJSONGetsAClearError() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: exit3, wasm: "{{plugins}}/exit-code.wasm", abi: wasi-command}
                  - {name: text, wasm: "{{plugins}}/prints-text.wasm", abi: wasi-command}
                  - {name: not-a-command, wasm: "{{plugins}}/echo.wasm", abi: wasi-command}
                  - {name: flood, wasm: "{{plugins}}/floods-stdout.wasm", abi: wasi-command, timeout: 30s}
                """)
        let exit3 = supervisor.call("exit3")
        #expect(exit3.status == 1)
        #expect(exit3.json == ["success": false, "error": "the program exited with code 3", "data": ["partial": true]])
        let text = supervisor.call("text")
        #expect(text.status == 2)
        #expect(text.error?.code == .invalidResult)
        #expect(text.error?.message.contains("hello, this is not JSON") == true)
        let flood = supervisor.call("flood")
        #expect(flood.error?.code == .invalidResult)
        #expect(flood.error?.message.contains("the program wrote more than 8388608 bytes") == true, "\(flood.stderr)")
        #expect(supervisor.call("exit3").status == 1, "the worker serves on")
        let notCommand = try supervisor.plugin("not-a-command")
        #expect(notCommand.state == .failed)
        #expect(notCommand.lastError?.contains("must export a _start function") == true)
    }

    @Test func aCommandThatPrintsAPluginResultIsTakenAtItsWord() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: answers, wasm: "{{plugins}}/answers-result.wasm", abi: wasi-command}
                """)
        let output = supervisor.call("answers")
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.json == ["success": true, "data": ["answer": 42]], "\(output.stdout)")
    }

    @Test func aCommandRunsSandboxed() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: wc, wasm: "{{plugins}}/word-count.wasm", abi: wasi-command}
                """)
        let pid = try #require(try supervisor.plugin("wc").workers.first?.pid)
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        #expect(status.contains("Seccomp:\t2"))
        #expect(supervisor.call("wc").status == 0)
    }
}

/// `unknown_imports: trap`: imports nothing grants are linked as traps instead of refused.
@Suite(.serialized, .timeLimit(.minutes(5))) struct UnknownImportsTests {
    @Test func anUnknownImportTrapsWhenCalledInsteadOfRefusingTheModule() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: lenient, wasm: "{{plugins}}/forbidden-import.wasm", unknown_imports: trap}
                  - {name: strict, wasm: "{{plugins}}/forbidden-import.wasm"}
                """)
        #expect(try supervisor.plugin("lenient").state == .ready)
        let call = supervisor.call("lenient")
        #expect(call.error?.code == .trap)
        #expect(call.error?.message.contains("called env.system, an import nothing grants") == true, "\(call.stderr)")
        #expect(try supervisor.plugin("lenient").workers.count == 1)  // a trap, not a crash
        #expect(try supervisor.plugin("strict").state == .failed)
    }
}
