import ArgumentParser
import Foundation
import Logging
import Metrics
import Plugvisor
import PlugvisorGateway
import PlugvisorManifest
import PlugvisorPosix
import Prometheus

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Run the supervisor in the foreground for the plugins of a manifest.",
        discussion: """
            Validates the manifest, starts each plugin's workers and serves the control socket \
            until `plugvisor stop`, SIGTERM or SIGINT. A plugin that fails to load is reported in \
            `plugvisor status` and the log while the others serve (unless --strict). With --http it \
            also serves the HTTP gateway and Prometheus metrics at /metrics.
            """)

    @Argument(help: "The manifest (YAML or JSON).")
    var manifest: String

    @Flag(help: "Exit with an error if any plugin fails to load.")
    var strict = false

    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "level"))
    var logLevel: Logger.Level = .info

    @Option(
        help: ArgumentHelp("Log format: text for people, json for machines (one object per line).", valueName: "format")
    )
    var logFormat: LogFormat = .text

    @Option(
        name: .customLong("worker-uids"),
        help: ArgumentHelp(
            "When started as root, each plugin's workers run as a uid of their own from this range (the first is the network broker's).",
            valueName: "first-last"))
    var workerUIDs: String =
        "\(SupervisorConfiguration.defaultWorkerUIDs.lowerBound)-\(SupervisorConfiguration.defaultWorkerUIDs.upperBound)"

    @Option(
        help: ArgumentHelp(
            "When started as root, run every worker and the broker as this one user instead (weaker: they share a uid).",
            valueName: "user"))
    var workerUser: String?

    /// Test-only: links plugvisor.sandbox_drill into guests, to prove the seccomp filter.
    @Flag(help: .hidden)
    var sandboxDrill = false

    @OptionGroup var control: ControlOptions

    @OptionGroup var cache: CacheOptions

    @OptionGroup(title: "HTTP gateway") var gateway: GatewayOptions

    func run() throws {
        let level = logLevel
        let format = logFormat
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                switch format {
                case .text: TextLogHandler(label: label)
                case .json: JSONLogHandler(label: label)
                }
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "plugvisor.supervisor")
        raiseDescriptorLimit()
        MallocTuning.returnLargeBuffersWhenFreed()
        let adminToken = try withUsage(of: Self.self) { try gateway.readToken() }
        // Before the supervisor exists: each plugin's metrics bind to the backend when created.
        let metrics = gateway.address.map { _ in PrometheusCollectorRegistry() }
        if let metrics { MetricsSystem.bootstrap(PrometheusMetricsFactory.plugvisor(registry: metrics)) }
        signal(SIGPIPE, SIG_IGN)

        let loaded: Manifest
        do { loaded = try Manifest.load(path: manifest) } catch {
            Output.stderr(error.description)
            Output.stderr("plugvisor: \(error.problems.count) problem(s) in \(manifest); nothing was started")
            throw ExitCode(1)
        }

        var configuration = SupervisorConfiguration(sandboxDrill: sandboxDrill, cacheDirectory: cache.cacheDirectory)
        do {
            configuration.workerUIDs = try SupervisorConfiguration.uidRange(workerUIDs)
            if let workerUser, geteuid() == 0 {
                configuration.workerUser = try SupervisorConfiguration.user(named: workerUser)
            }
        } catch {
            Output.stderr("plugvisor: \(error)")
            throw ExitCode(1)
        }
        let notifier = ServiceNotifier()  // before any child exists: none inherits NOTIFY_SOCKET
        let supervisor = Supervisor(manifest: loaded, configuration: configuration, logger: logger)
        let stopRequested = HandOff<Void>()  // by `stop`, SIGTERM or SIGINT
        let server: ControlServer
        do {
            server = try ControlServer(path: control.path, supervisor: supervisor, logger: logger) {
                stopRequested.fulfill(())
            }
        } catch {
            Output.stderr("plugvisor: \(error)")
            throw ExitCode(1)
        }
        var signalSources: [DispatchSourceSignal] = []
        for number in [SIGTERM, SIGINT, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            if number == SIGHUP {
                source.setEventHandler {
                    logger.info("SIGHUP: re-reading the manifest")
                    notifier.reloading()
                    _ = supervisor.core.reloadManifest()
                    notifier.notify("READY=1", ServiceNotifier.serving(supervisor.status()))
                }
            } else {
                source.setEventHandler { stopRequested.fulfill(()) }
            }
            source.resume()
            signalSources.append(source)
        }

        supervisor.core.start()
        let failed = supervisor.failedPlugins
        for (name, reason) in failed { logger.error("plugin \(name) failed to load: \(reason)") }
        if strict && !failed.isEmpty {
            logger.error("--strict: \(failed.count) plugin(s) failed to load; stopping")
            supervisor.core.shutdown()
            server.close()
            throw ExitCode(1)
        }
        var http: RunningGateway?
        if let address = gateway.address {
            let (host, port) = try GatewayOptions.parse(address: address)
            if adminToken == nil && !["127.0.0.1", "::1", "localhost"].contains(host) {
                logger.warning(
                    "the HTTP gateway on \(address) has no --token-file: anyone who can reach it can kill, restart and reload plugins"
                )
            }
            let configuration = Gateway.Configuration(
                host: host, port: port, adminToken: adminToken, maxBodyBytes: try gateway.maxBodyBytes(),
                maxInFlight: gateway.maxInFlight, maxConnections: gateway.maxConnections,
                requestHeadTimeout: try gateway.requestHeadTimeout(), metrics: metrics)
            do {
                let (running, listening) = try RunningGateway.start(
                    Gateway(
                        supervisor: supervisor, configuration: configuration, logger: Logger(label: "plugvisor.http")),
                    logger: logger)
                http = running
                logger.info("HTTP gateway listening on http://\(listening)")
            } catch {
                Output.stderr("plugvisor: cannot serve HTTP on \(address): \(error)")
                supervisor.core.shutdown()
                server.close()
                throw ExitCode(1)
            }
        }
        server.serve()
        logger.info(
            "ready: \(loaded.plugins.count - failed.count) of \(loaded.plugins.count) plugins serving; control socket \(server.path)"
        )

        notifier.notify("READY=1", ServiceNotifier.serving(supervisor.status()))
        let heartbeat = notifier.isActive ? Self.heartbeat(notifier, supervisor) : nil

        stopRequested.wait()
        heartbeat?.cancel()
        notifier.notify("STOPPING=1", "STATUS=stopping: draining calls in flight")
        logger.info("stopping: draining calls in flight")
        // HTTP first, so that no new call arrives while the workers drain.
        http?.stop(timeout: configuration.gracePeriod)
        supervisor.core.shutdown()
        server.close()
        withExtendedLifetime(signalSources) {}
        logger.info("stopped")
    }

    /// Under a service manager: STATUS= when the serving count changes, and with a watchdog,
    /// WATCHDOG=1 at half its interval. The ping comes from a status snapshot, which takes the
    /// supervisor's locks, so a supervisor that is stuck stops pinging and gets restarted.
    static func heartbeat(_ notifier: ServiceNotifier, _ supervisor: Supervisor) -> DispatchSourceTimer {
        let interval = min(notifier.watchdogInterval ?? .seconds(5), .seconds(5))
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "plugvisor.notify"))
        var said = ""
        timer.schedule(deadline: .now(), repeating: .microseconds(Int(interval.microseconds)))
        timer.setEventHandler {
            let status = ServiceNotifier.serving(supervisor.status())
            var lines = notifier.watchdogInterval == nil ? [] : ["WATCHDOG=1"]
            if status != said { lines.append(status) }
            said = status
            if !lines.isEmpty { notifier.notify(lines) }
        }
        timer.resume()
        return timer
    }
}

/// Workers (three descriptors each), control clients and HTTP connections all take descriptors:
/// lift the soft limit to the hard one (at most 65,536), as Go's runtime does. Workers set their
/// own, much lower limit.
private func raiseDescriptorLimit() {
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    var limit = rlimit()
    guard getrlimit(resource, &limit) == 0 else { return }
    let wanted = min(limit.rlim_max, 65_536)
    if limit.rlim_cur < wanted {
        limit.rlim_cur = wanted
        _ = setrlimit(resource, &limit)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}
