/// A value handed from one thread to another exactly once: the first `fulfill` wins, and every
/// `wait` returns it.
public final class HandOff<T: Sendable>: @unchecked Sendable {
    // SAFETY: `value` is only touched under `lock`.
    private let lock = Lock()
    private var value: T?

    public init() {}

    /// Hands `newValue` over; a later call changes nothing.
    public func fulfill(_ newValue: T) {
        lock.withLock {
            guard value == nil else { return }
            value = newValue
            lock.broadcast()
        }
    }

    /// Blocks until the value is there.
    public func wait() -> T {
        lock.withLock {
            while value == nil { lock.wait() }
            return value!
        }
    }

    /// Whether `fulfill` has been called.
    public var isFulfilled: Bool { lock.withLock { value != nil } }
}
