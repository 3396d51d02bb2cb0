import ArgumentParser
import Foundation
import Logging
import Metrics
import Plugvisor
import PlugvisorGateway
import PlugvisorManifest
import PlugvisorPosix
import Prometheus
import ServiceLifecycle

/// `start`'s HTTP gateway options.
struct GatewayOptions: ParsableArguments {
    @Option(
        name: .customLong("http"),
        help: ArgumentHelp(
            "Serve the HTTP gateway (and /metrics) on HOST:PORT, e.g. 127.0.0.1:8080 (port 0: any free port).",
            valueName: "host:port"))
    var address: String?

    @Option(
        help: ArgumentHelp(
            "A file holding the token that the gateway's admin operations (kill, restart, reload) require as 'Authorization: Bearer <token>'. Must not be readable by other users.",
            valueName: "file"))
    var tokenFile: String?

    @Option(
        name: .customLong("http-max-body"),
        help: ArgumentHelp(
            "The largest request body the gateway accepts, e.g. 1MiB.", valueName: "size"))
    var maxBody: String = "1MiB"

    @Option(
        name: .customLong("http-max-in-flight"),
        help: ArgumentHelp(
            "How many calls and admin operations the gateway runs at once; more are answered 429.", valueName: "n"))
    var maxInFlight: Int = 512

    @Option(
        name: .customLong("http-max-connections"),
        help: ArgumentHelp(
            "How many HTTP connections the gateway keeps open at once; more wait to be accepted.", valueName: "n"))
    var maxConnections: Int = 256

    @Option(
        name: .customLong("http-header-timeout"),
        help: ArgumentHelp(
            "How long a new connection may take to send its request head before it is closed, e.g. 10s.",
            valueName: "duration"))
    var headerTimeout: String = "10s"

    func validate() throws {
        if address == nil && tokenFile != nil { throw ValidationError("--token-file needs --http") }
        if let address { _ = try Self.parse(address: address) }
        _ = try maxBodyBytes()
        _ = try requestHeadTimeout()
        guard maxInFlight > 0 else { throw ValidationError("--http-max-in-flight must be at least 1") }
        guard maxConnections > 0 else { throw ValidationError("--http-max-connections must be at least 1") }
    }

    func maxBodyBytes() throws -> Int {
        guard let bytes = Units.size(maxBody), bytes > 0 else {
            throw ValidationError("--http-max-body '\(maxBody)' is not a size (e.g. 65536, 512KiB, 1MiB)")
        }
        return bytes
    }

    func requestHeadTimeout() throws -> Duration {
        guard let duration = Units.duration(headerTimeout), duration > .zero else {
            throw ValidationError("--http-header-timeout '\(headerTimeout)' is not a duration (e.g. 10s, 500ms)")
        }
        return duration
    }

    /// `HOST:PORT`, `[IPv6]:PORT`.
    static func parse(address: String) throws -> (host: String, port: Int) {
        guard let colon = address.lastIndex(of: ":") else {
            throw ValidationError("--http '\(address)' is not HOST:PORT (e.g. 127.0.0.1:8080)")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ValidationError("--http '\(address)' has no host (e.g. 127.0.0.1:8080)") }
        guard let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--http '\(address)': the port must be a number from 0 to 65535")
        }
        return (host, port)
    }

    /// The admin token: the file's first line, which must not be empty. Refused when other
    /// users could read the file, as ssh refuses such a key.
    func readToken() throws -> String? {
        guard let tokenFile else { return nil }
        var info = stat()
        guard stat(tokenFile, &info) == 0 else {
            throw ValidationError("--token-file \(tokenFile): \(SystemError("stat"))")
        }
        if info.st_mode & 0o077 != 0 {
            throw ValidationError(
                String(
                    format: "--token-file %@ is readable by other users (mode %o); chmod 600 it", tokenFile,
                    info.st_mode & 0o777))
        }
        let text: String
        do { text = try String(contentsOfFile: tokenFile, encoding: .utf8) } catch {
            throw ValidationError("--token-file \(tokenFile): \(error.localizedDescription)")
        }
        let token = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard !token.isEmpty else { throw ValidationError("--token-file \(tokenFile) is empty") }
        return token
    }
}

/// The gateway running on a task of its own, for `start`'s thread-based main loop.
final class RunningGateway: @unchecked Sendable {
    // SAFETY: `group` is set once before the server starts; the rest is only touched under `lock`.
    private let lock = Lock()
    private var address: String?
    private var failure: Error?
    private var finished = false
    private var group: ServiceGroup?

    /// Starts serving and returns once the server listens.
    /// - Returns: the address it listens on.
    /// - Throws: when it cannot listen (address in use, unknown host).
    static func start(_ gateway: Gateway, logger: Logger) throws -> (RunningGateway, String) {
        let running = RunningGateway()
        let application = gateway.application { address in running.listening(on: address) }
        let group = ServiceGroup(
            configuration: .init(services: [application], gracefulShutdownSignals: [], logger: logger))
        running.group = group
        Task.detached {
            do {
                try await group.run()
                running.finish(nil)
            } catch {
                running.finish(error)
            }
        }
        return (running, try running.waitUntilListening())
    }

    private func listening(on address: String) {
        lock.withLock {
            self.address = address
            lock.broadcast()
        }
    }

    private func finish(_ error: Error?) {
        lock.withLock {
            failure = error
            finished = true
            lock.broadcast()
        }
    }

    private func waitUntilListening() throws -> String {
        try lock.withLock {
            while address == nil && !finished { lock.wait() }
            if let address { return address }
            throw failure ?? SupervisorError("the HTTP gateway stopped before it listened")
        }
    }

    /// Stops accepting connections, lets requests in flight finish (up to `timeout`), stops.
    func stop(timeout: Duration) {
        guard let group else { return }
        Task.detached { await group.triggerGracefulShutdown() }
        let deadline = ContinuousClock.now + timeout
        lock.withLock { while !finished { if !lock.wait(until: deadline) { break } } }
    }
}

extension PrometheusMetricsFactory {
    /// The metrics backend for `/metrics`, with latency buckets from 50 µs (a no-op call) to 30 s.
    static func plugvisor(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
            .seconds(10), .seconds(30),
        ]
        return factory
    }
}
