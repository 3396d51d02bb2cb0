import CPlugvisorLinux
import Glibc
import PlugvisorProtocol
import PlugvisorSandbox

/// A build step of a plugin from source (`SupervisorMessage.compile`): lock down as the request
/// says, then run the compiler or the linker, whose output goes back on the channel.
enum CompileStep {
    static func run(_ request: CompileRequest, channel: Int32) -> Never {
        do {
            var limits = ResourceLimits(
                dataBytes: request.limits.dataBytes, openFiles: 1024, cpuSeconds: request.limits.cpuSeconds,
                fileBytes: request.limits.fileBytes)
            // Under root the step runs as its plugin's uid, which no one else shares: the count
            // of processes bounds it alone (as an ordinary user it would count the user's own).
            if geteuid() == 0 && request.workerUser != nil { limits.processes = 256 }
            try Lockdown.setResourceLimits(limits)
            try Lockdown.apply(
                LockdownPlan(
                    directories: request.directories.map {
                        LockdownPlan.Directory(
                            path: $0.path, writable: $0.access == .write, executable: $0.access == .execute,
                            listOnly: $0.access == .list)
                    },
                    user: request.workerUser, policy: .compiler, childInOwnPIDNamespace: true))
        } catch {
            PlugvisorWorker.writeError("plugvisor-worker: \(error)")
            exit(70)
        }
        let argv = ([request.program] + request.arguments).map { strdup($0) } + [nil]
        let envp = request.environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        // The program runs as pid 1 of its own PID namespace: whatever it starts dies with it,
        // and it sees (and can signal) no process outside. This process waits and says how it ended.
        let child = fork()
        if child < 0 {
            PlugvisorWorker.writeError("plugvisor-worker: fork: \(String(cString: strerror(errno)))")
            exit(70)
        }
        if child == 0 {
            _ = pv_set_parent_death_signal(SIGKILL)
            // The diagnostics travel on the channel from here; nothing else is left open.
            guard dup2(channel, 1) == 1, dup2(channel, 2) == 2 else { _exit(70) }
            close(channel)
            execve(request.program, argv, envp)
            let message = Array(
                "plugvisor-worker: cannot run \(request.program): \(String(cString: strerror(errno)))\n".utf8)
            _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            _exit(127)
        }
        close(channel)
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        exit(signal == 0 ? (status >> 8) & 0xff : 128 + signal)
    }
}
