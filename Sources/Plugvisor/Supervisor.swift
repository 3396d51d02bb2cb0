import Foundation
import Logging
import PlugvisorManifest
import PlugvisorPosix
import PlugvisorProtocol

/// Settings of a supervisor that are not in the manifest.
public struct SupervisorConfiguration: Sendable {
    /// Path of the `plugvisor-worker` executable.
    public var workerExecutable: String
    /// Path of the `plugvisor-broker` executable, which performs guests' HTTP requests.
    public var brokerExecutable: String
    /// Ceiling on one frame from a worker.
    public var maxFrameLength: Int
    /// How long `shutdown` lets calls in flight finish.
    public var gracePeriod: Duration
    /// When the supervisor runs as root and this is set, every worker and the broker run as this
    /// one user (the old way; weaker: they can signal each other's processes).
    public var workerUser: WorkerUser?
    /// When the supervisor runs as root and `workerUser` is nil, each plugin's workers run as a
    /// uid (and gid) of their own from this range, as systemd's DynamicUser does: the first is
    /// the broker's, the last `plugvisor inspect`'s, the others go to plugins by a hash of their
    /// name, so a plugin keeps its uid across restarts and reorders.
    public var workerUIDs: ClosedRange<UInt32>
    /// systemd's DynamicUser range.
    public static let defaultWorkerUIDs: ClosedRange<UInt32> = 61184...65519
    /// Test-only: lets guests call `plugvisor.sandbox_drill` to prove the seccomp filter.
    public var sandboxDrill: Bool
    /// Reload a plugin when its module file changes on disk.
    public var watchFiles: Bool

    public init(
        workerExecutable: String? = nil, maxFrameLength: Int = Framing.defaultMaxFrameLength,
        gracePeriod: Duration = .seconds(10), workerUser: WorkerUser? = nil, sandboxDrill: Bool = false,
        watchFiles: Bool = true, brokerExecutable: String? = nil, workerUIDs: ClosedRange<UInt32> = defaultWorkerUIDs
    ) {
        precondition(workerUIDs.count >= 3, "the worker uid range needs the broker's, inspect's and at least one plugin uid")
        self.workerUIDs = workerUIDs
        self.workerExecutable = workerExecutable ?? SupervisorEnvironment.defaultWorkerExecutable()
        self.brokerExecutable = brokerExecutable ?? SupervisorEnvironment.defaultBrokerExecutable()
        self.maxFrameLength = maxFrameLength
        self.gracePeriod = gracePeriod
        self.workerUser = workerUser
        self.sandboxDrill = sandboxDrill
        self.watchFiles = watchFiles
    }

    /// The user the network broker runs as under root.
    var brokerUser: WorkerUser { workerUser ?? WorkerUser(uid: workerUIDs.lowerBound, gid: workerUIDs.lowerBound) }

    /// The user `plugvisor inspect`'s worker runs as under root.
    var inspectUser: WorkerUser { workerUser ?? WorkerUser(uid: workerUIDs.upperBound, gid: workerUIDs.upperBound) }

    /// Parses `FIRST-LAST` for `workerUIDs`.
    public static func uidRange(_ text: String) throws -> ClosedRange<UInt32> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let first = UInt32(parts[0]), let last = UInt32(parts[1]), first > 0, last >= first + 2 else {
            throw SupervisorError("--worker-uids wants FIRST-LAST with at least three uids above 0, not '\(text)'")
        }
        return first...last
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
/// Embedding programs use its async API (`Supervisor+Requests.swift`); the blocking methods
/// it wraps are for this package's own thread-based code (the CLI, the control socket). All
/// are thread-safe; a call never waits past its plugin's timeout.
public final class Supervisor: @unchecked Sendable {
    // SAFETY: `plugins`, `order`, `manifest`, `reloadQueues` and `startPhase` are only touched under `registry`; the rest is
    // immutable or thread-safe.
    private let registry = Lock()
    private var plugins: [String: PluginRuntime] = [:]
    private var order: [String] = []
    public private(set) var manifest: Manifest
    private let environment: SupervisorEnvironment
    private let configuration: SupervisorConfiguration
    private let logger: Logger
    /// Each plugin's reloads run one at a time, in the order they were asked for, on a queue of
    /// its own: one plugin's slow reload (a new version that takes its whole timeout to fail)
    /// never holds up another's. Manifest reloads run one at a time too.
    private var reloadQueues: [String: DispatchQueue] = [:]
    private let manifestReloads = DispatchQueue(label: "plugvisor.reload.manifest")
    private var watcher: DirectoryWatcher?
    private var startPhase = StartPhase.notStarted
    private enum StartPhase { case notStarted, starting, started }

