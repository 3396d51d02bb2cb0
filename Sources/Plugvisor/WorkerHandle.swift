import Foundation
import Logging
import PlugvisorPosix
import PlugvisorProtocol

/// One worker as the supervisor sees it: its process, its channel, and what only workers have
/// (a guest log budget, the guest's memory, call IDs).
///
/// The channel is received on by one thread at a time: the starter during the handshake, then
/// the caller whose call is the oldest in its `pipeline`.
final class WorkerHandle: @unchecked Sendable {
    // SAFETY: immutable fields are set in init; mutable ones are only touched under `lock`.
    let process: SupervisedProcess
    let channel: FrameChannel
    /// The calls sent to it and not answered yet, in order.
    let pipeline = CallPipeline()
    private let lock = Lock()
    private var memory: Int?
    /// The supervisor's own limit on what this worker's guest logs: the worker has one too, but
    /// a compromised worker would not keep to it.
    private var guestLogBudget = LogBudget.guestCeiling

    init(process: SupervisedProcess, channel: FrameChannel) {
        self.process = process
        self.channel = channel
    }

    /// The plugin's logger with this worker's generation and pid: its stderr and its guest's
    /// log lines are tagged with them.
    var logger: Logger { process.logger }
    var startedAt: ContinuousClock.Instant { process.startedAt }
    var pid: pid_t { process.pid }
    var hasExited: Bool { process.hasExited }

    /// SIGKILL through the pidfd, remembering why (the reason wins over the exit status in errors).
    func kill(because reason: PluginError.Code) { process.kill(because: reason) }

    func killedReason() -> PluginError.Code? { process.killedReason() }

    /// Waits up to `timeout` for the monitor to reap the process.
    func awaitExit(timeout: Duration) -> ProcessExit? { process.awaitExit(timeout: timeout) }

    /// What to tell a caller whose call died with this worker (`CrashReport`).
    func crashDescription() -> String { "worker \(pid) \(process.crashReport)" }

    /// Hangs up on the worker: its cue to call the guest's destroy() and exit. Safe while
    /// another thread is blocked on the channel (it wakes up with `.closed`).
    func retire() { channel.descriptor.shutdown() }

    /// The guest's linear memory as the worker last reported it, already range-checked.
    var memoryBytes: Int? { lock.withLock { memory } }

    func noteMemory(_ bytes: Int?) {
        guard let bytes else { return }
        lock.withLock { memory = bytes }
    }

    /// A `log` frame from the worker: within this worker's budget, cut to the longest line a
    /// guest may log, at the level it names (info when it names none we know).
    func logGuest(_ line: LogLine) {
        let message =
            line.message.utf8.count <= LogLine.maxMessageBytes
            ? line.message
            : String(decoding: line.message.utf8.prefix(LogLine.maxMessageBytes), as: UTF8.self) + "… (cut)"
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
        logger.warning(
            "\(dropped) guest log lines dropped by the supervisor (rate limit)", metadata: ["source": "guest"])
    }
}

extension Logger {
    func with(generation: Int) -> Logger {
        var logger = self
        logger[metadataKey: "generation"] = "\(generation)"
        return logger
    }
}
