import Foundation
import Logging
import PlugvisorPosix
import PlugvisorProtocol

/// A process the supervisor started (a worker, the network broker, an inspecting worker) as the
/// supervisor sees it: its pidfd, how it ended, its last stderr lines, and why we killed it.
///
/// Its monitor thread reads its stderr until it closes, logging each line within a rate limit
/// and keeping the tail for its `crashReport`, then reaps it: `monitor(onExit:)` must be called
/// once, by whoever owns the process, as soon as what `onExit` needs exists.
final class SupervisedProcess: @unchecked Sendable {
    // SAFETY: immutable fields are set in init; `exit`, `tail`, `killReason` and `stderr` are
    // only touched under `lock`.
    private let child: ChildProcess
    /// The owner's logger with this process's pid: its stderr lines are logged with it.
    let logger: Logger
    let startedAt = ContinuousClock.now
    private let lock = Lock()
    private var stderr: OwnedDescriptor?
    private var exit: ProcessExit?
    private var tail = StderrTail()
    private var killReason: PluginError.Code?

    /// How much of a process's stderr is logged: more is dropped, and the count said.
    static let stderrLinesPerSecond = 50
    static let stderrBytesPerSecond = 64 * 1024

    init(_ child: ChildProcess, stderr: OwnedDescriptor, logger: Logger) {
        self.child = child
        self.stderr = stderr
        var logger = logger
        logger[metadataKey: "pid"] = "\(child.pid)"
        self.logger = logger
    }

    var pid: pid_t { child.pid }

    /// Resident set size from /proc, or nil once the process is gone.
    var residentBytes: Int? { child.residentBytes }

    /// Sends `signal` through the pidfd (never to a recycled pid). Prefer `kill(because:)`,
    /// which says why in the crash report.
    func signal(_ signal: Int32) { child.signal(signal) }

    /// SIGKILL through the pidfd, remembering why (the first reason wins, and wins over the exit
    /// status in the crash report).
    func kill(because reason: PluginError.Code) {
        lock.withLock { if killReason == nil { killReason = reason } }
        child.signal(SIGKILL)
    }

    func killedReason() -> PluginError.Code? { lock.withLock { killReason } }

    var hasExited: Bool { lock.withLock { exit != nil } }

    /// Waits up to `timeout` for the monitor to reap the process.
    func awaitExit(timeout: Duration) -> ProcessExit? {
        let deadline = ContinuousClock.now + timeout
        return lock.withLock {
            while exit == nil { if !lock.wait(until: deadline) { break } }
            return exit
        }
    }

    /// How it ended, as far as is known now.
    var crashReport: CrashReport {
        lock.withLock { CrashReport(exit: exit, killReason: killReason, stderrTail: tail.lines) }
    }

    // MARK: Monitor

    /// Reads the process's stderr until it closes, then reaps it, on a thread of its own for the
    /// process's whole life; `onExit` is called exactly once, after `awaitExit` sees the exit.
    func monitor(onExit: @escaping @Sendable (ProcessExit) -> Void) {
        let stderr = lock.withLock { () -> OwnedDescriptor? in
            defer { self.stderr = nil }
            return self.stderr
        }
        guard let stderr else { preconditionFailure("a process is monitored once") }
        let thread = Thread { [self] in
            var budget = LogBudget(linesPerSecond: Self.stderrLinesPerSecond, bytesPerSecond: Self.stderrBytesPerSecond)
            var lines = StderrLines()
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            while let count = try? Descriptors.read(stderr.rawValue, into: &chunk), count > 0 {
                for line in lines.append(chunk[0..<count]) { record(line, budget: &budget) }
            }
            if let last = lines.finish() { record(last, budget: &budget) }
            stderr.close()
            let status = child.waitForExit()
            lock.withLock {
                exit = status
                lock.broadcast()
            }
            onExit(status)
        }
        thread.name = "plugvisor-monitor-\(child.pid)"
        thread.start()
    }

    private func record(_ line: String, budget: inout LogBudget) {
        lock.withLock { tail.record(line) }
        let verdict = budget.admit(bytes: line.utf8.count, now: .now)
        if case let .logAfterSummary(dropped) = verdict {
            logger.warning("worker stderr: \(dropped) lines dropped (rate limit)", metadata: ["source": "stderr"])
        }
        if verdict != .drop { logger.warning("worker stderr: \(line)", metadata: ["source": "stderr"]) }
    }
}
