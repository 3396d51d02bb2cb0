import Synchronization

/// Counts work under way and refuses more than `limit` at once: each piece holds a thread, so
/// this bounds threads and memory (the gateway's requests, the broker's fetches).
public final class InFlightLimit: Sendable {
    public let limit: Int
    private let count = Atomic<Int>(0)

    public init(_ limit: Int) { self.limit = limit }

    /// Takes a slot, or says there is none; a taken slot must be given back with `leave()`.
    public func enter() -> Bool {
        if count.add(1, ordering: .relaxed).newValue <= limit { return true }
        count.subtract(1, ordering: .relaxed)
        return false
    }

    public func leave() { count.subtract(1, ordering: .relaxed) }
}
