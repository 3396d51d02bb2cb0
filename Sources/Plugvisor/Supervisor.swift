import Foundation
import Logging
import PlugvisorManifest
import PlugvisorPosix
import PlugvisorProtocol
import ServiceLifecycle

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
    /// Threads for the async API's and the gateway's blocking work (each call waiting for its
    /// worker holds one); nil: `blockingThreads(for:)` of the manifest. Past them, calls wait
    /// for a thread, within their plugin's timeout.
    public var blockingThreads: Int?
    /// Functions of the embedding program that plugins may call, each plugin those its manifest
    /// entry grants (`host_functions`).
    public var hostFunctions: [HostFunction]
    /// Where modules built from Swift sources are kept; nil: `SwiftSourceBuilder.defaultCacheDirectory()`.
    public var cacheDirectory: String?

    public init(
        workerExecutable: String? = nil, maxFrameLength: Int = Framing.defaultMaxFrameLength,
        gracePeriod: Duration = .seconds(10), workerUser: WorkerUser? = nil, sandboxDrill: Bool = false,
        watchFiles: Bool = true, brokerExecutable: String? = nil, workerUIDs: ClosedRange<UInt32> = defaultWorkerUIDs,
        blockingThreads: Int? = nil, hostFunctions: [HostFunction] = [], cacheDirectory: String? = nil
    ) {
        self.hostFunctions = hostFunctions
        self.cacheDirectory = cacheDirectory
        precondition(
            workerUIDs.count >= 3, "the worker uid range needs the broker's, inspect's and at least one plugin uid")
        precondition(blockingThreads.map { $0 > 0 } ?? true, "the blocking pool needs at least one thread")
        self.blockingThreads = blockingThreads
        self.workerUIDs = workerUIDs
        self.workerExecutable = workerExecutable ?? WorkerLauncher.defaultWorkerExecutable()
        self.brokerExecutable = brokerExecutable ?? WorkerLauncher.defaultBrokerExecutable()
        self.maxFrameLength = maxFrameLength
        self.gracePeriod = gracePeriod
        self.workerUser = workerUser
        self.sandboxDrill = sandboxDrill
        self.watchFiles = watchFiles
    }

    /// As many threads as the manifest's plugins can have calls running and queued
    /// (`instances` + `max_queue` each), so that a plugin at its limits answers `overloaded` at
    /// once rather than holding threads others need, plus 8 for starts, reloads, status and
    /// metrics; at most 512 (the gateway's in-flight default). Plugins a manifest reload adds
    /// do not grow it.
    public static func blockingThreads(for manifest: Manifest) -> Int {
        min(8 + manifest.plugins.reduce(0) { $0 + $1.instances + $1.maxQueue }, 512)
    }

    /// The user the network broker runs as under root.
    var brokerUser: WorkerUser { workerUser ?? WorkerUser(uid: workerUIDs.lowerBound, gid: workerUIDs.lowerBound) }

    /// The user `plugvisor inspect`'s worker runs as under root.
    var inspectUser: WorkerUser { workerUser ?? WorkerUser(uid: workerUIDs.upperBound, gid: workerUIDs.upperBound) }

    /// Parses `FIRST-LAST` for `workerUIDs`.
    public static func uidRange(_ text: String) throws -> ClosedRange<UInt32> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let first = UInt32(parts[0]), let last = UInt32(parts[1]), first > 0, last >= first + 2
        else {
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
/// Its operations are async: their blocking work (a call waiting for its worker, a start
/// waiting for processes) runs on a bounded pool of threads (`SupervisorConfiguration
/// .blockingThreads`), never on Swift's cooperative pool and never on a thread per call. All
/// are thread-safe; a call never waits past its plugin's timeout, counted from when it was made,
/// waiting for a thread included.
public final class Supervisor: Sendable {
    /// The blocking operations, for this package's own thread-based code (the CLI, the control
    /// socket, the benchmark).
    package let core: SupervisorCore

    public init(
        manifest: Manifest, configuration: SupervisorConfiguration = .init(),
        logger: Logger = Logger(label: "plugvisor.supervisor")
    ) {
        core = SupervisorCore(manifest: manifest, configuration: configuration, logger: logger)
    }

    /// A supervisor whose plugins may call `hostFunctions`, each plugin those its manifest entry
    /// grants (`host_functions`); they join any in `configuration`.
    public convenience init(
        manifest: Manifest, configuration: SupervisorConfiguration = .init(), hostFunctions: [HostFunction],
        logger: Logger = Logger(label: "plugvisor.supervisor")
    ) {
        var configuration = configuration
        configuration.hostFunctions += hostFunctions
        self.init(manifest: manifest, configuration: configuration, logger: logger)
    }

    /// The manifest in use (the last one loaded without errors).
    public var manifest: Manifest { core.manifest }

    /// How many threads the blocking pool has.
    public var blockingThreads: Int { core.pool.threads }

    /// What a manifest reload did.
    public struct ManifestChanges: Sendable, Equatable {
        public var added: [String] = []
        public var removed: [String] = []
        public var reloaded: [String: PluginReloadResult] = [:]
    }

    /// Starts every plugin's workers; returns when each plugin is ready or failed. Calling it
    /// again waits for the first start and does nothing more.
    public func start() async {
        await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in core.start { finished.resume() }
        }
    }

    /// Calls the plugin's `execute` with `context` (`{"request_id", "headers", "parameters"}`;
    /// see `PluginContext`). The call waits for its worker on a pool thread, so no Swift
    /// concurrency thread waits; it ends within the plugin's timeout, counted from now, even if
    /// it waited for a pool thread or the task is cancelled.
    /// - Returns: the guest's result object (`{"success", "data", "error"?}`).
    /// - Throws: a typed `PluginError` (unknown plugin, timeout, crash, overloaded, ...).
    public func execute(plugin name: String, context: JSONValue) async throws(PluginError) -> JSONValue {
        let calledAt = ContinuousClock.now
        let runtime = try core.runtime(name).get()
        let callers = HostFunction.waitingCallers
        try Self.checkNesting(of: name, instances: runtime.spec.instances, callers: callers).get()
        let timeout = runtime.spec.timeout
        let threads = core.pool.threads
        return try await core.pool.run(
            until: calledAt + timeout,
            orElse: { startedAt in
                guard let startedAt else {
                    return .failure(
                        PluginError(
                            .timeout, plugin: name,
                            "no answer within \(timeout): the call waited all of it for one of the supervisor's \(threads) blocking threads"
                        ))
                }
                return .failure(
                    PluginError(
                        .timeout, plugin: name,
                        "call ran longer than \(timeout), \(calledAt.duration(to: startedAt)) of it waiting for a blocking thread"
                    ))
            },
            { runtime.execute(context: context, calledAt: calledAt, callers: callers) }
        ).get()
    }

    /// A call a host function makes (`callers` wait for it) that could never be answered: every
    /// worker of `name` waits for it, or the nesting is too deep.
    static func checkNesting(of name: String, instances: Int, callers: [String]) -> Result<Void, PluginError> {
        if callers.count >= HostFunction.maxNesting {
            return .failure(
                PluginError(
                    .badRequest, plugin: name,
                    "host functions nest calls of plugins deeper than \(HostFunction.maxNesting): \(callers.joined(separator: " → ")) → \(name)"
                ))
        }
        let waiting = callers.count { $0 == name }
        if waiting >= instances {
            return .failure(
                PluginError(
                    .badRequest, plugin: name,
                    "a host function called \(name) while \(waiting == 1 ? "its only worker waits" : "all \(waiting) of its workers wait") for that function's answer; give \(name) more instances"
                ))
        }
        return .success(())
    }

    /// Calls the exported `function` of an `abi: extism` plugin with `input`, as Extism's hosts do.
    /// - Returns: the output bytes the plugin set.
    /// - Throws: `plugin_failed` with the plugin's own message (its `error_set`, or a non-zero
    ///   return code), or any error `execute` throws (timeout, trap, out of fuel, `oom`, ...).
    public func call(plugin name: String, function: String, input: [UInt8]) async throws(PluginError) -> [UInt8] {
        let abi = try core.runtime(name).get().spec.abi
        guard abi == .extism else {
            throw PluginError(
                .badRequest, plugin: name,
                "\(name) is an abi: \(abi.rawValue) plugin: call it with a context (execute), not a function name")
        }
        let result = try await execute(plugin: name, context: ExtismCall.context(function: function, input: input))
        return try ExtismCall.output(of: result, plugin: name).get()
    }

    /// Calls the plugin with a typed context.
    public func execute(plugin name: String, context: PluginContext) async throws(PluginError) -> JSONValue {
        try await execute(plugin: name, context: context.json)
    }

    /// SIGKILLs the plugin's workers now; it stays stopped until `restart` or a reload.
    public func kill(plugin name: String) async throws(PluginError) {
        try await runBlocking { [core] in core.kill(plugin: name) }.get()
    }

    /// Starts the plugin again with fresh workers, and returns once they are ready or failed.
    public func restart(plugin name: String) async throws(PluginError) {
        try await runBlocking { [core] in core.restart(plugin: name) }.get()
    }

    /// Reloads one plugin (zero failed calls); a version that cannot start leaves the old one
    /// serving and comes back as `.failed(reason)`.
    public func reload(plugin name: String) async throws(PluginError) -> PluginReloadResult {
        try await runBlocking { [core] in core.reload(plugin: name) }.get()
    }

    /// Re-reads the manifest file, as `plugvisor reload` and SIGHUP do.
    public func reloadManifest() async throws(PluginError) -> ManifestChanges {
        try await runBlocking { [core] in core.reloadManifest() }.get()
    }

    /// Refuses new calls, lets calls in flight finish within the grace period, and ends every
    /// worker (what the `Service` does on graceful shutdown).
    public func shutdown() async {
        await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
            core.shutdown { finished.resume() }
        }
    }

    /// Plugins that are not serving, with the reason.
    public var failedPlugins: [(name: String, reason: String)] { core.failedPlugins }

    /// Every plugin's state, counters, workers and last reload, in manifest order. It takes
    /// each plugin's lock and reads `/proc` (the gateway calls it on the blocking pool).
    public func status() -> StatusReport { core.status() }

    /// One plugin's status, or `unknown_plugin`.
    public func status(of name: String) -> Result<PluginStatus, PluginError> { core.status(of: name) }

    /// Sets every plugin's gauges (queue depth, workers, memory, readiness, generation) from
    /// its status; call before a metrics scrape.
    public func updateGauges() { core.updateGauges() }

    /// Runs blocking supervisor work (a status read, a body's decoding) on the supervisor's
    /// blocking pool and resumes when it is done.
    package func runBlocking<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await core.pool.run(work)
    }
}

// MARK: swift-service-lifecycle

/// Run the supervisor in a `ServiceGroup`: `run()` starts every plugin (unless `start()` did
/// already), serves until graceful shutdown (SIGTERM/SIGINT when the group is configured for
/// them), then drains and stops every worker.
extension Supervisor: Service {
    public func run() async throws {
        await start()
        try? await gracefulShutdown()  // returns on graceful shutdown; throws on cancellation: stop either way
        await shutdown()
    }
}
