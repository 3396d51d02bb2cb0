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
