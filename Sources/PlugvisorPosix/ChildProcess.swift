import CPlugvisorLinux
import Glibc

/// How a child process ended. Not an error: crashing is something plugins do.
public enum ProcessExit: Sendable, Hashable, CustomStringConvertible {
    case exited(code: Int32)
    case signalled(Int32)

    public var description: String {
        switch self {
        case let .exited(code): return "exited with code \(code)"
        case let .signalled(signal): return "killed by \(Signals.name(signal))"
        }
    }
}

public enum Signals {
    public static func name(_ signal: Int32) -> String {
        let names: [Int32: String] = [
            SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
            SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV",
            SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM", SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ",
            SIGSYS: "SIGSYS",
        ]
        return names[signal] ?? "signal \(signal)"
    }
}

/// A child process held through a pidfd, so that a signal can never hit a recycled pid.
public final class ChildProcess: @unchecked Sendable {
    // SAFETY: immutable after init; the pidfd is closed only in deinit, when no one can use it.
    public let pid: pid_t
    private let pidfd: OwnedDescriptor

    private init(pid: pid_t, pidfd: OwnedDescriptor) {
        self.pid = pid
        self.pidfd = pidfd
    }

    /// Spawns `executable` in its own process group. The child gets fd 0 from /dev/null, fd 1 and
    /// 2 as given (or /dev/null), fd 3 = `channel`, fd 4 = `extra` if any, and nothing else.
    public static func spawn(
        executable: String, arguments: [String], environment: [String: String],
        channel: OwnedDescriptor, extra: OwnedDescriptor? = nil,
        stdout: OwnedDescriptor? = nil, stderr: OwnedDescriptor? = nil
    ) throws(SystemError) -> ChildProcess {
        let devNull = try retryingInterrupts("open /dev/null") { open("/dev/null", O_RDWR | O_CLOEXEC) }
        defer { close(devNull) }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = pv_spawn(
            executable, argv, envp, devNull, stdout?.rawValue ?? devNull, stderr?.rawValue ?? devNull,
            channel.rawValue, extra?.rawValue ?? -1, &pid)
        if rc != 0 { throw SystemError("spawn \(executable)", errno: rc) }
        let fd = pv_pidfd_open(pid)
        if fd < 0 {
            let code = errno
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            throw SystemError("pidfd_open", errno: code)
        }
        return ChildProcess(pid: pid, pidfd: OwnedDescriptor(fd))
    }

    /// Sends `signal` through the pidfd. A process that already exited is not an error.
    public func signal(_ signal: Int32 = SIGKILL) {
        _ = pv_pidfd_send_signal(pidfd.rawValue, signal)
    }

    /// Reaps the process, waiting for it to exit. Call from exactly one place per process.
    public func waitForExit() -> ProcessExit {
        var code: Int32 = 0
        var status: Int32 = 0
        let rc = pv_waitid_pidfd(pidfd.rawValue, pv_wexited(), &code, &status)
        precondition(rc == 0, "waitid on an owned pidfd failed: \(errno)")
        return code == pv_cld_exited() ? .exited(code: status) : .signalled(status)
    }

    /// Resident set size from /proc, or nil once the process is gone.
    public var residentBytes: Int? { ProcFS.residentBytes(pid: pid) }
}

public enum ProcFS {
    public static func residentBytes(pid: pid_t) -> Int? {
        guard let text = readSmallFile("/proc/\(pid)/statm") else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    public static func readSmallFile(_ path: String, limit: Int = 64 * 1024) -> String? {
        guard let fd = try? retryingInterrupts("open \(path)", { open(path, O_RDONLY | O_CLOEXEC) }) else { return nil }
        defer { close(fd) }
        // A read that fails (the process exited meanwhile) reads as empty, as /proc files do then.
        let bytes = (try? Descriptors.readAll(fd, limit: limit)) ?? []
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Descriptor pairs and Unix sockets, each end close-on-exec.
public enum Descriptors {
    public static func socketPair() throws(SystemError) -> (OwnedDescriptor, OwnedDescriptor) {
        var fds: [Int32] = [0, 0]
        try retryingInterrupts("socketpair") { pv_socketpair(&fds) }
        return (OwnedDescriptor(fds[0]), OwnedDescriptor(fds[1]))
    }

    /// (read end, write end)
    public static func pipe() throws(SystemError) -> (OwnedDescriptor, OwnedDescriptor) {
        var fds: [Int32] = [0, 0]
        try retryingInterrupts("pipe") { pv_pipe(&fds) }
        return (OwnedDescriptor(fds[0]), OwnedDescriptor(fds[1]))
    }

    public static func sealedMemoryFile(name: String, contents: [UInt8]) throws(SystemError) -> OwnedDescriptor {
        let fd = contents.withUnsafeBytes { pv_sealed_memfd(name, $0.baseAddress, $0.count) }
        if fd < 0 { throw SystemError("memfd_create") }
        return OwnedDescriptor(fd)
    }

    public static func listenUnix(path: String, backlog: Int32 = 64) throws(SystemError) -> OwnedDescriptor {
        let fd = pv_listen_unix(path, backlog)
        if fd < 0 { throw SystemError("listen on \(path)") }
        return OwnedDescriptor(fd)
    }

    public static func connectUnix(path: String) throws(SystemError) -> OwnedDescriptor {
        let fd = pv_connect_unix(path)
        if fd < 0 { throw SystemError("connect to \(path)") }
        return OwnedDescriptor(fd)
    }

    public static func accept(_ listener: OwnedDescriptor) throws(SystemError) -> OwnedDescriptor {
        let fd = pv_accept(listener.rawValue)
        if fd < 0 { throw SystemError("accept") }
        return OwnedDescriptor(fd)
    }

    public static func peerUID(_ socket: OwnedDescriptor) throws(SystemError) -> uid_t {
        var uid: uid_t = 0
        if pv_peer_uid(socket.rawValue, &uid) != 0 { throw SystemError("SO_PEERCRED") }
        return uid
    }

    /// Reads everything up to end of file or `limit` bytes.
    public static func readAll(_ fd: Int32, limit: Int) throws(SystemError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count < limit {
            let n = try retryingInterrupts("read") {
                chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<min(n, limit - bytes.count)])
        }
        return bytes
    }
}