    public init(manifest: Manifest, configuration: SupervisorConfiguration = .init(),
                logger: Logger = Logger(label: "plugvisor.supervisor")) {
        self.manifest = manifest
        self.configuration = configuration
        self.logger = logger
        environment = SupervisorEnvironment(configuration: configuration, logger: logger)
        for spec in manifest.plugins {
            plugins[spec.name] = PluginRuntime(spec: spec, environment: environment, logger: logger)
        }
        order = manifest.plugins.map(\.name)
    }

    /// Starts every plugin's workers and returns when each plugin is ready or failed, then
    /// watches the plugins' files for changes (when `watchFiles`).
    /// A plugin that fails to load does not stop the others: see `status()`. Calling it again
    /// (from any thread) waits for the first start to finish and does nothing more.
    package func start() {
        let runtimes = registry.withLock { () -> [PluginRuntime]? in
            switch startPhase {
            case .notStarted:
                startPhase = .starting
                return order.compactMap { plugins[$0] }
            case .starting:
                while startPhase == .starting { registry.wait() }
                return nil
            case .started:
                return nil
            }
        }
        guard let runtimes else { return }
        defer {
            registry.withLock {
                startPhase = .started
                registry.broadcast()
            }
        }
        let group = DispatchGroup()
        for runtime in runtimes {
            DispatchQueue.global().async(group: group) { runtime.start() }
        }
        group.wait()
        if configuration.watchFiles {
            do {
                watcher = try DirectoryWatcher { [weak self] changed in self?.filesChanged(changed) }
                updateWatches()
            } catch {
                logger.error("cannot watch plugin files, hot reload is off: \(error)")
            }
        }
    }

    /// Plugins that are not serving, with the reason.
    public var failedPlugins: [(name: String, reason: String)] {
        status().plugins.filter { $0.state == .failed }.map { ($0.name, $0.lastError ?? "unknown reason") }
    }

    /// Calls the plugin's `execute` with `context` (`{"request_id", "headers", "parameters"}`).
    /// - Returns: the guest's result object, or a typed error.
    package func execute(plugin name: String, context: JSONValue) -> Result<JSONValue, PluginError> {
        runtime(name).flatMap { $0.execute(context: context) }
    }

    /// SIGKILLs the plugin's workers now: calls in flight get `killed`, later calls `stopped`,
    /// until `restart`. Other plugins are not touched.
    package func kill(plugin name: String) -> Result<Void, PluginError> {
        runtime(name).map { $0.kill() }
    }

    /// Starts the plugin again with fresh workers (re-reading its module), whatever its state.
    package func restart(plugin name: String) -> Result<Void, PluginError> {
        runtime(name).map { $0.restart() }
    }

    /// Reloads one plugin now, even if its file did not change: a new generation of workers
    /// takes over once it is ready, with zero failed calls; if it cannot start, the old one
    /// goes on serving.
    package func reload(plugin name: String) -> Result<PluginReloadResult, PluginError> {
        runtime(name).map { runtime in reloadQueue(name).sync { runtime.reload(spec: runtime.spec, force: true) } }
    }

    private func reloadQueue(_ name: String) -> DispatchQueue {
        registry.withLock {
            if let queue = reloadQueues[name] { return queue }
            let queue = DispatchQueue(label: "plugvisor.reload.\(name)")
            reloadQueues[name] = queue
            return queue
        }
    }

    /// What a manifest reload did.
    public struct ManifestChanges: Sendable, Equatable {
        public var added: [String] = []
        public var removed: [String] = []
        public var reloaded: [String: PluginReloadResult] = [:]
    }

