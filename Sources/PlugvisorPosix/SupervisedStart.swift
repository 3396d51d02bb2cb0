import CPlugvisorLinux
import Glibc

/// What a process the supervisor starts (a worker, the network broker) does first after exec.
public enum SupervisedStart {
    /// Exits 64 with a hint when `channel` is not a socket (a person ran `program` by hand: UX,
    /// not security); arms PR_SET_PDEATHSIG, then exits 70 when the supervisor named in
    /// `PLUGVISOR_SUPERVISOR_PID` is already gone (the race where it died before the signal was armed).
    public static func begin(channel: Int32, program: String) {
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(channel, SOL_SOCKET, SO_TYPE, &type, &length) == 0 else {
            let line = Array(
                "\(program) is started by the plugvisor supervisor; run `plugvisor start MANIFEST` instead.\n".utf8)
            _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            exit(64)
        }
        _ = pv_set_parent_death_signal(SIGKILL)
        if let expected = getenv("PLUGVISOR_SUPERVISOR_PID").map({ String(cString: $0) }), Int32(expected) != getppid()
        {
            exit(70)
        }
    }
}
