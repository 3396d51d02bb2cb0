import Foundation
import Glibc
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// `plugvisor call` and the HTTP gateway build a plugin's context by one set of rules
/// (`PluginContext`): the echo plugin, which answers its context, sees the same one whichever
/// way it is called.
@Suite(.serialized) struct ContextRulesTests {
    static let echo = "plugins: [{name: echo, wasm: \"{{plugins}}/echo.wasm\"}]"

    /// One `POST /v1/plugins/echo/execute` written by hand, so that a header can be sent twice
    /// (URLSession merges them first); the answer's body as JSON.
    static func execute(port: Int, headers: [String], body: String) throws -> (status: Int, json: JSONValue?) {
        let descriptor = try connectTCP(port: port)
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let head =
            [
                "POST /v1/plugins/echo/execute HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
                "Content-Type: application/json", "Content-Length: \(body.utf8.count)",
            ] + headers
        let request = Array((head.joined(separator: "\r\n") + "\r\n\r\n" + body).utf8)
        guard send(descriptor, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else {
            throw FixtureError("cannot send the request")
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while answer.count < 1 << 20 {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            answer += buffer[0..<count]
        }
        let text = String(decoding: answer, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n"),
            let status = Int(text.split(separator: " ").dropFirst().first ?? "")
        else { throw FixtureError("not an HTTP answer: \(text)") }
        return (status, try? JSONValue(parsing: Array(text[split.upperBound...].utf8)))
    }

    static func port(of http: HTTPClient) throws -> Int {
        try #require(Int(http.base.split(separator: ":").last ?? ""))
    }

    @Test func aPluginSeesTheSameContextFromTheCLIAndOverHTTP() throws {
        let (supervisor, http) = try GatewayTests.start(Self.echo, token: nil)
        let cli = supervisor.call(
            "echo", "-H", "X-Foo=bar", "-H", "x-foo=baz", "-H", "X-Tenant=acme",
            "-p", "city=Lyon", "--request-id", "order-17")
        #expect(cli.status == 0, "\(cli.stderr)")
        let overCLI = try #require(cli.json?["data"])
        let answer = try Self.execute(
            port: Self.port(of: http),
            headers: ["X-Foo: bar", "x-foo: baz", "X-Tenant: acme", "X-Request-ID: order-17"],
            body: #"{"city": "Lyon"}"#)
        #expect(answer.status == 200)
        let overHTTP = try #require(answer.json?["data"])

        for context in [overCLI, overHTTP] {
            // Names in lower case, a repeated one's values joined in order.
            #expect(context["headers"]?["x-foo"] == "bar, baz", "\(context)")
            #expect(context["headers"]?["x-tenant"] == "acme", "\(context)")
            #expect(context["headers"]?["X-Tenant"] == nil, "\(context)")
            #expect(context["parameters"] == ["city": "Lyon"])
            #expect(context["request_id"] == "order-17")
        }
        // Headers from a --json context follow the same rules, and -H joins them.
        let fromFile = supervisor.cli(
            ["call", "echo", "--json", "-", "-H", "X-Foo=baz"],
            stdin: #"{"headers": {"X-Foo": "bar"}}"#)
        #expect(fromFile.json?["data"]?["headers"] == ["x-foo": "bar, baz"], "\(fromFile.stdout) \(fromFile.stderr)")
    }

    @Test func aParameterGivenTwiceIsRefusedByBoth() throws {
        let (supervisor, http) = try GatewayTests.start(Self.echo, token: nil)
        let repeated = supervisor.call("echo", "-p", "a=1", "-p", "a=2")
        #expect(repeated.status == 64)
        #expect(repeated.stderr.contains(#"parameter "a" is given twice"#), "\(repeated.stderr)")
        let overFile = supervisor.cli(
            ["call", "echo", "--json", "-", "-p", "a=2"], stdin: #"{"parameters": {"a": "1"}}"#)
        #expect(overFile.status == 64)
        #expect(overFile.stderr.contains(#"parameter "a" is given twice"#), "\(overFile.stderr)")

        let answer = try Self.execute(port: Self.port(of: http), headers: [], body: #"{"a": "1", "a": "2"}"#)
        #expect(answer.status == 400)
        let message = answer.json?["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains(#"duplicate key "a""#), "\(message)")
        #expect(try supervisor.plugin("echo").calls == 0, "refusals never reach the plugin")
    }

    @Test func bothAllowTheSameRequestIDs() throws {
        let (supervisor, http) = try GatewayTests.start(Self.echo, token: nil)
        let port = try Self.port(of: http)
        let longest = String(repeating: "a", count: 128)
        #expect(supervisor.call("echo", "--request-id", longest).json?["data"]?["request_id"] == .string(longest))
        #expect(
            try Self.execute(port: port, headers: ["X-Request-ID: \(longest)"], body: "{}").json?["data"]?["request_id"]
                == .string(longest))

        for refused in [String(repeating: "a", count: 129), String(repeating: "b", count: 200), "has space"] {
            let cli = supervisor.call("echo", "--request-id", refused)
            #expect(cli.status == 64, "\(refused): \(cli.stdout)")
            #expect(cli.stderr.contains("--request-id must be 1 to 128 visible ASCII characters"), "\(cli.stderr)")
            let answer = try Self.execute(port: port, headers: ["X-Request-ID: \(refused)"], body: "{}")
            #expect(answer.status == 400, "\(refused)")
            #expect(answer.json?["error"]?["message"] == "X-Request-ID must be 1 to 128 visible ASCII characters")
        }
        let fromFile = supervisor.cli(["call", "echo", "--json", "-"], stdin: #"{"request_id": "has space"}"#)
        #expect(fromFile.status == 64)
        #expect(
            fromFile.stderr.contains(#""request_id" in stdin must be 1 to 128 visible ASCII characters"#),
            "\(fromFile.stderr)")
        #expect(try supervisor.plugin("echo").calls == 2, "only the two good ids reached the plugin")
    }
}
