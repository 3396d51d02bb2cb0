import Foundation
import Logging
import PlugvisorManifest
import PlugvisorPosix
import PlugvisorProtocol
import Synchronization

/// The supervisor's blocking core: the registry of plugins, and every operation on them as a
/// method that returns when it is done. `Supervisor` is its async face for embedders; the CLI
/// and the control socket, which run on threads of their own, call it directly. All methods are
/// thread-safe; a call never waits past its plugin's timeout.
package final class SupervisorCore: @unchecked Sendable {
    // SAFETY: `plugins`, `order`, `manifestInUse`, `reloadQueues`, `watcher`, `startPhase` and
    // `startWaiters` are only touched under `registry`; the rest is immutable or thread-safe.
    private let registry = Lock()
    private var plugins: [String: PluginController] = [:]
    private var order: [String] = []
    private var manifestInUse: Manifest
    private let launcher: WorkerLauncher
    private let configuration: SupervisorConfiguration
    private let logger: Logger
    /// Where blocking work runs for async callers, and where starts and shutdowns fan out.
    let pool: BlockingPool
    /// Each plugin's reloads run one at a time, in the order they were asked for, on a queue of
    /// its own: one plugin's slow reload (a new version that takes its whole timeout to fail)
    /// never holds up another's. Manifest reloads run one at a time too.
    private var reloadQueues: [String: DispatchQueue] = [:]
    private let manifestReloads = DispatchQueue(label: "plugvisor.reload.manifest")
    private var watcher: DirectoryWatcher?
    private var startPhase = StartPhase.notStarted
    private var startWaiters: [@Sendable () -> Void] = []
    private enum StartPhase { case notStarted, starting, started }

    package init(manifest: Manifest, configuration: SupervisorConfiguration, logger: Logger) {
        manifestInUse = manifest
        self.configuration = configuration
        self.logger = logger
        pool = BlockingPool(
            threads: configuration.blockingThreads ?? SupervisorConfiguration.blockingThreads(for: manifest))
        launcher = WorkerLauncher(configuration: configuration, logger: logger)
        for spec in manifest.plugins {
            plugins[spec.name] = PluginController(spec: spec, launcher: launcher, logger: logger)
        }
        order = manifest.plugins.map(\.name)
    }

    /// The manifest in use (the last one loaded without errors).
    package var manifest: Manifest { registry.withLock { manifestInUse } }

    // MARK: Lifecycle

    /// Starts every plugin's workers and returns when each plugin is ready or failed, then
    /// watches the plugins' files for changes (when `watchFiles`). Call it from a thread of your
    /// own, not a pool thread: the plugins start on the pool.
    /// A plugin that fails to load does not stop the others: see `status()`. Calling it again
    /// (from any thread) waits for the first start to finish and does nothing more.
    package func start() {
        Self.waiting { start(then: $0) }
    }

    /// Starts every plugin on the pool, one job each, and calls `done` once each is ready or
    /// failed and the watcher runs. A start already begun (from anywhere) is not begun again:
    /// `done` is called when it ends. Blocks no thread while it waits.
    func start(then done: @escaping @Sendable () -> Void) {
        enum Claim {
            case first([PluginController])
            case waiting, finished
        }
        let claim = registry.withLock { () -> Claim in
            switch startPhase {
            case .notStarted:
                startPhase = .starting
                startWaiters = [done]
                return .first(order.compactMap { plugins[$0] })
            case .starting:
                startWaiters.append(done)
                return .waiting
            case .started:
                return .finished
            }
        }
        switch claim {
        case .waiting: return
        case .finished: done()
        case let .first(runtimes):
            forEachOnPool(runtimes, { $0.start() }) { [self] in
                let watcher = configuration.watchFiles ? makeWatcher() : nil
                let waiters = registry.withLock {
                    self.watcher = watcher
                    startPhase = .started
                    defer { startWaiters = [] }
                    return startWaiters
                }
                updateWatches()
                for waiter in waiters { waiter() }
            }
        }
    }

    private func makeWatcher() -> DirectoryWatcher? {
        do { return try DirectoryWatcher { [weak self] changed in self?.filesChanged(changed) } } catch {
            logger.error("cannot watch plugin files, hot reload is off: \(error)")
            return nil
        }
    }

    /// Refuses new calls, lets calls in flight finish within the grace period, ends every
    /// worker. Call it from a thread of your own, not a pool thread.
    package func shutdown() {
        Self.waiting { shutdown(then: $0) }
    }

    /// `shutdown()`, with each plugin's drain a job on the pool; `done` is called once every
    /// worker has ended. Blocks no thread while it waits.
    func shutdown(then done: @escaping @Sendable () -> Void) {
        let deadline = ContinuousClock.now + configuration.gracePeriod
        let (runtimes, watcher) = registry.withLock { (Array(plugins.values), self.watcher) }
        watcher?.stop()
        forEachOnPool(runtimes, { $0.shutdown(deadline: deadline) }) { [self] in
            launcher.stop()
            logger.info("all workers stopped")
            done()
        }
    }

    /// Runs `body` for each item, each a job on the pool, then `then` on the pool thread that
    /// finished last.
    private func forEachOnPool<Item: Sendable>(
        _ items: [Item], _ body: @escaping @Sendable (Item) -> Void, then: @escaping @Sendable () -> Void
    ) {
        guard !items.isEmpty else { return pool.submit(then) }
        let remaining = Countdown(items.count)
        for item in items {
            pool.submit {
                body(item)
                if remaining.finishOne() { then() }
            }
        }
    }

    /// Blocks the calling thread until `begin`'s completion is called.
    private static func waiting(_ begin: (@escaping @Sendable () -> Void) -> Void) {
        let finished = DispatchSemaphore(value: 0)
        begin { finished.signal() }
        finished.wait()
    }

    /// Plugins that are not serving, with the reason.
    package var failedPlugins: [(name: String, reason: String)] {
        status().plugins.filter { $0.state == .failed }.map { ($0.name, $0.lastError ?? "unknown reason") }
    }

    // MARK: Operations

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
    /// - Returns: failure with the plugin's error when it does not come to serve.
    package func restart(plugin name: String) -> Result<Void, PluginError> {
        runtime(name).flatMap { $0.restart().map { _ in } }
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

    /// Re-reads the manifest (`plugvisor reload`, SIGHUP): added plugins start, removed ones
    /// drain and stop, changed ones (file, limits or capabilities) reload. A manifest with
    /// errors changes nothing.
    /// - Returns: what changed, or `invalid_manifest` with every problem.
    package func reloadManifest() -> Result<Supervisor.ManifestChanges, PluginError> {
        manifestReloads.sync {
            let path = registry.withLock { manifestInUse.path }
            let next: Manifest
            do throws(ManifestErrors) { next = try Manifest.load(path: path) } catch {
                logger.error("manifest reload refused, nothing changed:\n\(error.description)")
                return .failure(
                    PluginError(
                        .invalidManifest, "nothing changed; \(error.problems.count) problem(s):\n\(error.description)"))
            }
            var changes = Supervisor.ManifestChanges()
            let (current, added, removed) = registry.withLock {
                () -> ([String: PluginController], [PluginController], [PluginController]) in
                let newNames = Set(next.plugins.map(\.name))
                let removed = plugins.filter { !newNames.contains($0.key) }
                let added = next.plugins.filter { plugins[$0.name] == nil }.map {
                    PluginController(spec: $0, launcher: launcher, logger: logger)
                }
                for name in removed.keys { plugins.removeValue(forKey: name) }
                for runtime in added { plugins[runtime.name] = runtime }
                order = next.plugins.map(\.name)
                manifestInUse = next
                return (plugins, added, Array(removed.values))
            }
            changes.added = added.map(\.name)
            changes.removed = removed.map(\.name).sorted()
            let deadline = ContinuousClock.now + configuration.gracePeriod
            for runtime in removed {
                pool.submit { runtime.shutdown(deadline: deadline) }
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
            logger.info(
                "manifest reloaded: added \(changes.added), removed \(changes.removed), reloaded \(changes.reloaded.keys.sorted())"
            )
            return .success(changes)
        }
    }

    /// The watcher saw these files change: reload the plugins whose module they are, if the
    /// bytes really changed (an unchanged rewrite does nothing).
    private func filesChanged(_ paths: Set<String>) {
        let affected = registry.withLock { plugins.values.filter { $0.spec.isChanged(by: paths) } }
        for runtime in affected {
            reloadQueue(runtime.name).async { _ = runtime.reload(spec: runtime.spec, force: false) }
        }
    }

    private func updateWatches() {
        let (directories, watcher) = registry.withLock {
            (Set(plugins.values.map(\.spec.watchedDirectory)), self.watcher)
        }
        watcher?.watch(directories: directories)
    }

    func runtime(_ name: String) -> Result<PluginController, PluginError> {
        registry.withLock {
            guard let runtime = plugins[name] else {
                return .failure(
                    PluginError(
                        .unknownPlugin, plugin: name,
                        "no plugin named '\(name)' (known: \(order.joined(separator: ", ")))"))
            }
            return .success(runtime)
        }
    }

    // MARK: Status

    /// Every plugin's state, counters, workers and last reload, in manifest order.
    package func status() -> StatusReport {
        StatusReport(plugins: runtimesWithStatus().map(\.1))
    }

    /// One plugin's status, or `unknown_plugin`.
    package func status(of name: String) -> Result<PluginStatus, PluginError> {
        runtime(name).map { $0.status() }
    }

    /// Sets every plugin's gauges (queue depth, workers, memory, readiness, generation) from
    /// its status; call before a metrics scrape.
    package func updateGauges() {
        for (runtime, status) in runtimesWithStatus() { runtime.metrics.update(from: status) }
    }

    private func runtimesWithStatus() -> [(PluginController, PluginStatus)] {
        let runtimes = registry.withLock { order.compactMap { plugins[$0] } }
        return runtimes.map { ($0, $0.status()) }
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

/// Counts jobs down to the last one.
private final class Countdown: Sendable {
    private let left: Atomic<Int>
    init(_ count: Int) { left = Atomic(count) }
    /// True for the job that finishes last.
    func finishOne() -> Bool { left.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 }
}

extension PluginSpec {
    /// Where a change means a new version: the module's folder, or the sources' folder.
    var watchedDirectory: String {
        source?.folder ?? (wasm as NSString).deletingLastPathComponent
    }

    /// Whether these changed files are this plugin's module or one of its Swift sources.
    func isChanged(by paths: Set<String>) -> Bool {
        guard let source else { return paths.contains(wasm) }
        return paths.contains(source.path)
            || paths.contains { $0.hasSuffix(".swift") && ($0 as NSString).deletingLastPathComponent == source.path }
    }
}
