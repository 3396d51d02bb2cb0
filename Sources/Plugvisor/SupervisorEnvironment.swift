import Foundation
import Logging
import PlugvisorManifest
import PlugvisorPosix
import PlugvisorProtocol

/// What every plugin shares: where the worker binary is, the thread that spawns workers, and the
/// network broker.
final class SupervisorEnvironment: Sendable {
    let configuration: SupervisorConfiguration
    private let spawner: Spawner
    /// Performs guests' `plugvisor.http_request` in the sandboxed `plugvisor-broker` process.
    let broker: BrokerClient

    init(configuration: SupervisorConfiguration, logger: Logger = Logger(label: "plugvisor.supervisor")) {
        self.configuration = configuration
        let spawner = Spawner()
        self.spawner = spawner
        broker = BrokerClient(logger: logger, maxFrameLength: configuration.maxFrameLength) { () throws(SystemError) in
            try Self.launchBroker(configuration: configuration, spawner: spawner)
        }
    }

    var workerExecutable: String { configuration.workerExecutable }

    /// Call once every worker is gone: ends the broker, then the spawner thread.
    func stop() {
        broker.stop()
        spawner.stop()
    }

    /// Spawns the network broker from the spawner thread (so that its PDEATHSIG holds): fd 3 is
    /// our socketpair, stderr a pipe, the environment empty but for what the Swift runtime needs.
    /// When the supervisor runs as root, the broker drops to the worker user.
    private static func launchBroker(
        configuration: SupervisorConfiguration, spawner: Spawner
    ) throws(SystemError) -> BrokerClient.Launched {
        let (ours, theirs) = try Descriptors.socketPair()
        let (stderrRead, stderrWrite) = try Descriptors.pipe()
        defer {
            theirs.close()
            stderrWrite.close()
        }
        let executable = configuration.brokerExecutable
        let user = geteuid() == 0 ? configuration.workerUser : nil
        let arguments = user.map { ["--user", "\($0.uid):\($0.gid)"] } ?? []
        let parent = getpid()
        let process = try spawner.run { () throws(SystemError) in
            try ChildProcess.spawn(
                executable: executable, arguments: arguments,
                environment: ["SWIFT_BACKTRACE": "enable=no", "PLUGVISOR_SUPERVISOR_PID": "\(parent)"],
                channel: theirs, stderr: stderrWrite)
        }
        return BrokerClient.Launched(process: process, channel: ours, stderr: stderrRead)
    }

    /// Spawns a worker for `plugin`: fd 3 is our socketpair, fd 4 a sealed memfd with the module,
    /// stderr a pipe watched by the worker's monitor thread. The worker's environment is empty but
    /// for what the Swift runtime needs: the host's environment never reaches a plugin.
    func launchWorker(
        plugin: PluginSpec, module: [UInt8], logger: Logger,
        onExit: @escaping @Sendable (WorkerHandle, ProcessExit) -> Void
    ) throws(PluginError) -> WorkerHandle {
        do {
            let (ours, theirs) = try Descriptors.socketPair()
            let (stderrRead, stderrWrite) = try Descriptors.pipe()
            let moduleFile = try Descriptors.sealedMemoryFile(name: "plugvisor-\(plugin.name)", contents: module)
            let executable = workerExecutable
            let parent = getpid()
            let process = try spawner.run { () throws(SystemError) in
                try ChildProcess.spawn(
                    executable: executable, arguments: [plugin.name],
                    environment: ["SWIFT_BACKTRACE": "enable=no", "PLUGVISOR_SUPERVISOR_PID": "\(parent)"],
                    channel: theirs, extra: moduleFile, stderr: stderrWrite)
            }
            theirs.close()
            stderrWrite.close()
            moduleFile.close()
            let worker = WorkerHandle(
                process: process,
                channel: FrameChannel(descriptor: ours, maxFrameLength: configuration.maxFrameLength, spin: PluginRuntime.answerSpin),
                logger: logger)
            worker.monitor(stderr: stderrRead) { [worker] exit in onExit(worker, exit) }
            return worker
        } catch {
            throw PluginError(.internalError, plugin: plugin.name, "cannot start worker \(workerExecutable): \(error)")
        }
    }

    /// `plugvisor-worker` beside the running executable, unless `PLUGVISOR_WORKER` says otherwise.
    static func defaultWorkerExecutable() -> String { besideMe("plugvisor-worker", unless: "PLUGVISOR_WORKER") }

    /// `plugvisor-broker` beside the running executable, unless `PLUGVISOR_BROKER` says otherwise.
    static func defaultBrokerExecutable() -> String { besideMe("plugvisor-broker", unless: "PLUGVISOR_BROKER") }

    private static func besideMe(_ name: String, unless variable: String) -> String {
        if let explicit = ProcessInfo.processInfo.environment[variable], !explicit.isEmpty { return explicit }
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent(name).path
    }
}
