import Foundation
import Logging
import Plugvisor
import PlugvisorManifest
import PlugvisorProtocol
import PlugvisorTestSupport
import Synchronization
import Testing

/// Host functions: plugins call back into the program that embeds plugvisor. This test is that
/// program: it gives the functions, the real worker binary runs Extism's own plugins.
@Suite(.serialized, .timeLimit(.minutes(5))) struct HostFunctionTests {
    static func extism(_ name: String, _ file: String, grants: [String], timeout: Duration = .seconds(5)) -> PluginSpec
    {
        var spec = PluginSpec(name: name, wasm: Fixtures.extismDirectory.appendingPathComponent(file).path)
        spec.abi = .extism
        spec.hostFunctions = grants
        spec.timeout = timeout
        return spec
    }

    static func supervisor(_ specs: [PluginSpec], _ functions: [HostFunction]) throws -> Supervisor {
        let configuration = SupervisorConfiguration(
            workerExecutable: try Fixtures.binary("plugvisor-worker"), watchFiles: false,
            brokerExecutable: try Fixtures.binary("plugvisor-broker"))
        var logger = Logger(label: "plugvisor.test")
        logger.logLevel = .critical
        return Supervisor(
            manifest: Manifest(plugins: specs, path: ""), configuration: configuration, hostFunctions: functions,
            logger: logger)
    }

    static let identity = HostFunction(name: "hello_world") { call in call.input }
    static let upper = HostFunction(name: "host_reflect") { call in
        Array(String(decoding: call.input, as: UTF8.self).uppercased().utf8)
    }
    static let mult = HostFunction(name: "mult") { call in
        // Go's mult(i64, i64) -> i64: two little-endian integers in, one out.
        let a = call.input.prefix(8).reversed().reduce(0) { $0 << 8 | UInt64($1) }
        let b = call.input.dropFirst(8).prefix(8).reversed().reduce(0) { $0 << 8 | UInt64($1) }
        return withUnsafeBytes(of: (a &* b).littleEndian, Array.init)
    }

    @Test func extismsPluginsCallTheFunctionsTheProgramGives() async throws {
        let supervisor = try Self.supervisor(
            [
                Self.extism("rust", "rust/host_function.wasm", grants: ["hello_world"]),
                Self.extism("c", "c/code-functions.wasm", grants: ["hello_world"]),
                Self.extism("reflect", "rust/reflect.wasm", grants: ["host_reflect"]),
                Self.extism("go", "go/host.wasm", grants: ["mult"]),
            ], [Self.identity, Self.upper, Self.mult])
        await supervisor.start()
        func call(_ plugin: String, _ function: String, _ input: String) async throws -> String {
            String(
                decoding: try await supervisor.call(plugin: plugin, function: function, input: Array(input.utf8)),
                as: UTF8.self)
        }
        #expect(try await call("rust", "count_vowels", "Hello, World!") == #"{"count":3}"#)
        #expect(try await call("c", "count_vowels", "Hello, World!") == #"{"count": 3}"#)
        #expect(try await call("reflect", "reflect", "Hello, world!") == "HELLO, WORLD!")
        let large = String(repeating: "x", count: 70_000)
        #expect(try await call("reflect", "reflect", large) == large.uppercased())
        #expect(try await call("go", "run_test", "") == "42 x 2 = 84")
        await supervisor.shutdown()
    }

    @Test func plugvisorABIPluginsCallThemWithHostCall() async throws {
        let kvGet = HostFunction(name: "kv_get") { call in
            guard call.input == Array("greeting".utf8) else { throw HostFunctionError("no such key") }
            return Array("hello from \(call.plugin)".utf8)
        }
        let secret = HostFunction(name: "secret") { _ in Array("the secret".utf8) }
        var spec = PluginSpec(name: "shop", wasm: try Fixtures.plugin("kit-c-host-call"))
        spec.hostFunctions = ["kv_get"]
        var swift = PluginSpec(name: "swift-shop", wasm: try Fixtures.plugin("kit-swift-probe"))
        swift.hostFunctions = ["kv_get"]
        let supervisor = try Self.supervisor([spec, swift], [kvGet, secret])
        await supervisor.start()
        func call(_ function: String, _ input: String) async throws -> JSONValue {
            try await supervisor.execute(
                plugin: "shop",
                context: PluginContext(parameters: ["function": .string(function), "input": .string(input)]))
        }
        let found = try await call("kv_get", "greeting")
        #expect(found["data"] == ["answer": "hello from shop", "length": 15], "\(found)")
        let missing = try await call("kv_get", "colour")
        #expect(missing["success"] == false)
        #expect(missing["error"] == "host function kv_get failed: no such key", "\(missing)")
        let ungranted = try await call("secret", "")
        #expect(
            ungranted["error"] == #"host function secret failed: host function "secret" is not granted to this plugin"#,
            "\(ungranted)")
        // The Swift kit's hostCall.
        let fromSwift = try await supervisor.execute(
            plugin: "swift-shop",
            context: PluginContext(parameters: ["host_function": "kv_get", "input": "greeting"]))
        #expect(fromSwift["data"] == ["answer": "hello from swift-shop"], "\(fromSwift)")
        let swiftMissing = try await supervisor.execute(
            plugin: "swift-shop", context: PluginContext(parameters: ["host_function": "kv_get", "input": "colour"]))
        #expect(swiftMissing["error"] == "host function kv_get failed: no such key", "\(swiftMissing)")
        await supervisor.shutdown()
    }

    /// A host function may call another plugin: the calling plugin's worker waits in its host
    /// call while a worker of the other plugin answers.
    @Test func aHostFunctionCanCallAnotherPlugin() async throws {
        let box = Mutex<Supervisor?>(nil)
        let askVowels = HostFunction(name: "hello_world") { call in
            guard let supervisor = box.withLock({ $0 }) else { throw HostFunctionError("no supervisor yet") }
            // The plugin hands over its JSON; the other plugin counts the vowels of a text instead.
            _ = call.input
            return try await supervisor.call(
                plugin: "vowels", function: "count_vowels", input: Array("aeiou and more".utf8))
        }
        let supervisor = try Self.supervisor(
            [
                Self.extism("caller", "rust/host_function.wasm", grants: ["hello_world"]),
                Self.extism("vowels", "rust/count_vowels.wasm", grants: []),
            ], [askVowels])
        box.withLock { $0 = supervisor }
        await supervisor.start()
        let output = try await supervisor.call(plugin: "caller", function: "count_vowels", input: Array("x".utf8))
        #expect(String(decoding: output, as: UTF8.self) == #"{"count":8}"#)  // "aeiou and more", not "x"
        await supervisor.shutdown()
    }

    /// A guest calling a host function in a tight loop: every call is served, the guest's call
    /// stays within its timeout, and a flood past it ends as a timeout, not a stuck supervisor.
    @Test func aGuestFloodingAHostFunctionIsBoundedByItsTimeout() async throws {
        let calls = Mutex(0)
        let counting = HostFunction(name: "hello_world") { _ in
            calls.withLock { $0 += 1 }
            return []
        }
        var roomy = PluginSpec(name: "roomy", wasm: try Fixtures.plugin("extism-host-flood"))
        roomy.abi = .extism
        roomy.hostFunctions = ["hello_world"]
        roomy.timeout = .seconds(60)
        var tight = roomy
        tight.name = "tight"
        tight.timeout = .milliseconds(100)
        let supervisor = try Self.supervisor([roomy, tight], [counting])
        await supervisor.start()
        _ = try await supervisor.call(plugin: "roomy", function: "flood", input: [])
        #expect(calls.withLock { $0 } == 3000)
        let started = ContinuousClock.now
        do {
            _ = try await supervisor.call(plugin: "tight", function: "flood", input: [])
            Issue.record("3,000 host calls fitted in 100 ms; the test needs a longer flood")
        } catch {
            #expect(error.code == .timeout, "\(error)")
        }
        #expect(started.duration(to: .now) < .seconds(3))
        _ = try await supervisor.call(plugin: "roomy", function: "flood", input: [])
        await supervisor.shutdown()
    }

    /// A compromised worker asking for a function its plugin is not granted gets a refusal from
    /// the supervisor: the function never runs.
    @Test func theSupervisorChecksTheGrantNotTheWorker() async throws {
        let ran = Mutex(false)
        let secret = HostFunction(name: "secret") { _ in
            ran.withLock { $0 = true }
            return Array("the secret".utf8)
        }
        let fakeWorker = try RunningSupervisor.fakePeer(
            script: "fake-worker.py", arguments: [try Fixtures.binary("plugvisor-worker")])
        let configuration = SupervisorConfiguration(
            workerExecutable: fakeWorker, watchFiles: false, brokerExecutable: try Fixtures.binary("plugvisor-broker"))
        var logger = Logger(label: "plugvisor.test")
        logger.logLevel = .critical
        let supervisor = Supervisor(
            manifest: Manifest(
                plugins: [PluginSpec(name: "forges-host-function", wasm: try Fixtures.plugin("echo"))], path: ""),
            configuration: configuration, hostFunctions: [secret], logger: logger)
        await supervisor.start()
        let answer = try await supervisor.execute(plugin: "forges-host-function", context: [:])
        #expect(answer["data"] == ["error": #"host function "secret" is not granted to this plugin"#], "\(answer)")
        #expect(ran.withLock { $0 } == false)
        await supervisor.shutdown()
    }

    @Test func grantsRefusalsErrorsAndTimeouts() async throws {
        let failing = HostFunction(name: "host_reflect") { _ in throw HostFunctionError("the store is closed") }
        let hanging = HostFunction(name: "hello_world") { _ in
            try await Task.sleep(for: .seconds(30))
            return []
        }
        let supervisor = try Self.supervisor(
            [
                Self.extism("ungranted", "rust/host_function.wasm", grants: []),
                Self.extism("missing", "rust/host_function.wasm", grants: ["nobody_gives_this"]),
                Self.extism("failing", "rust/reflect.wasm", grants: ["host_reflect"]),
                Self.extism("hanging", "rust/host_function.wasm", grants: ["hello_world"], timeout: .milliseconds(800)),
            ], [failing, hanging])
        await supervisor.start()
        let status = supervisor.status().plugins
        let ungranted = try #require(status.first { $0.name == "ungranted" })
        #expect(ungranted.state == .failed)
        #expect(ungranted.lastError?.contains("extism:host/user.hello_world") == true, "\(ungranted.lastError ?? "")")
        #expect(ungranted.lastError?.contains("host_functions") == true, "\(ungranted.lastError ?? "")")
        let missing = try #require(status.first { $0.name == "missing" })
        #expect(missing.state == .failed)
        #expect(
            missing.lastError?.contains(
                "host_functions grants nobody_gives_this, which the program running plugvisor does not provide")
                == true,
            "\(missing.lastError ?? "")")
        do {
            _ = try await supervisor.call(plugin: "failing", function: "reflect", input: Array("x".utf8))
            Issue.record("a failing host function failed no call")
        } catch {
            #expect(error.message.contains("host function host_reflect failed: the store is closed"), "\(error)")
        }
        let started = ContinuousClock.now
        do {
            _ = try await supervisor.call(plugin: "hanging", function: "count_vowels", input: Array("x".utf8))
            Issue.record("a hanging host function did not time out")
        } catch {
            #expect(error.code == .timeout, "\(error)")
        }
        #expect(started.duration(to: .now) < .seconds(5))
        // The plugin serves on with a fresh worker; the failing one with the same.
        do {
            _ = try await supervisor.call(plugin: "failing", function: "reflect", input: Array("y".utf8))
        } catch {
            #expect(error.message.contains("the store is closed"))
        }
        await supervisor.shutdown()
    }

    /// A host function calling the plugin that called it: the call is never given to the worker
    /// that waits for the function (it would wait for itself until the timeout). With one
    /// instance it is refused at once; with two, the other worker answers.
    @Test func aHostFunctionCallingItsOwnPluginNeverWaitsForItself() async throws {
        let box = Mutex<Supervisor?>(nil)
        let nested = Mutex<Result<String, PluginError>?>(nil)
        let hostCalls = Mutex(0)
        let callBack = HostFunction(name: "hello_world") { call in
            guard let supervisor = box.withLock({ $0 }) else { throw HostFunctionError("no supervisor yet") }
            // The first one calls the plugin again; that call's own host call just answers.
            guard
                hostCalls.withLock({
                    $0 += 1
                    return $0
                }) == 1
            else { return call.input }
            do throws(PluginError) {
                let output = try await supervisor.call(
                    plugin: call.plugin, function: "count_vowels", input: Array("inner".utf8))
                nested.withLock { $0 = .success(String(decoding: output, as: UTF8.self)) }
            } catch {
                nested.withLock { $0 = .failure(error) }
            }
            return call.input
        }
        var twice = Self.extism("twice", "rust/host_function.wasm", grants: ["hello_world"])
        twice.instances = 2
        let supervisor = try Self.supervisor(
            [Self.extism("once", "rust/host_function.wasm", grants: ["hello_world"]), twice], [callBack])
        box.withLock { $0 = supervisor }
        await supervisor.start()

        let started = ContinuousClock.now
        _ = try await supervisor.call(plugin: "once", function: "count_vowels", input: Array("x".utf8))
        #expect(started.duration(to: .now) < .seconds(2), "the nested call waited for the worker that waits for it")
        switch nested.withLock({ $0 }) {
        case let .failure(error)?:
            #expect(error.code == .badRequest)
            #expect(error.message.contains("its only worker waits"), "\(error)")
        case let other:
            Issue.record("the nested call of a one-instance plugin was not refused: \(String(describing: other))")
        }

        nested.withLock { $0 = nil }
        hostCalls.withLock { $0 = 0 }
        _ = try await supervisor.call(plugin: "twice", function: "count_vowels", input: Array("x".utf8))
        let inner = nested.withLock { $0 }
        #expect(try inner?.get().contains(#""count":2"#) == true, "\(String(describing: inner))")
        #expect(started.duration(to: .now) < .seconds(4))
        await supervisor.shutdown()
    }

    /// The calling worker dies while its host function runs: the call fails `worker_crashed`, the
    /// function's late answer goes nowhere, and the next call is served by a fresh worker.
    @Test func aWorkerKilledDuringAHostCallIsReplaced() async throws {
        let box = Mutex<Supervisor?>(nil)
        let killed = Mutex(false)
        let killCaller = HostFunction(name: "hello_world") { call in
            guard let supervisor = box.withLock({ $0 }) else { throw HostFunctionError("no supervisor yet") }
            let first = killed.withLock { done in
                let first = !done
                done = true
                return first
            }
            guard first else { return call.input }
            let workers = supervisor.status().plugins.first { $0.name == call.plugin }?.workers ?? []
            for worker in workers { kill(worker.pid, SIGKILL) }
            try await Task.sleep(for: .milliseconds(300))
            return call.input
        }
        let supervisor = try Self.supervisor(
            [Self.extism("victim", "rust/host_function.wasm", grants: ["hello_world"])], [killCaller])
        box.withLock { $0 = supervisor }
        await supervisor.start()
        do {
            _ = try await supervisor.call(plugin: "victim", function: "count_vowels", input: Array("x".utf8))
            Issue.record("the call of a killed worker answered")
        } catch {
            #expect(error.code == .workerCrashed, "\(error)")
        }
        let output = try await supervisor.call(plugin: "victim", function: "count_vowels", input: Array("aaa".utf8))
        #expect(String(decoding: output, as: UTF8.self).contains(#""count":3"#), "\(output)")
        #expect(supervisor.status().plugins[0].restarts >= 1)
        await supervisor.shutdown()
    }
}
