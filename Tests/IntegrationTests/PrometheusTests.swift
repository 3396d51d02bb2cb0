import Foundation
import Glibc
import PlugvisorTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Debian's Prometheus scrapes a running gateway with the shipped rules loaded, and its HTTP
/// API answers what was called: `/metrics` is not only well-formed but what Prometheus reads.
@Suite(.timeLimit(.minutes(2))) struct PrometheusTests {
    static let prometheus = "/usr/bin/prometheus"
    static let promtool = "/usr/bin/promtool"
    static let rules = Fixtures.root.appendingPathComponent("dist/prometheus/plugvisor-rules.yml").path

    /// A port nobody listens on right now (bound, read, released).
    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        return try bindToLoopback(descriptor)
    }

    @Test func prometheusScrapesTheGatewayAndAnswersCallsOfThePluginThatWasCalled() async throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.prometheus), "scripts/bootstrap.sh installs prometheus")
        let (supervisor, http) = try GatewayTests.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
              - {name: greeter, wasm: "{{plugins}}/greeter-wat.wasm"}
            """, token: nil)
        for _ in 0..<3 { #expect(try await http.send("POST", "/v1/plugins/echo/execute", json: "{}").status == 200) }

        let directory = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = http.base.replacingOccurrences(of: "http://", with: "")
        let configuration = directory.appendingPathComponent("prometheus.yml")
        try """
        global: {scrape_interval: 1s, evaluation_interval: 1s}
        rule_files: ["\(Self.rules)"]
        scrape_configs:
          - job_name: plugvisor
            static_configs: [{targets: ["\(target)"]}]
        """.write(to: configuration, atomically: true, encoding: .utf8)
        let port = try Self.freePort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: Self.prometheus)
        server.arguments = [
            "--config.file=\(configuration.path)",
            "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
            "--web.listen-address=127.0.0.1:\(port)",
        ]
        let log = directory.appendingPathComponent("prometheus.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        server.standardOutput = try FileHandle(forWritingTo: log)
        server.standardError = server.standardOutput
        try server.run()
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        let api = HTTPClient(base: "http://127.0.0.1:\(port)", timeout: 5)

        /// The samples of an instant query, as (labels, value).
        func query(_ expression: String) async -> [([String: String], String)] {
            let encoded = expression.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            struct Answer: Decodable {
                struct Data: Decodable {
                    struct Sample: Decodable {
                        var metric: [String: String]
                        var value: [StringOrNumber]
                    }
                    var result: [Sample]
                }
                var status: String
                var data: Data
            }
            guard let answer = try? await api.send("GET", "/api/v1/query?query=\(encoded)"),
                let decoded = try? JSONDecoder().decode(Answer.self, from: answer.body), decoded.status == "success"
            else { return [] }
            return decoded.data.result.map { ($0.metric, $0.value.last?.text ?? "") }
        }
        func eventually(
            _ expression: String, _ condition: ([([String: String], String)]) -> Bool
        ) async -> [([String: String], String)] {
            let deadline = ContinuousClock.now + .seconds(45)
            var last: [([String: String], String)] = []
            while ContinuousClock.now < deadline {
                last = await query(expression)
                if condition(last) { return last }
                try? await Task.sleep(for: .milliseconds(250))
            }
            return last
        }

        let calls = await eventually(#"plugvisor_calls_total{plugin="echo"}"#) { $0.first?.1 == "3" }
        let logText = { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        #expect(calls.first?.1 == "3", "\(calls)\n\(logText())")
        #expect(calls.first?.0["job"] == "plugvisor")
        #expect(calls.first?.0["instance"] == target)
        let ready = await eventually("plugvisor_plugin_ready") { $0.count == 2 }
        #expect(
            Set(ready.map { $0.0["plugin"] ?? "" }) == ["echo", "greeter"] && ready.allSatisfy { $0.1 == "1" },
            "\(ready)")

        // The shipped rules load and evaluate against what is scraped: the recording rule has
        // a series, and no alert fires for a host where everything serves.
        let recorded = await eventually(#"plugin:plugvisor_calls:rate1m{plugin="echo"}"#) { !$0.isEmpty }
        #expect(!recorded.isEmpty, "\(logText())")
        #expect(await query(#"ALERTS{alertstate="firing"}"#).isEmpty)

        // A kill shows: the plugin is no longer ready, and its alert is pending.
        #expect(supervisor.cli(["kill", "echo"]).status == 0)
        let pending = await eventually(#"ALERTS{alertname="PlugvisorPluginNotServing"}"#) { !$0.isEmpty }
        #expect(pending.first?.0["plugin"] == "echo" && pending.first?.0["alertstate"] == "pending", "\(pending)")
    }

    @Test func theShippedRulesPassPromtoolAndTheirOwnUnitTests() throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.promtool), "scripts/bootstrap.sh installs prometheus")
        let checked = ProcessRunner.run([Self.promtool, "check", "rules", Self.rules])
        #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")
        #expect(checked.stdout.contains("SUCCESS: 10 rules found"), "\(checked.stdout)")
        let tested = ProcessRunner.run([
            Self.promtool, "test", "rules", Self.rules.replacingOccurrences(of: ".yml", with: ".test.yml"),
        ])
        #expect(tested.status == 0, "\(tested.stdout)\(tested.stderr)")
    }
}

/// Prometheus answers a sample as `[1712345678.9, "3"]`: a number, then a string.
private enum StringOrNumber: Decodable {
    case text(String)
    case number(Double)

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .text(text)
        } else {
            self = .number(try container.decode(Double.self))
        }
    }

    var text: String {
        switch self {
        case let .text(text): text
        case let .number(number): "\(number)"
        }
    }
}

/// Binds `descriptor` to 127.0.0.1 on a port the kernel picks, and returns the port.
func bindToLoopback(_ descriptor: Int32) throws -> Int {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
        }
    }
    guard bound else { throw FixtureError("no free port: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: address.sin_port))
}
