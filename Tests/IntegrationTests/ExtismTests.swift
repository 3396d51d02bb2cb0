import Foundation
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// `abi: extism`: Extism's own plugins (`../shared/extism`, built by its PDKs), unmodified, each in
/// a plugvisor worker with plugvisor's kernel; expectations from Extism's own tests.
@Suite(.serialized, .timeLimit(.minutes(5))) struct ExtismTests {
    /// `plugvisor call NAME --function F --input TEXT`.
    static func call(
        _ supervisor: RunningSupervisor, _ plugin: String, _ function: String, _ input: String = ""
    ) -> ProcessRunner.Output {
        supervisor.call(plugin, "--function", function, "--input", input)
    }

    @Test func pluginsOfEveryPDKAnswerAsExtismsOwnTestsExpect() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: rust, wasm: "{{extism}}/rust/count_vowels.wasm", abi: extism}
                  - {name: rust-small, wasm: "{{extism}}/rust/count_vowels_small.wasm", abi: extism}
                  - {name: kv, wasm: "{{extism}}/rust/count_vowels_kv.wasm", abi: extism}
                  - {name: kv-lo, wasm: "{{extism}}/rust/count_vowels_kv.wasm", abi: extism, config: {vowels: lo}}
                  - {name: c-hello, wasm: "{{extism}}/c/hello.wasm", abi: extism}
                  - {name: c-alloc, wasm: "{{extism}}/c/alloc.wasm", abi: extism, timeout: 60s}
                  - {name: globals, wasm: "{{extism}}/c/globals.wasm", abi: extism}
                  - {name: tinygo-config, wasm: "{{extism}}/go/config.wasm", abi: extism, config: {thing: hello}}
                  - {name: tinygo-unset, wasm: "{{extism}}/go/config.wasm", abi: extism}
                  - {name: replace, wasm: "{{extism}}/go/replace.wasm", abi: extism}
                  - {name: go-std, wasm: "{{extism}}/go/count_vowels_std.wasm", abi: extism, timeout: 30s}
                  - {name: haskell, wasm: "{{extism}}/haskell/hello_haskell.wasm", abi: extism, config: {greeting: Howdy}, timeout: 30s}
                  - {name: echo, wasm: "{{extism}}/wat/echo.wasm", abi: extism}
                  - {name: offset, wasm: "{{extism}}/wat/input_offset.wasm", abi: extism}
                  - {name: consume, wasm: "{{extism}}/wat/consume.wasm", abi: extism}
                """)
        func output(_ plugin: String, _ function: String, _ input: String = "") -> String {
            let answer = Self.call(supervisor, plugin, function, input)
            #expect(answer.status == 0, "\(plugin).\(function): \(answer.stderr)")
            return answer.stdout
        }
        #expect(output("rust", "count_vowels", "Hello, World!") == #"{"count":3}"#)
        #expect(output("rust", "count_vowels") == #"{"count":0}"#)
        #expect(output("rust-small", "count_vowels", "Hello, World!") == #"{"count":3}"#)
        // Vars live as long as the worker: the total grows from call to call.
        #expect(output("kv", "count_vowels", "Hello, World!") == #"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#)
        #expect(output("kv", "count_vowels", "Hello, World!") == #"{"count":3,"total":6,"vowels":"aeiouAEIOU"}"#)
        #expect(output("kv-lo", "count_vowels", "Hello, World!") == #"{"count":5,"total":5,"vowels":"lo"}"#)
        #expect(output("c-hello", "run_test") == "Hello, world!")
        #expect(output("c-alloc", "run_test") == "")
        // One instance serves call after call: its globals count on.
        #expect(output("globals", "globals") == #"{"count": 0}"#)
        #expect(output("globals", "globals") == #"{"count": 1}"#)
        #expect(output("tinygo-config", "run_test") == #"{"config": "hello"}"#)
        #expect(output("tinygo-unset", "run_test") == #"{"config": "<unset by host>"}"#)
        #expect(output("replace", "run_test", "this is a test") == "this is a wasm")
        // A `_start` plugin gets a fresh instance for every call.
        let std = #"{"count": 1, "config": "<unset by host>", "a": "this is var a"}"#
        #expect(output("go-std", "_start", "ben") == std)
        #expect(output("go-std", "_start", "ben") == std)
        #expect(output("haskell", "testing", "John") == "Howdy, John")
        #expect(output("echo", "echo", "Hello, World! and more") == "Hello, World! and more")
        #expect(Array(output("offset", "input_offset_length", "Hello, World!").utf8) == [13, 0, 0, 0, 0, 0, 0, 0])
        #expect(output("consume", "consume", "whatever it is") == "")
        // Large input through stdin, bytes as they are.
        let large = String(repeating: "abcdefghij", count: 7_000)
        let echoed = supervisor.cli(["call", "echo", "--function", "echo", "--input", "-"], stdin: large)
        #expect(echoed.status == 0, "\(echoed.stderr)")
        #expect(echoed.stdout == large)
    }

    @Test func aPluginsOwnFailureIsAPluginFailureWithItsMessage() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: fail, wasm: "{{extism}}/c/fail.wasm", abi: extism}
                  - {name: exit500, wasm: "{{extism}}/go/exit.wasm", abi: extism, config: {code: "500"}}
                  - {name: exit0, wasm: "{{extism}}/go/exit.wasm", abi: extism, config: {code: "-1"}}
                  - {name: unreachable, wasm: "{{extism}}/c/unreachable.wasm", abi: extism}
                  - {name: novars, wasm: "{{extism}}/go/var.wasm", abi: extism, vars: "0"}
                """)
        let fail = Self.call(supervisor, "fail", "run_test")
        #expect(fail.status == 1)
        #expect(fail.error == PluginError(.pluginFailed, plugin: "fail", "Some error message"))
        let exit500 = Self.call(supervisor, "exit500", "_start")
        #expect(exit500.status == 1)
        #expect(exit500.error?.message == "_start exited with code 500")
        // proc_exit(-1) is code 0xffffffff, not success.
        #expect(Self.call(supervisor, "exit0", "_start").error?.message == "_start exited with code 4294967295")
        // A trap is a trap, and the plugin serves on with a fresh instance.
        let trap = Self.call(supervisor, "unreachable", "do_unreachable")
        #expect(trap.status == 2)
        #expect(trap.error?.code == .trap)
        #expect(trap.error?.message.contains("unreachable") == true, "\(trap.stderr)")
        #expect(Self.call(supervisor, "unreachable", "do_unreachable").error?.code == .trap)
        let novars = Self.call(supervisor, "novars", "run_test")
        #expect(
            novars.error?.message.contains("vars are disabled for this plugin (vars: 0 in the manifest)") == true,
            "\(novars.stderr)")
        #expect(try supervisor.plugin("fail").restarts == 0, "a plugin failure is not a crash")
    }

    @Test func callsNameAFunctionAndMistakesSayWhatToCall() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: vowels, wasm: "{{extism}}/rust/count_vowels.wasm", abi: extism}
                  - {name: echo, wasm: "{{plugins}}/echo.wasm"}
                """)
        let noFunction = supervisor.call("vowels")
        #expect(noFunction.status == 2)
        #expect(noFunction.error?.code == .badRequest)
        #expect(
            noFunction.error?.message.contains("plugvisor call vowels --function count_vowels") == true,
            "\(noFunction.stderr)")
        let unknown = Self.call(supervisor, "vowels", "count_consonants")
        #expect(unknown.error?.message == #"vowels has no function "count_consonants" to call (it has count_vowels)"#)
        let wrongABI = Self.call(supervisor, "echo", "execute")
        #expect(wrongABI.status == 2)
        let inspect = ProcessRunner.run([
            try Fixtures.binary("plugvisor"), "inspect",
            Fixtures.extismDirectory.appendingPathComponent("rust/count_vowels_kv.wasm").path,
        ])
        #expect(inspect.stdout.contains("ABI: extism"), "\(inspect.stdout)")
        #expect(inspect.stdout.contains("functions to call (plugvisor call NAME --function F): count_vowels"))
        #expect(inspect.stdout.contains("capabilities needed: config, vars"), "\(inspect.stdout)")
    }

    @Test func theGatewayCallsAFunctionWithTheBodyAndTypesTheOutput() async throws {
        let (supervisor, http) = try GatewayTests.start(
            """
            plugins:
              - {name: vowels, wasm: "{{extism}}/rust/count_vowels.wasm", abi: extism}
              - {name: hello, wasm: "{{extism}}/c/hello.wasm", abi: extism}
              - {name: fail, wasm: "{{extism}}/c/fail.wasm", abi: extism}
            """)
        _ = supervisor
        let json = try await http.send(
            "POST", "/v1/plugins/vowels/functions/count_vowels", body: Data("Hello, World!".utf8))
        #expect(json.status == 200)
        #expect(json.text == #"{"count":3}"#)
        #expect(json.header("Content-Type") == "application/json")
        let text = try await http.send("POST", "/v1/plugins/hello/functions/run_test")
        #expect(text.text == "Hello, world!")
        #expect(text.header("Content-Type") == "application/octet-stream")
        let failed = try await http.send("POST", "/v1/plugins/fail/functions/run_test")
        #expect(failed.status == 500)
        #expect(failed.error == PluginError(.pluginFailed, plugin: "fail", "Some error message"))
        let unknown = try await http.send("POST", "/v1/plugins/nobody/functions/run_test")
        #expect(unknown.status == 404)
    }

    @Test func logsGoToThePluginsLogAtTheirLevelsAndGetLogLevelAnswersTheSupervisors() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: log, wasm: "{{extism}}/go/log.wasm", abi: extism}
                """, arguments: ["--log-level", "warning"])
        #expect(Self.call(supervisor, "log", "run_test").status == 0)
        #expect(supervisor.eventually { supervisor.log.contains("this is an error log") })
        #expect(supervisor.log.contains("this is a warning log"))
        #expect(!supervisor.log.contains("this is an info log"))
        #expect(!supervisor.log.contains("this is a debug log"))
    }

    @Test func hostileExtismPluginsEndInTypedErrorsAndTheWorkerServesOn() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: hostile, wasm: "{{plugins}}/extism-hostile.wasm", abi: extism, memory: 8MiB, timeout: 2s}
                  - {name: fueled, wasm: "{{plugins}}/extism-hostile.wasm", abi: extism, fuel: 5000000}
                  - {name: roomy, wasm: "{{plugins}}/extism-hostile.wasm", abi: extism}
                  - {name: kernel-memory, wasm: "{{plugins}}/extism-kernel-memory.wasm", abi: extism}
                  - {name: host-function, wasm: "{{extism}}/rust/host_function.wasm", abi: extism}
                  - {name: host-function-trap, wasm: "{{extism}}/rust/host_function.wasm", abi: extism, unknown_imports: trap}
                  - {name: loop, wasm: "{{extism}}/rust/loop_forever.wasm", abi: extism, fuel: 5000000}
                """)
        let badOutput = Self.call(supervisor, "hostile", "bad_output")
        #expect(badOutput.error?.code == .invalidResult)
        #expect(badOutput.error?.message.contains("outside the kernel's") == true, "\(badOutput.stderr)")
        let grow = Self.call(supervisor, "hostile", "grow")
        #expect(grow.error?.code == .outOfMemory, "\(grow.stderr)")
        #expect(grow.error?.message.contains("memory budget of 8192 KiB") == true)
        let bigError = Self.call(supervisor, "hostile", "big_error")
        #expect(bigError.status == 2 || bigError.status == 1)
        // 32 MiB do not fit an 8 MiB budget: that is the answer, not a 32 MiB message.
        #expect(bigError.error?.code == .outOfMemory, "\(bigError.stderr)")
        // With room for it, a 32 MiB error message: only its head is read and passed on.
        let roomyError = Self.call(supervisor, "roomy", "big_error")
        #expect(roomyError.status == 1)
        #expect(roomyError.error?.code == .pluginFailed)
        #expect(roomyError.error?.message.hasPrefix("E") == true)
        #expect(roomyError.error?.message.hasSuffix("… (33554432 bytes, cut)") == true)
        #expect(roomyError.stderr.utf8.count < 512 << 10, "\(roomyError.stderr.utf8.count) bytes")
        let forged = Self.call(supervisor, "hostile", "forged_handle")
        #expect(forged.error?.code == .trap)
        #expect(forged.error?.message.contains("is not a block of the kernel") == true, "\(forged.stderr)")
        let flood = Self.call(supervisor, "hostile", "flood")
        #expect(flood.status == 0, "\(flood.stderr)")
        #expect(supervisor.eventually { supervisor.log.contains("guest log lines dropped (rate limit)") })
        let spin = Self.call(supervisor, "hostile", "spin")
        #expect(spin.error?.code == .timeout)
        #expect(Self.call(supervisor, "fueled", "spin").error?.code == .outOfFuel)
        // The host's own kernel calls do not spend the plugin's fuel: the next call works.
        #expect(Self.call(supervisor, "fueled", "bad_output").error?.code == .invalidResult)
        let loop = Self.call(supervisor, "loop", "loop_forever")
        #expect(loop.error?.code == .outOfFuel, "\(loop.stderr)")
        #expect(Self.call(supervisor, "hostile", "bad_output").error?.code == .invalidResult, "serves on")

        let kernelMemory = try supervisor.plugin("kernel-memory")
        #expect(kernelMemory.state == .failed)
        #expect(
            kernelMemory.lastError?.contains("imports memory extism:host/env.memory: only functions are imported")
                == true,
            "\(kernelMemory.lastError ?? "")")
        let hostFunction = try supervisor.plugin("host-function")
        #expect(hostFunction.state == .failed)
        #expect(
            hostFunction.lastError?.contains("imports the host function extism:host/user.hello_world (i64) -> i64")
                == true,
            "\(hostFunction.lastError ?? "")")
        let trapped = Self.call(supervisor, "host-function-trap", "count_vowels", "Hello")
        #expect(trapped.error?.code == .trap)
        #expect(trapped.error?.message.contains("extism:host/user.hello_world") == true, "\(trapped.stderr)")
    }

    @Test func modulesLinkedByNameServeThePluginsImports() throws {
        let manifest = """
            plugins:
              - {name: main, wasm: "{{extism}}/go/main.wasm", abi: extism, modules: {lib: "{{extism}}/go/lib.wasm"}}
              - {name: reflect, wasm: "{{extism}}/rust/reflect.wasm", abi: extism, modules: {"extism:host/user": "{{extism}}/wat/upper.wasm"}}
              - {name: unlinked, wasm: "{{extism}}/go/main.wasm", abi: extism}
            """
        let supervisor = try RunningSupervisor(manifest: manifest)
        let main = Self.call(supervisor, "main", "run_test", "benjamin")
        #expect(main.status == 0, "\(main.stderr)")
        #expect(main.stdout == "Hello, BENJAMIN")
        #expect(Self.call(supervisor, "reflect", "reflect", "Hello, world!").stdout == "HELLO, WORLD!")
        let unlinked = try supervisor.plugin("unlinked")
        #expect(unlinked.state == .failed)
        #expect(
            unlinked.lastError?.contains(
                "imports func lib.capitalize, which is neither WASI nor extism:host/env: refused (a module of that name is linked with `modules: {lib: FILE.wasm}`)"
            ) == true, "\(unlinked.lastError ?? "")")
        // validate checks each module knowing what is linked beside it.
        let validate = ProcessRunner.run([try Fixtures.binary("plugvisor"), "validate", supervisor.manifestPath])
        #expect(validate.status == 1)
        #expect(validate.stdout.contains("plugin unlinked"))
        #expect(!validate.stdout.contains("plugin main"), "\(validate.stdout)")
        #expect(!validate.stdout.contains("plugin reflect"), "\(validate.stdout)")
    }

    @Test func wasiFileAccessHasTheSameGrantsAsAnyPlugin() throws {
        let data = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: data) }
        try "hello world!".write(to: data.appendingPathComponent("test.txt"), atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: data.path)
        try FileManager.default.setAttributes(
            [.posixPermissions: 0o666], ofItemAtPath: data.appendingPathComponent("test.txt").path)
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - name: fs
                    wasm: "{{extism}}/go/fs.wasm"
                    abi: extism
                    filesystem: [{host: "\(data.path)", guest: /mnt, mode: rw}]
                  - name: readonly
                    wasm: "{{extism}}/rust/read_write.wasm"
                    abi: extism
                    config: {path: /data/test.txt}
                    filesystem: [{host: "\(data.path)", guest: /data, mode: ro}]
                  - name: ungranted
                    wasm: "{{extism}}/rust/read_write.wasm"
                    abi: extism
                    config: {path: /data/test.txt}
                """)
        let read = Self.call(supervisor, "readonly", "try_read")
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout == "hello world!")
        #expect(Self.call(supervisor, "readonly", "try_write", "overwritten").status == 1, "a read-only grant")
        #expect(Self.call(supervisor, "ungranted", "try_read").status != 0, "no grant, no file")
        let fs = Self.call(supervisor, "fs", "run_test")
        #expect(fs.status == 0, "\(fs.stderr)")
        #expect(fs.stdout == "hello world!")
    }

    @Test func httpRequestGoesThroughTheBrokerWithinAllowedHosts() throws {
        let server = try NetworkTests.LoopbackServer()
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: get, wasm: "{{extism}}/rust/http_get.wasm", abi: extism, network: {allowed_hosts: ["\(server.allowed)"]}}
                  - {name: denied, wasm: "{{extism}}/rust/http_get.wasm", abi: extism}
                """)
        let request = #"{"url": "\#(server.url("hello"))", "method": "GET", "headers": {}}"#
        let got = Self.call(supervisor, "get", "http_get", request)
        #expect(got.status == 0, "\(got.stderr)")
        #expect(got.stdout == "hello from the host")
        let denied = Self.call(supervisor, "denied", "http_get", request)
        #expect(denied.status != 0)
        #expect(
            denied.error?.message.contains("network access is not granted to this plugin") == true, "\(denied.stderr)")
    }
}
