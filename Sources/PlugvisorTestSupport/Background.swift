import Foundation

/// Runs `body` on a thread of its own; `wait()` returns its result. For tests that need calls
/// in flight while they act.
public final class Background<T: Sendable>: @unchecked Sendable {
    // SAFETY: `value` is only touched under `condition`.
    private let condition = NSCondition()
    private var value: T?

    public init(_ body: @escaping @Sendable () -> T) {
        Thread { [self] in
            let result = body()
            condition.lock()
            value = result
            condition.broadcast()
            condition.unlock()
        }.start()
    }

    public func wait() -> T {
        condition.lock()
        defer { condition.unlock() }
        while value == nil { condition.wait() }
        return value!
    }

    public var isDone: Bool {
        condition.lock()
        defer { condition.unlock() }
        return value != nil
    }
}
