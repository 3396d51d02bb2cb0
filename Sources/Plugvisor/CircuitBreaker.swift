import PlugvisorManifest
import PlugvisorProtocol

/// Fails calls fast after `failures` consecutive failed calls; lets one trial call through after
/// `reset`; closes again when a call succeeds. Pure: the caller supplies the time.
struct CircuitBreaker: Sendable, Equatable {
    enum State: Equatable {
        case closed(consecutiveFailures: Int)
        case open(until: ContinuousClock.Instant)
        case halfOpen(trialInFlight: Bool)
    }

    let policy: PluginSpec.CircuitPolicy
    private(set) var state: State = .closed(consecutiveFailures: 0)

    init(policy: PluginSpec.CircuitPolicy) { self.policy = policy }

    /// Failures the plugin is responsible for; being killed, queued too long or refused is not.
    static let countedFailures: Set<PluginError.Code> = [
        .timeout, .workerCrashed, .trap, .outOfFuel, .invalidResult, .protocolViolation,
    ]

    /// The state `status` reports (the wire's names).
    var reportedState: CircuitState {
        switch state {
        case .closed: return .closed
        case .open: return .open
        case .halfOpen: return .halfOpen
        }
    }

    /// Whether calls are refused right now, without changing anything.
    func refuses(now: ContinuousClock.Instant) -> Bool {
        switch state {
        case .closed, .halfOpen(trialInFlight: false): return false
        case let .open(until): return now < until
        case .halfOpen(trialInFlight: true): return true
        }
    }

    /// Whether a call may go ahead now; in half-open, only one trial call at a time.
    mutating func allow(now: ContinuousClock.Instant) -> Bool {
        switch state {
        case .closed: return true
        case let .open(until):
            guard now >= until else { return false }
            state = .halfOpen(trialInFlight: true)
            return true
        case .halfOpen(trialInFlight: true): return false
        case .halfOpen(trialInFlight: false):
            state = .halfOpen(trialInFlight: true)
            return true
        }
    }

    /// Records how an allowed call ended; `failure` nil means it succeeded (or failed in a way
    /// that does not count).
    mutating func record(failure: PluginError.Code?, now: ContinuousClock.Instant) {
        let failed = failure.map { Self.countedFailures.contains($0) } ?? false
        switch state {
        case let .closed(count):
            let count = failed ? count + 1 : 0
            state = count >= policy.failures ? .open(until: now + policy.reset) : .closed(consecutiveFailures: count)
        case .halfOpen:
            state = failed ? .open(until: now + policy.reset) : .closed(consecutiveFailures: 0)
        case .open:
            break  // a call admitted before the circuit opened
        }
    }

    /// How long until the circuit lets a call through, for the error message.
    func retryAfter(now: ContinuousClock.Instant) -> Duration? {
        if case let .open(until) = state { return max(.zero, now.duration(to: until)) }
        return nil
    }
}
