import Foundation
import PlugvisorPosix

/// Runs `body` on a thread of its own; `wait()` returns its result. For tests that need calls
/// in flight while they act.
public final class Background<T: Sendable>: Sendable {
    private let result = HandOff<T>()

    public init(_ body: @escaping @Sendable () -> T) {
        Thread { [result] in result.fulfill(body()) }.start()
    }

    public func wait() -> T { result.wait() }

    public var isDone: Bool { result.isFulfilled }
}
