import Glibc

/// A system call failed for an environmental reason (the caller's bug would be a precondition).
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: String
    public var errno: Int32

    public init(_ operation: String, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno)))"
    }
}

/// Runs `body` again while it fails with EINTR; any other failure throws with `operation`.
@discardableResult
public func retryingInterrupts<T: BinaryInteger>(_ operation: String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = errno
        if code == EINTR { continue }
        precondition(code != EBADF && code != EFAULT, "\(operation): \(code) is a bug in plugvisor")
        throw SystemError(operation, errno: code)
    }
}

/// A file descriptor this process owns; closed exactly once, on `close()` or at deinit.
///
/// Never close a descriptor another thread may be blocked on: wake it with `shutdown` instead.
public final class OwnedDescriptor: @unchecked Sendable {
    // SAFETY: `rawValue` is immutable; `closed` is only touched under `lock`.
    public let rawValue: Int32
    private var closed = false
    private let lock = Lock()

    public init(_ rawValue: Int32) {
        precondition(rawValue >= 0, "invalid descriptor")
        self.rawValue = rawValue
    }

    public func close() {
        let shouldClose = lock.withLock { () -> Bool in
            defer { closed = true }
            return !closed
        }
        if shouldClose { _ = Glibc.close(rawValue) }
    }

    deinit { if !closed { _ = Glibc.close(rawValue) } }
}

/// A pthread mutex with a condition variable, for the few places that must block a thread.
public final class Lock: @unchecked Sendable {
    // SAFETY: the pthread objects are heap-allocated once and never moved.
    @usableFromInline let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition: Condition

    public init() {
        pthread_mutex_init(mutex, nil)
        condition = Condition(mutex: mutex)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Inlinable: it is on every call's path, and unspecialised across modules it costs a
    /// generic closure call each time.
    @inlinable
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits on the condition; call only inside `withLock`. Returns false when `deadline` passed.
    @discardableResult
    public func wait(until deadline: ContinuousClock.Instant? = nil) -> Bool { condition.wait(until: deadline) }

    public func broadcast() { condition.broadcast() }

    /// Wakes one waiter (a waiter that then leaves without using what it was woken for must
    /// pass the signal on).
    public func signal() { condition.signal() }

    /// A condition of its own on this lock, to wake one particular waiter and no other.
    public func makeCondition() -> Condition { Condition(mutex: mutex, owner: self) }

    /// A condition variable on a `Lock`'s mutex (monotonic clock); wait only inside its
    /// `withLock`.
    public final class Condition: @unchecked Sendable {
        // SAFETY: the pthread condition is heap-allocated once and never moved; the mutex
        // belongs to `owner`, which this keeps alive.
        private let mutex: UnsafeMutablePointer<pthread_mutex_t>
        private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        private let owner: Lock?

        fileprivate init(mutex: UnsafeMutablePointer<pthread_mutex_t>, owner: Lock? = nil) {
            self.mutex = mutex
            self.owner = owner
            var attr = pthread_condattr_t()
            pthread_condattr_init(&attr)
            pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
            pthread_cond_init(condition, &attr)
            pthread_condattr_destroy(&attr)
        }

        deinit {
            pthread_cond_destroy(condition)
            condition.deallocate()
        }

        /// Returns false when `deadline` passed (wake-ups can be spurious: check what you wait for).
        @discardableResult
        public func wait(until deadline: ContinuousClock.Instant? = nil) -> Bool {
            guard let deadline else {
                pthread_cond_wait(condition, mutex)
                return true
            }
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero { return false }
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let (seconds, attos) = remaining.components
            var nanos = Int(now.tv_nsec) + Int(attos / 1_000_000_000)
            var target = timespec(tv_sec: now.tv_sec + Int(seconds) + nanos / 1_000_000_000, tv_nsec: 0)
            nanos %= 1_000_000_000
            target.tv_nsec = nanos
            return pthread_cond_timedwait(condition, mutex, &target) != ETIMEDOUT
        }

        public func signal() { pthread_cond_signal(condition) }
        public func broadcast() { pthread_cond_broadcast(condition) }
    }
}
