import Foundation
import Logging
import PlugvisorManifest
import PlugvisorPosix
import PlugvisorProtocol

/// Settings of a supervisor that are not in the manifest.
public struct SupervisorConfiguration: Sendable {
    /// Path of the `plugvisor-worker` executable.
    public var workerExecutable: String
    /// Ceiling on one frame from a worker.
    public var maxFrameLength: Int
    /// How long `shutdown` lets calls in flight finish.
    public var gracePeriod: Duration
    /// When the supervisor runs as root, workers drop to this user once their grants are open.
    public var workerUser: WorkerUser?
    /// Test-only: lets guests call `plugvisor.sandbox_drill` to prove the seccomp filter.
    public var sandboxDrill: Bool

    public init(
        workerExecutable: String? = nil, maxFrameLength: Int = Framing.defaultMaxFrameLength,
        gracePeriod: Duration = .seconds(10), workerUser: WorkerUser? = nil, sandboxDrill: Bool = false
    ) {
        self.workerExecutable = workerExecutable ?? SupervisorEnvironment.defaultWorkerExecutable()
        self.maxFrameLength = maxFrameLength
        self.gracePeriod = gracePeriod
        self.workerUser = workerUser
        self.sandboxDrill = sandboxDrill
    }

    /// The uid and gid of `name`, for `workerUser`.
    /// - Throws: `SupervisorError` when there is no such user.
    public static func user(named name: String) throws -> WorkerUser {
        guard let entry = getpwnam(name) else { throw SupervisorError("no user named '\(name)' for the workers") }
        return WorkerUser(uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }
}

/// Runs the plugins of a manifest, each in its own worker processes, and routes calls to them.
///
/// All methods are thread-safe and blocking; a call never waits past its plugin's timeout.
public final class Supervisor: Sendable {
    public let manifest: Manifest
    private let plugins: [String: PluginRuntime]
    private let environment: SupervisorEnvironment
    private let order: [String]
    private let configuration: SupervisorConfiguration
    private let logger: Logger

    public init(manifest: Manifest, configuration: SupervisorConfiguration = .init(),
                logger: Logger = Logger(label: "plugvisor.supervisor")) {
        self.manifest = manifest
        self.configuration = configuration
        self.logger = logger
        let environment = SupervisorEnvironment(configuration: configuration)
        self.environment = environment
        var plugins: [String: PluginRuntime] = [:]
        for spec in manifest.plugins {
            plugins[spec.name] = PluginRuntime(spec: spec, environment: environment, logger: logger)
        }
        self.plugins = plugins
        self.order = manifest.plugins.map(\.name)
    }

    /// Starts every plugin's workers and returns when each plugin is ready or failed.
    /// A plugin that fails to load does not stop the others: see `status()`.
    public func start() {
        let group = DispatchGroup()
        for name in order {
            let runtime = plugins[name]!
            DispatchQueue.global().async(group: group) { runtime.start() }
        }
        group.wait()
    }

    /// Plugins that are not serving, with the reason.
    public var failedPlugins: [(name: String, reason: String)] {
        status().plugins.filter { $0.state == "failed" }.map { ($0.name, $0.lastError ?? "unknown reason") }
    }

    /// Calls the plugin's `execute` with `context` (`{"request_id", "headers", "parameters"}`).
    /// - Returns: the guest's result object, or a typed error.
    public func execute(plugin name: String, context: JSONValue) -> Result<JSONValue, PluginError> {
        runtime(name).flatMap { $0.execute(context: context) }
    }

    /// SIGKILLs the plugin's workers now: calls in flight get `killed`, later calls `stopped`,
    /// until `restart`. Other plugins are not touched.
    public func kill(plugin name: String) -> Result<Void, PluginError> {
        runtime(name).map { $0.kill() }
    }

    /// Starts the plugin again with fresh workers (re-reading its module), whatever its state.
    public func restart(plugin name: String) -> Result<Void, PluginError> {
        runtime(name).map { $0.restart() }
    }

    private func runtime(_ name: String) -> Result<PluginRuntime, PluginError> {
        guard let runtime = plugins[name] else {
            return .failure(PluginError(.unknownPlugin, plugin: name,
                "no plugin named '\(name)' (known: \(order.joined(separator: ", ")))"))
        }
        return .success(runtime)
    }

    public func status() -> StatusReport {
        StatusReport(plugins: order.map { plugins[$0]!.status() })
    }

    /// Refuses new calls, lets calls in flight finish within the grace period, ends every worker.
    public func shutdown() {
        let deadline = ContinuousClock.now + configuration.gracePeriod
        let group = DispatchGroup()
        for runtime in plugins.values {
            DispatchQueue.global().async(group: group) { runtime.shutdown(deadline: deadline) }
        }
        group.wait()
        environment.stop()
        logger.info("all workers stopped")
    }
}
