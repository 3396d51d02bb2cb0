import PlugvisorProtocol
import Testing

@Suite struct MessageTests {
    @Test func helloDecodesFromItsGoldenForm() throws {
        let golden = #"{"type":"hello","plugvisor":1,"pid":4242}"#
        let message = try JSONCoding.decode(WorkerMessage.self, from: Array(golden.utf8))
        #expect(message == .hello(Hello(plugvisor: 1, pid: 4242)))
    }

    /// Earlier workers also sent the module's exports and imports in `ready`: still accepted.
    @Test func anOlderWorkersReadyStillDecodes() throws {
        let golden =
            #"{"type":"ready","meta":{"name":"x"},"exports":[{"name":"execute","kind":"func"}],"imports":[],"memoryBytes":65536}"#
        let message = try JSONCoding.decode(WorkerMessage.self, from: Array(golden.utf8))
        #expect(message == .ready(ReadyInfo(meta: ["name": "x"], memoryBytes: 65536)))
    }

    @Test func everyWorkerMessageSurvivesARoundTrip() throws {
        let messages: [WorkerMessage] = [
            .hello(Hello(pid: 1)),
            .ready(ReadyInfo(meta: ["name": "x", "version": "1.0.0"], memoryBytes: 65536)),
            .loadFailed(reason: "missing export: execute"),
            .result(
                CallResult(
                    id: 7, payload: ["success": true, "data": [1, 2.5, "three", nil]],
                    stats: CallStats(micros: 12, fuelUsed: 99, memoryBytes: 65536))),
            .result(CallResult(id: 8, error: PluginError(.trap, plugin: "p", "unreachable"))),
            .log(LogLine(level: "info", message: "hi")),
        ]
        for message in messages {
            let bytes = try JSONCoding.encode(message)
            #expect(try JSONCoding.decode(WorkerMessage.self, from: bytes) == message)
        }
    }

    @Test func supervisorMessagesSurviveARoundTrip() throws {
        let messages: [SupervisorMessage] = [
            .load(
                LoadRequest(
                    plugin: "p", memoryLimit: 1 << 20, fuel: 1000, env: ["A": "b"], config: ["k": "v"],
                    preopens: [Preopen(host: "/tmp", guest: "/data", readOnly: true)])),
            .call(CallRequest(id: 1, fn: .execute, payload: ["parameters": [:]])),
            .inspect(InspectRequest()),
            .inspect(InspectRequest(workerUser: WorkerUser(uid: 61184, gid: 61184))),
        ]
        for message in messages {
            #expect(try JSONCoding.decode(SupervisorMessage.self, from: JSONCoding.encode(message)) == message)
        }
    }

    @Test func anUnknownMessageTypeIsAnErrorThatNamesIt() {
        let bytes = Array(#"{"type":"shell","command":"rm -rf /"}"#.utf8)
        #expect {
            try JSONCoding.decode(WorkerMessage.self, from: bytes)
        } throws: { error in
            "\(error)".contains("shell")
        }
    }

    @Test func largeIntegersKeepTheirExactValue() throws {
        let bytes = Array(#"{"id":9007199254740993,"ratio":0.5}"#.utf8)
        let value = try JSONCoding.decode(JSONValue.self, from: bytes)
        #expect(value["id"] == .integer(9_007_199_254_740_993))
        #expect(value["ratio"] == .double(0.5))
    }

    @Test func pluginErrorsPrintAsTheCLIShowsThem() throws {
        let error = PluginError(.timeout, plugin: "spin", "call ran longer than 5 seconds")
        let line = JSONCoding.compact(["error": error])
        #expect(line == #"{"error":{"code":"timeout","message":"call ran longer than 5 seconds","plugin":"spin"}}"#)
    }

    /// The typed states keep the strings `status --json`, the gateway and older CLIs read.
    @Test func statusStatesKeepTheirWireStrings() throws {
        #expect(PluginStatus.State.allCases.map(\.rawValue) == ["starting", "ready", "reloading", "stopped", "failed"])
        #expect(
            WorkerStatus.State.allCases.map(\.rawValue) == [
                "starting", "idle", "busy", "draining", "standby", "dying", "gone",
            ])
        #expect(CircuitState.allCases.map(\.rawValue) == ["closed", "open", "half-open"])
        let status = PluginStatus(
            name: "echo", version: nil, state: .reloading,
            workers: [WorkerStatus(pid: 3, state: .draining, uptimeSeconds: 1, rssBytes: nil, memoryBytes: nil)],
            calls: 0, errors: 0, errorsByCode: [:], p50Micros: nil, p99Micros: nil, restarts: 0, lastError: nil,
            sha256: nil, circuit: .halfOpen)
        let json = try JSONCoding.decode(JSONValue.self, from: JSONCoding.encode(status))
        #expect(json["state"] == "reloading")
        #expect(json["circuit"] == "half-open")
        guard case let .array(workers)? = json["workers"] else {
            Issue.record("no workers array")
            return
        }
        #expect(workers.first?["state"] == "draining")
        #expect(try JSONCoding.decode(PluginStatus.self, from: JSONCoding.encode(status)) == status)
        #expect("\(CircuitState.halfOpen)" == "half-open")
    }

    @Test func aWorkerUserReadsAndWritesItsArgumentForm() {
        let user = WorkerUser(uid: 61184, gid: 61185)
        #expect(user.argument == "61184:61185")
        #expect(WorkerUser(argument: user.argument) == user)
        for wrong in ["", "61184", "61184:", ":61185", "a:b", "1:2:3", "-1:2", "4294967296:1"] {
            #expect(WorkerUser(argument: wrong) == nil, "\(wrong)")
        }
    }

    @Test func theInspectedABIKeepsItsWireStrings() throws {
        #expect(InspectReport.ABI.allCases.map(\.rawValue) == ["plugvisor", "plugvisor-i32", "wasi-command", "extism"])
        #expect(InspectReport.ABI.allCases.map(\.guestABI) == [.plugvisor, .plugvisor, .wasiCommand, .extism])
        let report = InspectReport(
            abi: .plugvisorI32, exports: [], imports: [], memoryMinPages: nil, memoryMaxPages: nil, problems: [],
            capabilities: [], sizeBytes: 8)
        #expect(try JSONCoding.decode(JSONValue.self, from: JSONCoding.encode(report))["abi"] == "plugvisor-i32")
    }

    /// Renamed in Swift (an error whose code was `failed`), not on the wire.
    @Test func theRestartLimitCodeIsStillFailedOnTheWire() throws {
        #expect(PluginError.Code.restartLimit.rawValue == "failed")
        let error = PluginError(.restartLimit, plugin: "crash", "restarted 3 times")
        #expect(JSONCoding.compact(error).contains(#""code":"failed""#))
    }
}
