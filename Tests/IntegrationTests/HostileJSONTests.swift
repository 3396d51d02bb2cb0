import Foundation
import PlugvisorPosix
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// Deeply nested JSON from unauthenticated clients, against a real supervisor: it costs
/// milliseconds, is refused with a clear error, and never fails a plugin (issue 12, finding 2).
@Suite(.serialized, .timeLimit(.minutes(5))) struct HostileJSONTests {
    /// `[[…]]` nested `depth` levels.
    static func nested(_ depth: Int) -> String {
        String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
    }

    /// A JSON object of about `size` bytes: `{"deep":[E,E,…]}` with each E nested `depth` levels.
    static func repeated(depth: Int, size: Int = 1 << 20) -> String {
        let element = nested(depth)
        let count = (size - 16) / (element.utf8.count + 1)
        return #"{"deep":["# + Array(repeating: element, count: count).joined(separator: ",") + "]}"
    }

    /// One level deeper than the limit, over and over: valid JSON to JSONDecoder (its own limit
    /// is 512), which took quadratic time over it.
    static let tooDeep = repeated(depth: JSONValue.maxDepth - 1)
    /// As deep as a body may be for echo's answer (two levels more) to stay within the limit;
    /// 64 KiB, which JSONDecoder took seconds over, in the gateway and again in the worker.
    static let atTheLimit = repeated(depth: JSONValue.maxDepth - 4, size: 64 << 10)
    static let openingBrackets = String(repeating: "[", count: (1 << 20) - 1)

    @Test func deepBodiesAreRefusedQuicklyWhileTheGatewayServesAndNoPluginFails() async throws {
        let (supervisor, http) = try GatewayTests.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm", instances: 1, timeout: 1s}
            """)
        let before = try supervisor.plugin("echo")
        var client = http
        client.timeout = 20

        // Four hostile bodies at once, to a real plugin and to an unknown one, no token.
        let bodies = [
            ("/v1/plugins/echo/execute", Self.tooDeep), ("/v1/plugins/nosuch/execute", Self.tooDeep),
            ("/v1/plugins/echo/execute", Self.openingBrackets), ("/v1/plugins/nosuch/execute", Self.openingBrackets),
        ]
        let started = ContinuousClock.now
        let answers = bodies.map { path, body in Task { [client] in try await client.send("POST", path, json: body) } }
        let healthStarted = ContinuousClock.now
        let health = try await client.send("GET", "/healthz")
        let healthTook = ContinuousClock.now - healthStarted
        #expect(health.status == 200)
        // Generous for a debug build on a loaded machine; it took over 20 s with JSONDecoder.
        #expect(healthTook < .seconds(5), "GET /healthz took \(healthTook) while deep bodies were decoded")
        for (task, (path, _)) in zip(answers, bodies) {
            let answer = try await task.value
            #expect(answer.status == 400, "\(path): \(answer.text.prefix(300))")
            #expect(answer.error?.code == .badRequest)
            #expect(
                answer.error?.message.contains("nesting deeper than 128 levels at byte") == true,
                "\(answer.text.prefix(300))")
        }
        let took = ContinuousClock.now - started
        #expect(took < .seconds(10), "four 1 MiB bodies took \(took)")

        // A legitimate body as deep as allowed goes through to the plugin and back within its 1 s.
        let deep = try await client.send("POST", "/v1/plugins/echo/execute", json: Self.atTheLimit)
        #expect(deep.status == 200, "\(deep.text.prefix(300))")
        #expect(deep.json?["data"]?["parameters"]?["deep"]?.arrayCount == Self.elementCount(Self.atTheLimit))

        let after = try supervisor.plugin("echo")
        #expect(after.state == .ready)
        #expect(after.restarts == before.restarts)
        #expect(after.workers.map(\.pid) == before.workers.map(\.pid), "the worker was replaced")
        #expect(after.errorsByCode["timeout"] == nil)
    }

    @Test func aDeepControlFrameGetsAClearErrorAndTheSupervisorLives() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: echo, wasm: "{{plugins}}/echo.wasm", instances: 1, timeout: 1s}
                """)
        let before = try supervisor.plugin("echo")
        // One level past a message's limit (the context sits inside the request), far past it, and
        // nothing but opening brackets.
        let contexts = [
            Self.repeated(depth: JSONCoding.maxMessageDepth - 2), Self.repeated(depth: 400), Self.openingBrackets,
        ]
        for context in contexts {
            let channel = FrameChannel(
                descriptor: try Descriptors.connectUnix(path: supervisor.controlPath), maxFrameLength: 64 << 20)
            try channel.sendFrame(Array((#"{"op":"call","plugin":"echo","context":"# + context + "}").utf8))
            let started = ContinuousClock.now
            let response = try channel.receive(ControlResponse.self, deadline: .now + .seconds(5))
            #expect(ContinuousClock.now - started < .seconds(2))
            #expect(response.error?.code == .badRequest)
            #expect(
                response.error?.message.contains("nesting deeper than \(JSONCoding.maxMessageDepth) levels at byte")
                    == true,
                "\(String(describing: response.error))")
        }
        let after = try supervisor.plugin("echo")
        #expect(after.state == .ready)
        #expect(after.workers.map(\.pid) == before.workers.map(\.pid))
        #expect(supervisor.call("echo", "-p", "a=b").status == 0)
    }

    static func elementCount(_ body: String) -> Int { body.utf8.count(where: { $0 == UInt8(ascii: ",") }) + 1 }
}

extension JSONValue {
    var arrayCount: Int? {
        if case let .array(elements) = self { return elements.count }
        return nil
    }
}