    /// Re-reads the manifest (`plugvisor reload`, SIGHUP): added plugins start, removed ones
    /// drain and stop, changed ones (file, limits or capabilities) reload. A manifest with
    /// errors changes nothing.
    /// - Returns: what changed, or `invalid_manifest` with every problem.
    package func reloadManifest() -> Result<ManifestChanges, PluginError> {
        manifestReloads.sync {
            let path = registry.withLock { manifest.path }
            let next: Manifest
            do throws(ManifestErrors) { next = try Manifest.load(path: path) } catch {
                logger.error("manifest reload refused, nothing changed:\n\(error.description)")
                return .failure(PluginError(.invalidManifest, "nothing changed; \(error.problems.count) problem(s):\n\(error.description)"))
            }
            var changes = ManifestChanges()
            let (current, added, removed) = registry.withLock { () -> ([String: PluginRuntime], [PluginRuntime], [PluginRuntime]) in
                let newNames = Set(next.plugins.map(\.name))
                let removed = plugins.filter { !newNames.contains($0.key) }
                let added = next.plugins.filter { plugins[$0.name] == nil }.map {
                    PluginRuntime(spec: $0, environment: environment, logger: logger)
                }
                for name in removed.keys { plugins.removeValue(forKey: name) }
                for runtime in added { plugins[runtime.name] = runtime }
                order = next.plugins.map(\.name)
                manifest = next
                return (plugins, added, Array(removed.values))
            }
            changes.added = added.map(\.name)
            changes.removed = removed.map(\.name).sorted()
            let deadline = ContinuousClock.now + configuration.gracePeriod
            for runtime in removed {
                DispatchQueue.global().async { runtime.shutdown(deadline: deadline) }
            }
            for runtime in added { runtime.start() }
            // Each changed plugin on its own queue, all at once: the slowest sets the pace.
            let reloading = DispatchGroup()
            let results = ReloadResults()
            for spec in next.plugins where !changes.added.contains(spec.name) {
                guard let runtime = current[spec.name] else { continue }
                reloadQueue(spec.name).async(group: reloading) {
                    let result = runtime.reload(spec: spec, force: false)
                    if result != .unchanged { results.record(spec.name, result) }
                }
            }
            reloading.wait()
            changes.reloaded = results.collected
            updateWatches()
            logger.info("manifest reloaded: added \(changes.added), removed \(changes.removed), reloaded \(changes.reloaded.keys.sorted())")
            return .success(changes)
        }
    }

    /// The watcher saw these files change: reload the plugins whose module they are, if the
    /// bytes really changed (an unchanged rewrite does nothing).
    private func filesChanged(_ paths: Set<String>) {
        let affected = registry.withLock { plugins.values.filter { paths.contains($0.spec.wasm) } }
        for runtime in affected {
            reloadQueue(runtime.name).async { _ = runtime.reload(spec: runtime.spec, force: false) }
        }
    }

    private func updateWatches() {
        let directories = registry.withLock {
            Set(plugins.values.map { ($0.spec.wasm as NSString).deletingLastPathComponent })
        }
        watcher?.watch(directories: directories)
    }

    private func runtime(_ name: String) -> Result<PluginRuntime, PluginError> {
        registry.withLock {
            guard let runtime = plugins[name] else {
                return .failure(PluginError(.unknownPlugin, plugin: name,
                    "no plugin named '\(name)' (known: \(order.joined(separator: ", ")))"))
            }
            return .success(runtime)
        }
    }

    /// Every plugin's state, counters, workers and last reload, in manifest order.
    public func status() -> StatusReport {
        StatusReport(plugins: runtimesWithStatus().map(\.1))
    }

    /// One plugin's status, or `unknown_plugin`.
    public func status(of name: String) -> Result<PluginStatus, PluginError> {
        runtime(name).map { $0.status() }
    }

    func runtimesWithStatus() -> [(PluginRuntime, PluginStatus)] {
        let runtimes = registry.withLock { order.compactMap { plugins[$0] } }
        return runtimes.map { ($0, $0.status()) }
    }

    /// Refuses new calls, lets calls in flight finish within the grace period, ends every worker.
    package func shutdown() {
        watcher?.stop()
        let deadline = ContinuousClock.now + configuration.gracePeriod
        let runtimes = registry.withLock { Array(plugins.values) }
        let group = DispatchGroup()
        for runtime in runtimes {
            DispatchQueue.global().async(group: group) { runtime.shutdown(deadline: deadline) }
        }
        group.wait()
        environment.stop()
        logger.info("all workers stopped")
    }
}

/// What the plugins reloaded at once by a manifest reload answered.
private final class ReloadResults: @unchecked Sendable {
    // SAFETY: `results` is only touched under `lock`.
    private let lock = Lock()
    private var results: [String: PluginReloadResult] = [:]
    func record(_ name: String, _ result: PluginReloadResult) { lock.withLock { results[name] = result } }
    var collected: [String: PluginReloadResult] { lock.withLock { results } }
}
