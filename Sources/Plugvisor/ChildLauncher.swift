import Foundation
import Logging
import PlugvisorPosix
import PlugvisorProtocol

/// What a supervised child is started as: a worker for a plugin, the network broker, or a
/// throwaway worker that inspects a module.
struct ChildRole: Sendable {
    var executable: String
    var arguments: [String]
    /// The module the child gets on fd 4, through a sealed memfd of this name; nil for the broker.
    var module: (name: String, bytes: [UInt8])?

    static func worker(_ executable: String, plugin: String, module: [UInt8]) -> ChildRole {
        ChildRole(executable: executable, arguments: [plugin], module: ("plugvisor-\(plugin)", module))
    }

    static func inspector(_ executable: String, module: [UInt8]) -> ChildRole {
        ChildRole(executable: executable, arguments: ["inspect"], module: ("plugvisor-inspect", module))
    }

    /// `user`: who the broker drops to, when the supervisor runs as root.
    static func broker(_ executable: String, user: WorkerUser?) -> ChildRole {
        ChildRole(executable: executable, arguments: user.map { ["--user", $0.argument] } ?? [], module: nil)
    }
}

/// A child just started: its process (to be monitored by its owner, see `SupervisedProcess`)
/// and our end of its channel.
struct LaunchedChild: Sendable {
    let process: SupervisedProcess
    let channel: OwnedDescriptor
}

/// The one way the supervisor starts a child. Every child is wired the same: fd 3 is our
/// socketpair, fd 4 the module's sealed memfd when it has one, stderr a pipe to its monitor, and
/// its environment is empty but for what the Swift runtime needs: the host's environment never
/// reaches a plugin.
enum ChildLauncher {
    /// Starts `role`.
    ///
    /// Every descriptor is owned: the child's ends are closed here as soon as the spawn returns
    /// or throws; ours are returned, or closed by their deinit when this throws.
    /// - Parameter spawner: the thread to fork from, for children that outlive the calling thread
    ///   (PR_SET_PDEATHSIG follows the thread that forked); nil forks from the calling thread.
    /// - Throws: when a descriptor cannot be made or the executable cannot be spawned.
    static func launch(_ role: ChildRole, logger: Logger, spawner: Spawner?) throws(SystemError) -> LaunchedChild {
        let (ours, theirs) = try Descriptors.socketPair()
        let (stderrRead, stderrWrite) = try Descriptors.pipe()
        let moduleFile = try role.module.map { module throws(SystemError) in
            try Descriptors.sealedMemoryFile(name: module.name, contents: module.bytes)
        }
        defer {
            theirs.close()
            stderrWrite.close()
            moduleFile?.close()
        }
        let environment = ["SWIFT_BACKTRACE": "enable=no", "PLUGVISOR_SUPERVISOR_PID": "\(getpid())"]
        let spawn = { @Sendable () throws(SystemError) -> ChildProcess in
            try ChildProcess.spawn(
                executable: role.executable, arguments: role.arguments, environment: environment,
                channel: theirs, extra: moduleFile, stderr: stderrWrite)
        }
        let child: ChildProcess
        if let spawner { child = try spawner.run(spawn) } else { child = try spawn() }
        return LaunchedChild(process: SupervisedProcess(child, stderr: stderrRead, logger: logger), channel: ours)
    }
}
