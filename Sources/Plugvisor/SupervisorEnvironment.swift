import Foundation
import Logging
import PlugvisorManifest
import PlugvisorPosix
import PlugvisorProtocol

/// What every plugin shares: where the worker binary is and the thread that spawns workers.
final class SupervisorEnvironment: Sendable {
    let configuration: SupervisorConfiguration
    private let spawner = Spawner()

    init(configuration: SupervisorConfiguration) {
        self.configuration = configuration
    }

    var workerExecutable: String { configuration.workerExecutable }

    /// Call once every worker is gone.
    func stop() { spawner.stop() }

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
    static func defaultWorkerExecutable() -> String {
        if let explicit = ProcessInfo.processInfo.environment["PLUGVISOR_WORKER"], !explicit.isEmpty { return explicit }
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("plugvisor-worker").path
    }
}
