import Foundation
import Logging
import PlugvisorManifest
import PlugvisorPosix
import PlugvisorProtocol

/// What every plugin shares: where the worker binary is, the thread that spawns workers, and the
/// network broker.
final class WorkerLauncher: Sendable {
    let configuration: SupervisorConfiguration
    private let spawner: Spawner
    /// Performs guests' `plugvisor.http_request` in the sandboxed `plugvisor-broker` process.
    let broker: BrokerClient
    private let pluginUsers: PluginUsers

    init(configuration: SupervisorConfiguration, logger: Logger = Logger(label: "plugvisor.supervisor")) {
        self.configuration = configuration
        let spawner = Spawner()
        self.spawner = spawner
        pluginUsers = PluginUsers(configuration.workerUIDs)
        broker = BrokerClient(logger: logger, maxFrameLength: configuration.maxFrameLength) {
            logger throws(SystemError) in
            try Self.launchBroker(configuration: configuration, spawner: spawner, logger: logger)
        }
    }

    var workerExecutable: String { configuration.workerExecutable }

    /// The user `plugin`'s workers drop to, when the supervisor runs as root.
    func workerUser(for plugin: String) -> WorkerUser? {
        guard geteuid() == 0 else { return nil }
        return configuration.workerUser ?? pluginUsers.user(for: plugin)
    }

    /// Call once every worker is gone: ends the broker, then the spawner thread.
    func stop() {
        broker.stop()
        spawner.stop()
    }

    /// Spawns the network broker from the spawner thread (so that its PDEATHSIG holds), wired as
    /// every child is (`ChildLauncher`). When the supervisor runs as root, the broker drops to
    /// the worker user.
    private static func launchBroker(
        configuration: SupervisorConfiguration, spawner: Spawner, logger: Logger
    ) throws(SystemError) -> LaunchedChild {
        let executable = configuration.brokerExecutable
        // An embedder's own executable has no broker beside it until they build one: say how.
        guard access(executable, X_OK) == 0 else {
            throw SystemError(
                "\(executable) cannot be run, so plugins have no network: build it (`swift build --product "
                    + "plugvisor-broker`, or depend on the plugvisor-broker product) and put it beside this executable, "
                    + "or name it with PLUGVISOR_BROKER or SupervisorConfiguration.brokerExecutable")
        }
        let user = geteuid() == 0 ? configuration.brokerUser : nil
        return try ChildLauncher.launch(.broker(executable, user: user), logger: logger, spawner: spawner)
    }

    /// Spawns a worker for `plugin` from the spawner thread (`ChildLauncher`), its module on fd 4,
    /// and starts its monitor.
    func launchWorker(
        plugin: PluginSpec, module: [UInt8], logger: Logger,
        onExit: @escaping @Sendable (WorkerHandle, ProcessExit) -> Void
    ) throws(PluginError) -> WorkerHandle {
        let launched: LaunchedChild
        do throws(SystemError) {
            launched = try ChildLauncher.launch(
                .worker(workerExecutable, plugin: plugin.name, module: module), logger: logger, spawner: spawner)
        } catch {
            throw PluginError(.internalError, plugin: plugin.name, "cannot start worker \(workerExecutable): \(error)")
        }
        let worker = WorkerHandle(
            process: launched.process,
            channel: FrameChannel(
                descriptor: launched.channel, maxFrameLength: configuration.maxFrameLength,
                spin: PluginController.answerSpin))
        worker.process.monitor { [worker] exit in onExit(worker, exit) }
        return worker
    }

    /// `plugvisor-worker` beside the running executable, unless `PLUGVISOR_WORKER` says otherwise.
    static func defaultWorkerExecutable() -> String { besideMe("plugvisor-worker", unless: "PLUGVISOR_WORKER") }

    /// `plugvisor-broker` beside the running executable, unless `PLUGVISOR_BROKER` says otherwise.
    static func defaultBrokerExecutable() -> String { besideMe("plugvisor-broker", unless: "PLUGVISOR_BROKER") }

    private static func besideMe(_ name: String, unless variable: String) -> String {
        if let explicit = ProcessInfo.processInfo.environment[variable], !explicit.isEmpty { return explicit }
        let me =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent(name).path
    }
}

/// Gives each plugin a uid of its own from the inner part of a range (the ends are the
/// broker's and inspect's): by a hash of its name, the next free one on a collision, and the
/// same one for the supervisor's lifetime.
final class PluginUsers: @unchecked Sendable {
    // SAFETY: `assigned` and `taken` are only touched under `lock`.
    private let lock = Lock()
    private let first: UInt32
    private let count: UInt32
    private var assigned: [String: UInt32] = [:]
    private var taken: Set<UInt32> = []

    init(_ range: ClosedRange<UInt32>) {
        first = range.lowerBound + 1
        count = range.upperBound - range.lowerBound - 1
    }

    func user(for plugin: String) -> WorkerUser {
        let uid = lock.withLock { () -> UInt32 in
            if let uid = assigned[plugin] { return uid }
            // FNV-1a: stable across runs, unlike Swift's seeded Hasher.
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in plugin.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            var slot = UInt32(hash % UInt64(count))
            // More plugins than uids share them round-robin rather than fail.
            for _ in 0..<count where taken.contains(first + slot) { slot = (slot + 1) % count }
            let uid = first + slot
            assigned[plugin] = uid
            taken.insert(uid)
            return uid
        }
        return WorkerUser(uid: uid, gid: uid)
    }
}
