import Foundation
import Glibc
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The HTTP gateway of a real `plugvisor start --http`, through a real HTTP client (URLSession).
@Suite(.serialized, .timeLimit(.minutes(5))) struct GatewayTests {
    static let token = "t0ken-\(UUID().uuidString)"

    /// A supervisor with the gateway on a free port and an admin token.
    static func start(
        _ manifest: String, token: String? = GatewayTests.token, arguments: [String] = []
    )
        throws -> (RunningSupervisor, HTTPClient)
    {
        var extra = ["--http", "127.0.0.1:0"] + arguments
        if let token {
            let directory = try RunningSupervisor.makeTemporaryDirectory()
            let file = directory.appendingPathComponent("token").path
            FileManager.default.createFile(
                atPath: file, contents: Data("\(token)\n".utf8), attributes: [.posixPermissions: 0o600])
            extra += ["--token-file", file]
        }
        let supervisor = try RunningSupervisor(manifest: manifest, arguments: extra)
        guard let address = supervisor.log.firstMatch(of: /HTTP gateway listening on (http:\/\/[0-9.]+:[0-9]+)/)?.1
        else {
            throw FixtureError("no gateway address in the log: \(supervisor.log)")
        }
        return (supervisor, HTTPClient(base: String(address)))
    }

    @Test func executeAnswersThePluginsResultWithTheRequestsHeadersAndID() async throws {
        let (supervisor, http) = try Self.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
            """)
        let wrapped = try await http.send(
            "POST", "/v1/plugins/echo/execute", json: #"{"parameters": {"city": "Lyon", "n": 3}}"#,
            headers: ["X-Request-ID": "req-42", "X-Tenant": "acme"])
        #expect(wrapped.status == 200)
        #expect(wrapped.header("Content-Type") == "application/json")
        #expect(wrapped.header("X-Request-ID") == "req-42")
        let context = try #require(wrapped.json?["data"])
        #expect(context["parameters"] == ["city": "Lyon", "n": 3])
        #expect(context["request_id"] == "req-42")
        #expect(context["headers"]?["x-tenant"] == "acme")

        // A plain object is the parameters; without X-Request-ID one is generated and echoed.
        let plain = try await http.send("POST", "/v1/plugins/echo/execute", json: #"{"city": "Oslo"}"#)
        #expect(plain.status == 200)
        #expect(plain.json?["data"]?["parameters"] == ["city": "Oslo"])
        let generated = try #require(plain.header("X-Request-ID"))
        #expect(plain.json?["data"]?["request_id"] == .string(generated))
        #expect(generated.count == 36)

        // No body at all: no parameters.
        let empty = try await http.send("POST", "/v1/plugins/echo/execute")
        #expect(empty.json?["data"]?["parameters"] == [:])
        _ = supervisor
    }

    @Test func credentialsNeverReachAPlugin() async throws {
        let (supervisor, http) = try Self.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
            """)
        let answer = try await http.send(
            "POST", "/v1/plugins/echo/execute", json: "{}",
            headers: [
                "Authorization": "Bearer \(Self.token)", "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
                "Cookie": "session=s3cret", "X-Tenant": "acme",
            ])
        #expect(answer.status == 200)
        let headers = try #require(answer.json?["data"]?["headers"])
        #expect(headers["authorization"] == nil)
        #expect(headers["proxy-authorization"] == nil)
        #expect(headers["cookie"] == nil)
        #expect(headers["x-tenant"] == "acme")
        #expect(headers["user-agent"] != nil)
        _ = supervisor
    }

    @Test func typedErrorsMapToHTTPStatusesWithTheCLIsErrorBody() async throws {
        let (supervisor, http) = try Self.start(
            """
            plugins:
              - {name: sleepy, wasm: "{{plugins}}/spin-if-asked.wasm", instances: 1, max_queue: 0, timeout: 1500ms}
              - {name: crash, wasm: "{{plugins}}/crash.wasm", restart: {max: 100, within: 60s, backoff: 10ms..10ms}}
              - {name: trap, wasm: "{{plugins}}/trap.wasm", circuit: {failures: 1, reset: 60s}}
              - {name: broken, wasm: "{{plugins}}/no-execute.wasm"}
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
            """)

        // Unknown plugin: 404, and the same error body as `plugvisor call` prints.
        let unknown = try await http.send("POST", "/v1/plugins/nosuch/execute", json: "{}")
        #expect(unknown.status == 404)
        #expect(unknown.header("X-Request-ID") != nil, "errors carry the request id too")
        let cli = supervisor.call("nosuch")
        #expect(cli.status == 2)
        #expect(unknown.text.trimmingCharacters(in: .newlines) == cli.stderr.trimmingCharacters(in: .newlines))

        // Overloaded: 429 with Retry-After, while the only worker spins into its timeout: 504.
        let spinning = Task { try await http.send("POST", "/v1/plugins/sleepy/execute", json: #"{"mode": "spin"}"#) }
        #expect(try supervisor.eventually { try supervisor.plugin("sleepy").workers.first?.state == .busy })
        let overloaded = try await http.send("POST", "/v1/plugins/sleepy/execute", json: "{}")
        #expect(overloaded.status == 429)
        #expect(overloaded.header("Retry-After") == "1")
        #expect(overloaded.error?.code == .overloaded)
        let timedOut = try await spinning.value
        #expect(timedOut.status == 504)
        #expect(timedOut.error?.code == .timeout)

        // Crashed worker: 502.
        let crashed = try await http.send("POST", "/v1/plugins/crash/execute", json: "{}")
        #expect(crashed.status == 502)
        #expect(crashed.error?.code == .workerCrashed)

        // A trap opens the circuit (502), then the open circuit answers 503.
        let trapped = try await http.send("POST", "/v1/plugins/trap/execute", json: "{}")
        #expect(trapped.status == 502)
        #expect(trapped.error?.code == .trap)
        let open = try await http.send("POST", "/v1/plugins/trap/execute", json: "{}")
        #expect(open.status == 503)
        #expect(open.error?.code == .circuitOpen)

        // A plugin that failed to load: 503.
        let failed = try await http.send("POST", "/v1/plugins/broken/execute", json: "{}")
        #expect(failed.status == 503)
        #expect(failed.error?.plugin == "broken")

        // Stopped by name: 503.
        let killed = try await http.send(
            "POST", "/v1/plugins/echo/kill", headers: ["Authorization": "Bearer \(Self.token)"])
        #expect(killed.status == 200)
        let stopped = try await http.send("POST", "/v1/plugins/echo/execute", json: "{}")
        #expect(stopped.status == 503)
        #expect(stopped.error?.code == .stopped)
    }

    @Test func pastItsInFlightLimitTheGatewayAnswers429() async throws {
        let (supervisor, http) = try Self.start(
            """
            plugins:
              - {name: sleepy, wasm: "{{plugins}}/spin-if-asked.wasm", instances: 1, max_queue: 10, timeout: 1s}
            """, arguments: ["--http-max-in-flight", "1"])
        let spinning = Task { try await http.send("POST", "/v1/plugins/sleepy/execute", json: #"{"mode": "spin"}"#) }
        #expect(try supervisor.eventually { try supervisor.plugin("sleepy").workers.first?.state == .busy })
        let refused = try await http.send("POST", "/v1/plugins/sleepy/execute", json: "{}")
        #expect(refused.status == 429)
        #expect(refused.error?.message.contains("--http-max-in-flight") == true)
        #expect(try await spinning.value.status == 504)
        // Reads are not limited, and the slot is free again once the call ended.
        #expect(try await http.send("GET", "/v1/plugins").status == 200)
        #expect(try await http.send("POST", "/v1/plugins/sleepy/execute", json: "{}").status == 200)
    }

    @Test func idleConnectionsAtTheLimitMakeRoomForANewClient() async throws {
        let (supervisor, http) = try Self.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
            """, arguments: ["--http-max-connections", "2"])
        let port = try #require(Int(http.base.split(separator: ":").last ?? ""))
        // Apart in time: each connection is set up on one of the server's event loops.
        let idle = try (0..<2).map { _ in
            defer { Thread.sleep(forTimeInterval: 0.2) }
            return try connectTCP(port: port)
        }
        defer { idle.forEach { Glibc.close($0) } }
        // A third client takes the place of the idle connection that waited longest...
        let started = ContinuousClock.now
        #expect(try await HTTPClient(base: http.base, timeout: 5).send("GET", "/healthz").status == 200)
        #expect(ContinuousClock.now - started < .seconds(1))
        let evicted = idle.filter { isClosedByPeer($0, within: .seconds(1)) }
        #expect(evicted == [idle[0]], "the oldest idle connection was not the one evicted (\(evicted) of \(idle))")
        // ...and plugins go on serving through the control socket meanwhile.
        #expect(supervisor.call("echo").status == 0)
    }

    /// Slowloris: 300 connections each sending part of a request head hold every connection
    /// the gateway allows (256); a legitimate client is still answered at once.
    @Test func slowClientsHoldingEveryConnectionCannotLockOutALegitimateOne() async throws {
        let (supervisor, http) = try Self.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
            """, token: nil)
        let port = try #require(Int(http.base.split(separator: ":").last ?? ""))
        let slow = SlowClients(count: 300, port: port)
        defer { slow.close() }
        try await Task.sleep(for: .milliseconds(500))
        slow.trickle()
        for _ in 0..<3 {
            let started = ContinuousClock.now
            let answer = try await HTTPClient(base: http.base, timeout: 5).send("GET", "/healthz")
            let took = ContinuousClock.now - started
            #expect(answer.status == 200)
            #expect(took < .seconds(1), "GET /healthz took \(took) behind 300 slow clients")
            slow.trickle()
        }
        #expect(supervisor.call("echo").status == 0)
    }

    @Test func aRequestHeadThatDoesNotArriveInTimeClosesTheConnection() async throws {
        let (supervisor, http) = try Self.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
            """, token: nil, arguments: ["--http-header-timeout", "1s"])
        let port = try #require(Int(http.base.split(separator: ":").last ?? ""))
        let silent = try connectTCP(port: port)
        let trickling = try connectTCP(port: port)
        defer { [silent, trickling].forEach { Glibc.close($0) } }
        // One header line every 300 ms: before, each line kept the connection from going idle.
        let lines = [
            "GET /healthz HTTP/1.1\r\n", "Host: x\r\n", "X-A: 1\r\n", "X-B: 2\r\n", "X-C: 3\r\n", "X-D: 4\r\n",
        ]
        let started = ContinuousClock.now
        for line in lines {
            _ = line.withCString { send(trickling, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            try await Task.sleep(for: .milliseconds(300))
        }
        #expect(isClosedByPeer(silent, within: .seconds(2)), "a silent connection outlived --http-header-timeout")
        #expect(isClosedByPeer(trickling, within: .seconds(2)), "a trickling connection outlived --http-header-timeout")
        #expect(ContinuousClock.now - started < .seconds(5))
        // A client that sends its request at once is served, and keep-alive is unaffected.
        #expect(try await http.send("GET", "/healthz").status == 200)
        _ = supervisor
    }

    @Test func malformedAndOversizedBodiesAreRefusedClearly() async throws {
        let (supervisor, http) = try Self.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
            """, arguments: ["--http-max-body", "1KiB"])
        let malformed = try await http.send(
            "POST", "/v1/plugins/echo/execute", json: "{\"city\": \"Lyon\",\n \"n\": x}")
        #expect(malformed.status == 400)
        #expect(malformed.error?.code == .badRequest)
        #expect(malformed.error?.message.contains("not valid JSON") == true)
        #expect(malformed.error?.message.contains("unexpected 'x' at byte 23") == true, "\(malformed.text)")

        let array = try await http.send("POST", "/v1/plugins/echo/execute", json: "[1, 2]")
        #expect(array.status == 400)
        #expect(array.error?.message.contains("must be a JSON object") == true)
        let badWrapper = try await http.send("POST", "/v1/plugins/echo/execute", json: #"{"parameters": 7}"#)
        #expect(badWrapper.status == 400)

        let large = try await http.send(
            "POST", "/v1/plugins/echo/execute", json: "{\"pad\": \"\(String(repeating: "x", count: 2048))\"}")
        #expect(large.status == 413)
        #expect(large.error?.code == .payloadTooLarge)
        #expect(large.error?.message.contains("1024 bytes") == true)

        let badID = try await http.send(
            "POST", "/v1/plugins/echo/execute", json: "{}",
            headers: ["X-Request-ID": String(repeating: "a", count: 200)])
        #expect(badID.status == 400)

        // Refusals cost the plugin nothing: it was never called.
        #expect(try supervisor.plugin("echo").calls == 0)
        let fine = try await http.send("POST", "/v1/plugins/echo/execute", json: "{}")
        #expect(fine.status == 200)
    }

    @Test func adminOperationsNeedTheBearerToken() async throws {
        let (supervisor, http) = try Self.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
            """)
        for operation in ["kill", "restart", "reload"] {
            let anonymous = try await http.send("POST", "/v1/plugins/echo/\(operation)")
            #expect(anonymous.status == 401, "\(operation)")
            #expect(anonymous.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
            #expect(anonymous.error?.code == .unauthorized)
            let wrong = try await http.send(
                "POST", "/v1/plugins/echo/\(operation)", headers: ["Authorization": "Bearer \(Self.token)x"])
            #expect(wrong.status == 401, "\(operation)")
            let basic = try await http.send(
                "POST", "/v1/plugins/echo/\(operation)", headers: ["Authorization": "Basic \(Self.token)"])
            #expect(basic.status == 401, "\(operation)")
        }
        let manifestReload = try await http.send("POST", "/v1/reload")
        #expect(manifestReload.status == 401)
        // Nothing happened: still the first generation, serving.
        #expect(try supervisor.plugin("echo").state == .ready)
        #expect(try supervisor.plugin("echo").generation == 0)

        let authorized = ["Authorization": "Bearer \(Self.token)"]
        let killed = try await http.send("POST", "/v1/plugins/echo/kill", headers: authorized)
        #expect(killed.status == 200)
        #expect(killed.json == ["plugin": "echo", "state": "stopped"])
        #expect(try supervisor.plugin("echo").state == .stopped)
        let restarted = try await http.send("POST", "/v1/plugins/echo/restart", headers: authorized)
        #expect(restarted.json == ["plugin": "echo", "state": "ready"])
        let reloaded = try await http.send("POST", "/v1/plugins/echo/reload", headers: authorized)
        #expect(reloaded.status == 200)
        #expect(reloaded.json?["result"]?.stringValue?.hasPrefix("generation 2") == true, "\(reloaded.text)")
        let everything = try await http.send("POST", "/v1/reload", headers: authorized)
        #expect(everything.json == ["added": [], "removed": [], "reloaded": [:]])
        let unknown = try await http.send("POST", "/v1/plugins/nosuch/kill", headers: authorized)
        #expect(unknown.status == 404)
    }

    @Test func withoutATokenFileAdminOperationsAreOpen() async throws {
        let (supervisor, http) = try Self.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
            """, token: nil)
        let killed = try await http.send("POST", "/v1/plugins/echo/kill")
        #expect(killed.status == 200)
        #expect(try supervisor.plugin("echo").state == .stopped)
    }

    @Test func statusRoutesShowWhatStatusJSONShows() async throws {
        let (supervisor, http) = try Self.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm", instances: 2}
              - {name: transformer, wasm: "{{plugins}}/json-transformer.wasm"}
            """)
        let health = try await http.send("GET", "/healthz")
        #expect(health.status == 200)
        #expect(health.json == ["status": "ok"])

        let all = try await http.send("GET", "/v1/plugins")
        #expect(all.status == 200)
        let report = try JSONCoding.decode(StatusReport.self, from: Array(all.body))
        let cli = try supervisor.status()
        #expect(report.plugins.map(\.name) == cli.plugins.map(\.name))
        #expect(report.plugins.map(\.state) == cli.plugins.map(\.state))
        #expect(report.plugins.map { $0.workers.map(\.pid) } == cli.plugins.map { $0.workers.map(\.pid) })
        #expect(report.plugins.map(\.sha256) == cli.plugins.map(\.sha256))

        let one = try await http.send("GET", "/v1/plugins/transformer")
        let transformer = try JSONCoding.decode(PluginStatus.self, from: Array(one.body))
        #expect(transformer.name == "transformer")
        #expect(transformer.version == "1.0.0")
        let missing = try await http.send("GET", "/v1/plugins/nosuch")
        #expect(missing.status == 404)
        #expect(missing.error?.code == .unknownPlugin)
        #expect(
            missing.error?.message.contains("(known: echo, transformer)") == true, "as the CLI says it: \(missing.text)"
        )
    }

    @Test func metricsParseAndTheirCountersMoveWithCalls() async throws {
        let (supervisor, http) = try Self.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
              - {name: sleepy, wasm: "{{plugins}}/spin-if-asked.wasm", timeout: 300ms}
            """)
        let before = try await http.metrics()
        for _ in 1...5 { _ = try await http.send("POST", "/v1/plugins/echo/execute", json: "{}") }
        _ = try await http.send("POST", "/v1/plugins/sleepy/execute", json: #"{"mode": "spin"}"#)
        #expect(supervisor.eventually { (try? supervisor.plugin("sleepy").workers.count) == 1 })
        _ = try await http.send("POST", "/v1/plugins/sleepy/reload", headers: ["Authorization": "Bearer \(Self.token)"])
        let after = try await http.metrics()

        func delta(_ name: String, _ labels: [String: String]) -> Double {
            (after.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0)
        }
        #expect(delta("plugvisor_calls_total", ["plugin": "echo"]) == 5)
        #expect(delta("plugvisor_call_duration_seconds_count", ["plugin": "echo"]) == 5)
        #expect(delta("plugvisor_call_errors_total", ["plugin": "sleepy", "code": "timeout"]) == 1)
        #expect(delta("plugvisor_worker_restarts_total", ["plugin": "sleepy"]) == 1)
        #expect(delta("plugvisor_reloads_total", ["plugin": "sleepy", "result": "ok"]) == 1)
        #expect(after.value("plugvisor_call_errors_total", ["plugin": "echo", "code": "timeout"]) == nil)
        #expect(after.value("plugvisor_plugin_ready", ["plugin": "echo"]) == 1)
        #expect(after.value("plugvisor_workers", ["plugin": "echo"]) == 1)
        #expect(after.value("plugvisor_queued_calls", ["plugin": "echo"]) == 0)
        #expect((after.value("plugvisor_worker_resident_bytes", ["plugin": "echo"]) ?? 0) > 1_000_000)
        #expect(after.value("plugvisor_plugin_generation", ["plugin": "sleepy"]) == 1)
        #expect(after.types["plugvisor_call_duration_seconds"] == "histogram")
        #expect(after.types["plugvisor_calls_total"] == "counter")
        // Every call lands in the histogram's +Inf bucket.
        #expect(after.value("plugvisor_call_duration_seconds_bucket", ["plugin": "echo", "le": "+Inf"]) == 5)
    }

    @Test func theGatewayStopsWithTheSupervisor() async throws {
        let (supervisor, http) = try Self.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
            """)
        #expect(try await http.send("GET", "/healthz").status == 200)
        #expect(supervisor.stop().status == 0)
        #expect(supervisor.exitStatus == 0)
        await #expect(throws: (any Error).self) { try await http.send("GET", "/healthz") }
    }

    @Test func aBusyAddressIsAClearErrorAndNothingRuns() throws {
        let (first, http) = try Self.start(
            """
            plugins:
              - {name: echo, wasm: "{{plugins}}/echo.wasm"}
            """)
        let address = http.base.replacingOccurrences(of: "http://", with: "")
        let directory = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let second = ProcessRunner.run([
            try Fixtures.binary("plugvisor"), "start", first.manifestPath, "--http", address,
            "--control", directory.appendingPathComponent("control.sock").path,
        ])
        #expect(second.status == 1)
        #expect(second.stderr.contains("plugvisor: cannot serve HTTP on \(address):"), "\(second.stderr)")
        // It stopped the workers it had started before it exited.
        #expect(second.stderr.contains("all workers stopped"))
        #expect(try first.plugin("echo").state == .ready)
    }

    @Test func badGatewayOptionsAreRefusedBeforeAnythingStarts() throws {
        let plugvisor = try Fixtures.binary("plugvisor")
        let manifest = Fixtures.root.appendingPathComponent("Fixtures/demo.yaml").path
        let noPort = ProcessRunner.run([plugvisor, "start", manifest, "--http", "localhost"])
        #expect(noPort.status != 0)
        #expect(noPort.stderr.contains("--http 'localhost' is not HOST:PORT"))
        let badPort = ProcessRunner.run([plugvisor, "start", manifest, "--http", "127.0.0.1:99999"])
        #expect(badPort.stderr.contains("the port must be a number from 0 to 65535"))
        let orphanToken = ProcessRunner.run([plugvisor, "start", manifest, "--token-file", "/etc/hostname"])
        #expect(orphanToken.stderr.contains("--token-file needs --http"))

        let directory = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let open = directory.appendingPathComponent("open-token").path
        FileManager.default.createFile(
            atPath: open, contents: Data("secret\n".utf8), attributes: [.posixPermissions: 0o644])
        let readable = ProcessRunner.run([plugvisor, "start", manifest, "--http", "127.0.0.1:0", "--token-file", open])
        #expect(readable.status != 0)
        #expect(readable.stderr.contains("is readable by other users (mode 644); chmod 600 it"))
        let empty = directory.appendingPathComponent("empty-token").path
        FileManager.default.createFile(atPath: empty, contents: Data("\n".utf8), attributes: [.posixPermissions: 0o600])
        let blank = ProcessRunner.run([plugvisor, "start", manifest, "--http", "127.0.0.1:0", "--token-file", empty])
        #expect(blank.stderr.contains("is empty"))
        let size = ProcessRunner.run([plugvisor, "start", manifest, "--http", "127.0.0.1:0", "--http-max-body", "lots"])
        #expect(size.stderr.contains("--http-max-body 'lots' is not a size"))
    }

    @Test func theCurlScriptPasses() throws {
        let script = Fixtures.root.appendingPathComponent("scripts/gateway-curl.sh").path
        let output = ProcessRunner.run(["/bin/bash", script, Fixtures.binDirectory.path])
        #expect(output.status == 0, "\(output.stdout)\n\(output.stderr)")
        #expect(output.stdout.contains("gateway-curl: all checks passed"))
    }
}

/// An idle TCP connection to the gateway, as a slow or hostile client keeps one.
func connectTCP(port: Int) throws -> Int32 {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard result == 0 else { throw FixtureError("connect to port \(port): errno \(errno)") }
    return descriptor
}

/// Whether the peer closes `descriptor` (EOF or reset) within `timeout`; bytes it sends first
/// (a 408, say) are read and skipped.
func isClosedByPeer(_ descriptor: Int32, within timeout: Duration) -> Bool {
    let deadline = ContinuousClock.now + timeout
    var buffer = [UInt8](repeating: 0, count: 4096)
    while ContinuousClock.now < deadline {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let left = Int32(max(1, (deadline - ContinuousClock.now).components.seconds * 1000 + 100))
        guard poll(&poller, 1, left) > 0 else { continue }
        let n = recv(descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) { return true }
    }
    return false
}

/// Slowloris from the test process: connections to 127.0.0.1 that each send the start of a
/// request head, then a header line now and then, never the blank line that ends it, and
/// reconnect when the server closes them. Non-blocking, so that a full listen backlog cannot
/// hang the test.
final class SlowClients: @unchecked Sendable {
    // SAFETY: only used from the test's task.
    private let port: Int
    private var descriptors: [Int32] = []
    private var sent = 0
    private(set) var reconnects = 0

    init(count: Int, port: Int) {
        self.port = port
        descriptors = (0..<count).map { _ in open() }
    }

    /// One more header line on every connection; those the server closed are opened again.
    func trickle() {
        sent += 1
        for (index, descriptor) in descriptors.enumerated() {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            var byte: UInt8 = 0
            if poll(&poller, 1, 0) > 0 && recv(descriptor, &byte, 1, Int32(MSG_DONTWAIT)) <= 0 {
                Glibc.close(descriptor)
                descriptors[index] = open()
                reconnects += 1
            } else {
                write("X-Slow-\(sent): 1\r\n", to: descriptor)
            }
        }
    }

    func close() { descriptors.forEach { Glibc.close($0) } }

    private func open() -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        // Usually connected at once on loopback; if not, the line is lost and the next one counts.
        write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", to: descriptor)
        return descriptor
    }

    private func write(_ text: String, to descriptor: Int32) {
        _ = text.withCString { send(descriptor, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    }
}

/// A tiny client over URLSession: a real HTTP client, not the gateway's own code.
struct HTTPClient: Sendable {
    let base: String
    var timeout: TimeInterval = 30

    struct Answer: Sendable {
        var status: Int
        var headers: [String: String]
        var body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: JSONValue? { try? JSONCoding.decode(JSONValue.self, from: Array(body)) }
        var error: PluginError? {
            struct Envelope: Decodable { var error: PluginError }
            return try? JSONCoding.decode(Envelope.self, from: Array(body)).error
        }
        func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }
    }

    func send(
        _ method: String, _ path: String, json: String? = nil, body: Data? = nil, headers: [String: String] = [:]
    ) async throws -> Answer {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        request.timeoutInterval = timeout
        if let json {
            request.httpBody = Data(json.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        if let body { request.httpBody = body }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (body, response) = try await URLSession.shared.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields { fields["\(name)"] = "\(value)" }
        return Answer(status: http.statusCode, headers: fields, body: body)
    }

    func metrics() async throws -> PrometheusText {
        let answer = try await send("GET", "/metrics")
        #expect(answer.status == 200)
        #expect(answer.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        return try PrometheusText(answer.text)
    }
}

/// The Prometheus text exposition format, parsed strictly enough that a malformed line fails.
struct PrometheusText {
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var samples: [Sample] = []
    var types: [String: String] = [:]

    init(_ text: String) throws {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4 else { throw FixtureError("bad TYPE line: \(line)") }
                types[String(parts[2])] = String(parts[3])
                continue
            }
            if line.hasPrefix("#") { continue }
            guard let match = line.wholeMatch(of: /([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([^ ]+)/),
                let value = Double(match.3) ?? (match.3 == "+Inf" ? .infinity : nil)
            else { throw FixtureError("not a Prometheus sample line: \(line)") }
            var labels: [String: String] = [:]
            if let block = match.2 {
                for pair in block.dropFirst().dropLast().matches(of: /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/) {
                    labels[String(pair.1)] = String(pair.2)
                }
            }
            samples.append(Sample(name: String(match.1), labels: labels, value: value))
        }
        for sample in samples {
            let family = sample.name.replacing(/_(bucket|count|sum)$/, with: "")
            guard types[sample.name] != nil || types[family] != nil else {
                throw FixtureError("sample \(sample.name) has no # TYPE line")
            }
        }
    }

    func value(_ name: String, _ labels: [String: String]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }
}
