import Glibc
import PlugvisorProtocol
import PlugvisorSandbox

/// A build step of a plugin from source (`SupervisorMessage.compile`): lock down as the request
/// says, then become the compiler or the linker, whose output goes back on the channel.
enum CompileStep {
    static func run(_ request: CompileRequest, channel: Int32) -> Never {
        do {
            try Lockdown.setResourceLimits(
                ResourceLimits(
                    dataBytes: request.limits.dataBytes, openFiles: 1024, cpuSeconds: request.limits.cpuSeconds,
                    fileBytes: request.limits.fileBytes))
            try Lockdown.apply(
                LockdownPlan(
                    directories: request.directories.map {
                        LockdownPlan.Directory(
                            path: $0.path, writable: $0.access == .write, executable: $0.access == .execute,
                            listOnly: $0.access == .list)
                    },
                    user: request.workerUser, policy: .compiler))
        } catch {
            PlugvisorWorker.writeError("plugvisor-worker: \(error)")
            exit(70)
        }
        // The diagnostics travel on the channel from here; nothing else is left open.
        guard dup2(channel, 1) == 1, dup2(channel, 2) == 2 else {
            PlugvisorWorker.writeError("plugvisor-worker: cannot point the compiler's output at the channel")
            exit(70)
        }
        close(channel)
        let argv = ([request.program] + request.arguments).map { strdup($0) } + [nil]
        let envp = request.environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        execve(request.program, argv, envp)
        PlugvisorWorker.writeError(
            "plugvisor-worker: cannot run \(request.program): \(String(cString: strerror(errno)))")
        exit(127)
    }
}
