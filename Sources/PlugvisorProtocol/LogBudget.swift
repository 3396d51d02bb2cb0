/// Lines and bytes per second a source may log; past that lines are dropped and counted, so
/// that a flooding guest or worker costs neither memory nor log volume. The worker applies one
/// to its guest's `log` calls; the supervisor applies its own to each worker, whose frames and
/// stderr it cannot trust to have been limited.
public struct LogBudget: Sendable {
    public enum Verdict: Equatable, Sendable {
        case log
        case drop
        /// A new second began after `dropped` lines were dropped: say so, then log this line.
        case logAfterSummary(dropped: Int)
    }

    public let linesPerSecond: Int
    public let bytesPerSecond: Int
    private var windowStart: ContinuousClock.Instant?
    private var lines = 0
    private var bytes = 0
    private var dropped = 0

    public init(linesPerSecond: Int, bytesPerSecond: Int) {
        self.linesPerSecond = linesPerSecond
        self.bytesPerSecond = bytesPerSecond
    }

    /// What the worker lets its guest log.
    public static let guest = LogBudget(linesPerSecond: 100, bytesPerSecond: 64 * 1024)

    /// The supervisor's ceiling on one worker's guest lines, for a worker that ignores `guest`.
    /// It sits above what an honest worker can deliver: the two budgets' windows do not line
    /// up, so one supervisor second can see up to two of the worker's seconds (and their drop
    /// summaries), delayed frames bunching a third. Below that, the worker's own "dropped"
    /// summary would itself be dropped and reported as the supervisor's.
    public static let guestCeiling = LogBudget(
        linesPerSecond: 3 * guest.linesPerSecond + 3, bytesPerSecond: 3 * guest.bytesPerSecond + 3 * 128)

    /// The lines dropped since the last summary, for a report when the source goes quiet
    /// (at the end of a call) rather than at its next line.
    public mutating func takeDropped() -> Int {
        defer { dropped = 0 }
        return dropped
    }

    public mutating func admit(bytes count: Int, now: ContinuousClock.Instant) -> Verdict {
        if let start = windowStart, now - start < .seconds(1) {
            if lines < linesPerSecond && bytes + count <= bytesPerSecond {
                lines += 1
                bytes += count
                return .log
            }
            dropped += 1
            return .drop
        }
        let summary = dropped
        windowStart = now
        lines = 1
        bytes = count
        dropped = 0
        return summary > 0 ? .logAfterSummary(dropped: summary) : .log
    }
}

extension LogLine {
    /// The longest message a log line carries; the worker cuts longer ones (saying so), and
    /// the supervisor cuts whatever a worker sends past it.
    public static let maxMessageBytes = 4096
}
