import Foundation
import Glibc
import PlugvisorProtocol

/// systemd's notify protocol (sd_notify(3)): datagrams of `KEY=value` lines to the socket named
/// by `NOTIFY_SOCKET`, a path or, with a leading `@`, an abstract name. Without the variable
/// every message is dropped, so `plugvisor start` behaves the same under a terminal.
/// The variables are taken out of the environment, so that no child (a worker, the broker)
/// could speak for the supervisor.
final class ServiceNotifier: @unchecked Sendable {
    private let descriptor: Int32
    private var address = sockaddr_un()
    private var addressLength = socklen_t(0)
    /// Half of `WATCHDOG_USEC`, when the watchdog is on and meant for this process.
    let watchdogInterval: Duration?

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] { unsetenv(name) }
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if forUs, let micros = environment["WATCHDOG_USEC"].flatMap(Int64.init), micros > 0 {
            watchdogInterval = .microseconds(micros / 2)
        } else {
            watchdogInterval = nil
        }
        guard let path = environment["NOTIFY_SOCKET"], path.hasPrefix("/") || path.hasPrefix("@"),
            path.utf8.count < MemoryLayout.size(ofValue: address.sun_path)
        else {
            descriptor = -1
            return
        }
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract: no terminating NUL counts
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        addressLength = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes[0] == 0 ? 0 : 1))
    }

    var isActive: Bool { descriptor >= 0 }

    /// Sends the lines in one datagram; a manager that is gone is not the supervisor's problem.
    func notify(_ lines: String...) { notify(lines) }

    func notify(_ lines: [String]) {
        guard descriptor >= 0 else { return }
        let message = Array(lines.joined(separator: "\n").utf8)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(descriptor, message, message.count, Int32(MSG_NOSIGNAL), $0, addressLength)
            }
        }
    }

    /// `RELOADING=1` must carry the time it was sent (CLOCK_MONOTONIC, µs) for systemd 253+.
    func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        notify("RELOADING=1", "MONOTONIC_USEC=\(Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000)")
    }

    static func serving(_ status: StatusReport) -> String {
        let serving = status.plugins.filter { $0.state == .ready || $0.state == .reloading }.count
        return "STATUS=\(serving) of \(status.plugins.count) plugins serving"
    }

    deinit { if descriptor >= 0 { close(descriptor) } }
}
