import PlugvisorPosix

/// The calls sent to one worker and not answered yet, in the order they were sent. The worker
/// runs them one at a time in that order, so the next answer on its channel is always the
/// oldest call's, and only that call's caller reads the channel; the callers behind it wait
/// for their turn. While the oldest call runs, the next one already waits on the worker's
/// channel, so the worker never idles for a round trip between calls.
final class CallPipeline: @unchecked Sendable {
    // SAFETY: all state is under `lock`.
    private let lock: Lock
    /// Calls sent so far, and calls whose answers have been read: the call numbered `answered`
    /// is the one the worker runs (or will run next).
    private var sent = 0
    private var answered = 0
    /// A call's answer will never come (the worker was killed or died during it): the calls
    /// sent behind it were never run.
    private var lost = false
    /// One condition per place in the line, so that an answer read wakes the one caller whose
    /// turn is next and not every caller behind it. At most `pipelineDepth` calls are in
    /// flight, numbered consecutively: `number % pipelineDepth` tells them apart.
    private let turns: [Lock.Condition]

    init() {
        let lock = Lock()
        self.lock = lock
        turns = (0..<PluginStateMachine.pipelineDepth).map { _ in lock.makeCondition() }
    }

    /// A place in the line: the caller reads its answer when its turn comes.
    struct Ticket: Equatable {
        let number: Int
        /// No call was in flight when it was sent: the worker was idle.
        let sentToIdle: Bool
    }

    enum SendOutcome {
        case sent(Ticket)
        /// Not sent: the worker is lost already.
        case lost
        /// Not sent: the worker was idle but had sent something nobody asked for (`check`).
        case refused(FrameChannel.UnexpectedInput)
        /// The send failed (the channel is unusable from now on).
        case failed(ChannelError, sentToIdle: Bool)
    }

    /// Sends a call with `send`, under the line's lock so that the order on the wire is the
    /// order of the tickets. A worker with nothing in flight is `check`ed first: an idle worker
    /// that sent a frame or hung up must answer no call.
    func send(
        check: () -> FrameChannel.UnexpectedInput?, _ send: () throws(ChannelError) -> Void
    ) -> SendOutcome {
        lock.withLock {
            guard !lost else { return .lost }
            let idle = sent == answered
            if idle, let input = check() { return .refused(input) }
            do throws(ChannelError) { try send() } catch {
                lost = true
                turns.forEach { $0.broadcast() }
                return .failed(error, sentToIdle: idle)
            }
            defer { sent += 1 }
            return .sent(Ticket(number: sent, sentToIdle: idle))
        }
    }

    enum Turn: Equatable {
        /// The answer on the channel is this call's now.
        case yours
        /// A call ahead of it never got its answer: this one was never run.
        case notRun
        /// The call ahead of it did not end by `deadline` (it always ends by its own, which is
        /// no later: see `PluginStateMachine.pipelineSlot`), so something is wrong.
        case stuck
    }

    /// Waits until `ticket`'s answer is next on the channel.
    func awaitTurn(_ ticket: Ticket, until deadline: ContinuousClock.Instant) -> Turn {
        lock.withLock {
            while true {
                if let turn = turn(of: ticket) { return turn }
                if !turns[ticket.number % turns.count].wait(until: deadline) { return .stuck }
            }
        }
    }

    /// Called under `lock`: nil while the calls ahead of `ticket` are not answered.
    private func turn(of ticket: Ticket) -> Turn? {
        if lost { return .notRun }
        return answered == ticket.number ? .yours : nil
    }

    /// `ticket`'s answer was read: the next call's caller reads now.
    func answered(_ ticket: Ticket) {
        lock.withLock {
            precondition(answered == ticket.number, "answer read out of turn")
            answered += 1
            turns[answered % turns.count].signal()
        }
    }

    /// The current call's answer will never come: every call behind it learns it was not run.
    func lose() {
        lock.withLock {
            lost = true
            turns.forEach { $0.broadcast() }
        }
    }
}
