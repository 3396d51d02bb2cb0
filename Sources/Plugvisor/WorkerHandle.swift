import Foundation
import Logging
import PlugvisorPosix
import PlugvisorProtocol

/// One worker process as the supervisor sees it: its pidfd, its channel, how it ended.
///
/// The channel is used by one thread at a time: the starter during the handshake, then whichever
/// caller checked the worker out of its plugin's pool.
final class WorkerHandle: @unchecked Sendable {
    // SAFETY: immutable fields are set in init; mutable ones are only touched under `lock`,
    // except `channel`, which the pool hands to one thread at a time.
    let process: ChildProcess
    let channel: FrameChannel
    /// The plugin's logger with this worker's generation and pid: its stderr and its guest's
    /// log lines are tagged with them.
    let logger: Logger
    let startedAt = ContinuousClock.now
    private let lock = Lock()
    private var exit: ProcessExit?
    private var stderrTail: [String] = []
    private var killReason: PluginError.Code?
    private var nextCallID: UInt64 = 1
    private(set) var memoryBytes: Int?
    /// The supervisor's own limit on what this worker's guest logs: the worker has one too, but
    /// a compromised worker would not keep to it.
    private var guestLogBudget = LogBudget.guestCeiling

    static let stderrTailLines = 20

    init(process: ChildProcess, channel: FrameChannel, logger: Logger) {
        self.process = process
        self.channel = channel
        var logger = logger
        logger[metadataKey: "pid"] = "\(process.pid)"
        self.logger = logger
    }

    var pid: pid_t { process.pid }

    var hasExited: Bool { lock.withLock { exit != nil } }

    /// SIGKILL through the pidfd, remembering why (the reason wins over the exit status in errors).
    func kill(because reason: PluginError.Code) {
        lock.withLock { if killReason == nil { killReason = reason } }
        process.signal(SIGKILL)
    }

    func takeCallID() -> UInt64 {
        lock.withLock {
            defer { nextCallID += 1 }
            return nextCallID
        }
    }

    /// The guest's linear memory as the worker last reported it, already range-checked.
    func noteMemory(_ bytes: Int?) {
        guard let bytes else { return }
        lock.withLock { memoryBytes = bytes }
    }

    /// A `log` frame from the worker: within this worker's budget, cut to the longest line a
    /// guest may log, at the level it names (info when it names none we know).
    func logGuest(_ line: LogLine) {
        let message = line.message.utf8.count <= LogLine.maxMessageBytes
            ? line.message : String(decoding: line.message.utf8.prefix(LogLine.maxMessageBytes), as: UTF8.self) + "… (cut)"
        let verdict = lock.withLock { guestLogBudget.admit(bytes: message.utf8.count, now: .now) }
        if case let .logAfterSummary(dropped) = verdict { reportDroppedGuestLines(dropped) }
        guard verdict != .drop else { return }
        logger.log(level: Logger.Level(rawValue: line.level) ?? .info, "\(message)", metadata: ["source": "guest"])
    }

    /// Says how many guest lines this worker's budget dropped, when a call ends (rather than at
    /// the guest's next line, which may never come).
    func reportDroppedGuestLines() {
        let dropped = lock.withLock { guestLogBudget.takeDropped() }
        if dropped > 0 { reportDroppedGuestLines(dropped) }
    }

    private func reportDroppedGuestLines(_ dropped: Int) {
        logger.warning("\(dropped) guest log lines dropped by the supervisor (rate limit)", metadata: ["source": "guest"])
    }

    /// Waits up to `timeout` for the monitor to reap the process.
    func awaitExit(timeout: Duration) -> ProcessExit? {
        let deadline = ContinuousClock.now + timeout
        return lock.withLock {
            while exit == nil { if !lock.wait(until: deadline) { break } }
            return exit
        }
    }

    /// What to tell a caller whose call died with this worker: how it ended, the syscall the
    /// sandbox refused when it died of SIGSYS, and its last stderr lines.
    func crashDescription() -> String {
        let (exit, tail, reason) = lock.withLock { (self.exit, stderrTail, killReason) }
        var text = "worker \(process.pid) "
        switch (exit, reason) {
        case (_, let reason?): text += "was killed by the supervisor (\(reason))"
        case (let exit?, nil): text += "\(exit)"
        case (nil, nil): text += "stopped answering"
        }
        if exit == .signalled(SIGSYS), let refused = tail.last(where: { $0.contains(Self.seccompMarker) }) {
            let syscall = refused.components(separatedBy: Self.seccompMarker).last ?? refused
            text += ": the sandbox refused syscall \(syscall)"
        }
        let others = tail.filter { !$0.contains(Self.seccompMarker) }
        if !others.isEmpty { text += "; last stderr: " + others.suffix(5).joined(separator: " | ") }
        return text
    }

    static func isStackFrame(_ line: String) -> Bool {
        if line == "Current stack trace:" { return true }
        let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
        return fields.count >= 3 && fields[0].allSatisfy(\.isNumber) && fields[2].hasPrefix("0x")
    }

    /// What the worker's SIGSYS reporter writes before it dies (CPlugvisorSandbox).
    static let seccompMarker = "seccomp refused syscall "

    func killedReason() -> PluginError.Code? { lock.withLock { killReason } }

    // MARK: Monitor

    /// Reads the worker's stderr until it closes, then reaps the process. Runs on its own thread
    /// for the worker's whole life; `onExit` is called exactly once.
    func monitor(stderr: OwnedDescriptor, onExit: @escaping @Sendable (ProcessExit) -> Void) {
        let thread = Thread { [self] in
            var budget = LogBudget(linesPerSecond: 50, bytesPerSecond: 64 * 1024)
            var pending: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(stderr.rawValue, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                pending.append(contentsOf: chunk[0..<n])
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    record(line: pending[..<newline], budget: &budget)
                    pending.removeSubrange(...newline)
                }
                // A line longer than 4 KiB is cut rather than buffered without bound.
                if pending.count > 4096 {
                    record(line: pending[...], budget: &budget)
                    pending.removeAll(keepingCapacity: true)
                }
            }
            if !pending.isEmpty { record(line: pending[...], budget: &budget) }
            stderr.close()
            let status = process.waitForExit()
            lock.withLock {
                exit = status
                lock.broadcast()
            }
            onExit(status)
        }
        thread.name = "plugvisor-monitor-\(process.pid)"
        thread.start()
    }

    private func record(line bytes: ArraySlice<UInt8>, budget: inout LogBudget) {
        let line = String(decoding: bytes.prefix(4096), as: UTF8.self)
        // The Swift runtime follows a fatal error with a stack dump: keep the error, not the frames.
        if !Self.isStackFrame(line) {
            lock.withLock {
                stderrTail.append(line)
                if stderrTail.count > Self.stderrTailLines { stderrTail.removeFirst() }
            }
        }
        let verdict = budget.admit(bytes: line.utf8.count, now: .now)
        if case let .logAfterSummary(dropped) = verdict {
            logger.warning("worker stderr: \(dropped) lines dropped (rate limit)", metadata: ["source": "stderr"])
        }
        if verdict != .drop { logger.warning("worker stderr: \(line)", metadata: ["source": "stderr"]) }
    }
}

extension Logger {
    func with(generation: Int) -> Logger {
        var logger = self
        logger[metadataKey: "generation"] = "\(generation)"
        return logger
    }
}
