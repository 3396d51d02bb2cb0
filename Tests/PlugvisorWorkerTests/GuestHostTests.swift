import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

@testable import PlugvisorWorker

/// The guest ABI run in-process (no worker process, no sandbox) against real fixture modules.
@Suite struct GuestHostTests {
    let context: JSONValue = ["request_id": "r-1", "headers": ["h": "v"], "parameters": ["name": "Ada", "n": "2"]]

    func host(
        _ fixture: String, _ request: LoadRequest? = nil, log: @escaping (LogLine) -> Void = { _ in }
    )
        throws -> GuestHost
    {
        try GuestHost(
            moduleBytes: try Fixtures.pluginBytes(fixture),
            request: request ?? LoadRequest(plugin: fixture), log: log)
    }

    @Test func echoAnswersWithTheContextItWasGiven() throws {
        let echo = try host("echo")
        let result = try echo.execute(context: context).get()
        #expect(result["success"] == true)
        #expect(result["data"] == context)
        #expect(echo.ready.meta?["name"] == "echo")
    }

    @Test func jsonTransformerDoesWhatTheSeedArticleSays() throws {
        let result = try host("json-transformer").execute(context: context).get()
        #expect(result["data"] == ["name": "Ada", "n": "2", "_request_id": "r-1", "_processed": true])
    }

    @Test func theGoPatternsBareI32PointersStillWork() throws {
        let legacy = try host("legacy-i32")
        #expect(try legacy.execute(context: context).get()["data"] == ["abi": "i32", "brace": "}"])
        #expect(legacy.ready.meta?["version"] == "0.9.0")
    }

    @Test func aTrapIsReportedWithItsReasonAndTheNextCallWorks() throws {
        let trap = try host("trap")
        let failure = trap.execute(context: ["parameters": ["x": "no"]]).failure
        #expect(failure?.code == .trap)
        #expect(failure?.message == "unreachable")
        #expect(try trap.execute(context: ["parameters": ["x": "ok"]]).get()["data"] == "survived")
    }

    @Test func aResultPointerOutsideMemoryIsInvalidNotACrash() throws {
        let failure = try host("bad-pointer").execute(context: context).failure
        #expect(failure?.code == .invalidResult)
        #expect(failure?.message.contains("outside") == true)
    }

    @Test func notJSONAndNotUTF8AreInvalidResults() throws {
        let notJSON = try host("not-json")
        let even = notJSON.execute(context: ["a": "bc"])  // 10 bytes: not JSON
        let odd = notJSON.execute(context: ["a": "b"])  // 9 bytes: not UTF-8
        #expect(even.failure?.message.contains("not JSON") == true)
        #expect(odd.failure?.message.contains("UTF-8") == true)
    }

    @Test func aModuleWithoutExecuteIsRefusedNamingIt() throws {
        #expect {
            try host("no-execute")
        } throws: { error in
            let error = error as? PluginError
            return error?.code == .loadFailed && error?.message.contains("missing export: execute") == true
        }
    }

    @Test func garbageBytesAreRefusedAtLoad() {
        #expect(throws: PluginError.self) {
            try GuestHost(moduleBytes: Array("not wasm at all".utf8), request: LoadRequest(plugin: "g"), log: { _ in })
        }
    }

    @Test func fuelStopsARunawayCallAndTheNextCallGetsAFreshBudget() throws {
        let spin = try host("spin", LoadRequest(plugin: "spin", fuel: 100_000))
        #expect(spin.execute(context: context).failure?.code == .outOfFuel)
        #expect(spin.execute(context: context).failure?.code == .outOfFuel)
        let echo = try host("echo", LoadRequest(plugin: "echo", fuel: 100_000))
        #expect(try echo.execute(context: context).get()["success"] == true)
    }

    @Test func guestLogLinesAndConfigReachTheHost() throws {
        var lines: [LogLine] = []
        let c = try host("hello-c", LoadRequest(plugin: "hello-c", config: ["greeting": "Hej"])) { lines.append($0) }
        #expect(try c.execute(context: context).get()["data"]?["message"] == "Hej, Ada!")
        #expect(lines.map(\.message) == ["hello-c is greeting someone"])
        #expect(lines.first?.level == "info")
    }

    @Test func embeddedSwiftGuestsWork() throws {
        let swift = try host("hello-swift")
        let data = try swift.execute(context: context).get()["data"]
        #expect(data?["language"] == "embedded-swift")
        #expect(swift.ready.meta?["name"] == "hello-swift")
    }

    @Test func aModuleLargerThanItsMemoryLimitIsRefused() throws {
        // hello-c starts with 128 KiB of memory.
        #expect {
            try host("hello-c", LoadRequest(plugin: "hello-c", memoryLimit: 65536))
        } throws: { error in
            (error as? PluginError)?.message.contains("exceeds the plugin's memory limit") == true
        }
    }
}

@Suite struct ABICheckTests {
    func shape(_ fixture: String) throws -> ModuleShape { try ModuleShape(bytes: try Fixtures.pluginBytes(fixture)) }

    @Test func echoHasEverythingThePlugvisorABINeeds() throws {
        #expect(ABICheck.problems(try shape("echo"), abi: .plugvisor) == [])
        #expect(ABICheck.detectABI(try shape("echo")) == .plugvisor)
        #expect(ABICheck.detectABI(try shape("legacy-i32")) == .plugvisorI32)
    }

    /// A refused import keeps a module from loading, not from being recognised by its exports.
    @Test func aRefusedImportIsAProblemOfItsOwnKind() throws {
        let forbidden = try shape("forbidden-import")
        let problems = ABICheck.problems(forbidden, abi: .plugvisor)
        #expect(!problems.isEmpty)
        #expect(problems.allSatisfy { $0.kind == .refusedImport }, "\(problems)")
        #expect(problems.allSatisfy { $0.description.hasPrefix("imports ") })
        #expect(ABICheck.detectABI(forbidden) == .plugvisor)
        #expect(ABICheck.problems(forbidden, abi: .plugvisor, trapUnknownImports: true) == [])
        // Against the wrong ABI the exports are what is wrong.
        #expect(ABICheck.problems(try shape("echo"), abi: .wasiCommand).contains { $0.kind == .badExport })
        #expect(forbidden.imports.contains { $0.kind == .function })
    }

    @Test func importsAreListedWithTheCapabilitiesTheyNeed() throws {
        let c = try shape("hello-c")
        #expect(c.imports.contains { $0.module == "plugvisor" && $0.name == "config_get" })
        #expect(ABICheck.capabilities(c) == ["config", "log"])
    }
}

extension GuestHost {
    /// A call as the worker makes it (the context's bytes in, the checked answer's bytes out),
    /// its answer read back as the supervisor reads it.
    func execute(context: JSONValue) -> Result<JSONValue, PluginError> {
        do {
            switch execute(context: try CallContext(context)) {
            case let .success(answer): return .success(try JSONValue(parsing: answer))
            case let .failure(error): return .failure(error)
            }
        } catch {
            return .failure(PluginError(.internalError, plugin: plugin, "\(error)"))
        }
    }
}
