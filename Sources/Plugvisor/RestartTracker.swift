import PlugvisorManifest

/// Decides, without any I/O, whether a plugin whose worker died is restarted, and after what delay.
///
/// The first death in a window is replaced at once (a one-off crash should cost one call, not
/// a pause); the next ones back off exponentially from `backoffMin` to `backoffMax`. More than
/// `max` restarts within `within` gives up; a worker that ran stably for `within` resets the count.
struct RestartTracker: Sendable {
    enum Decision: Equatable {
        case restart(after: Duration)
        case giveUp(restarts: Int)
    }

    let policy: PluginSpec.RestartPolicy
    private(set) var recent: [ContinuousClock.Instant] = []
    private(set) var total = 0

    init(policy: PluginSpec.RestartPolicy) { self.policy = policy }

    mutating func workerDied(at now: ContinuousClock.Instant, uptime: Duration) -> Decision {
        if uptime >= policy.within { recent.removeAll() }
        recent.removeAll { now - $0 > policy.within }
        if recent.count >= policy.max { return .giveUp(restarts: recent.count) }
        recent.append(now)
        total += 1
        guard recent.count > 1 else { return .restart(after: .zero) }
        var delay = policy.backoffMin
        for _ in 2..<recent.count where delay < policy.backoffMax { delay *= 2 }
        return .restart(after: min(delay, policy.backoffMax))
    }

    /// A supervisor-initiated replacement (timeout, protocol violation) is not the plugin crashing
    /// on its own, but it still counts, so a plugin that times out forever ends up failed.
    mutating func reset() {
        recent.removeAll()
    }
}
