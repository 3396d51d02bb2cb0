import Dispatch
import Foundation
import PlugvisorPosix
import Synchronization

/// The threads that the async API and the gateway run the supervisor's blocking work on: calls
/// waiting for a worker, starts and shutdowns waiting for processes, status reads taking locks.
/// On Swift's cooperative pool that work would starve every other task; on a thread per call,
/// 10,000 concurrent calls would be 10,000 threads. These are at most `threads`, started when
/// work finds no idle one and ended after `idleLifetime` without work, so a supervisor that
/// could use hundreds does not start them all, nor keep them once a burst is over; work beyond
/// them waits its turn, first come, first served.
final class BlockingPool: @unchecked Sendable {
    // SAFETY: `queue`, `alive` and `idle` are only touched under `lock`.
    let threads: Int
    private let lock = Lock()
    private var queue: [@Sendable () -> Void] = []
    private var head = 0
    private var alive = 0
    private var idle = 0

    /// How long a thread waits for work before it ends.
    let idleLifetime: Duration

    init(threads: Int, idleLifetime: Duration = .seconds(10)) {
        precondition(threads > 0, "a blocking pool needs at least one thread")
        self.threads = threads
        self.idleLifetime = idleLifetime
    }

    /// The pool's threads now, and how many of them wait for work (for tests).
    var threadCount: Int { lock.withLock { alive } }
    var idleThreadCount: Int { lock.withLock { idle } }

    /// Runs `work` on a pool thread: an idle one, or a new one while there are fewer than
    /// `threads`.
    func submit(_ work: @escaping @Sendable () -> Void) {
        let startOne = lock.withLock { () -> Bool in
            queue.append(work)
            lock.signal()
            // Idle threads not yet woken each take one item; more items than that need a thread.
            guard queue.count - head > idle, alive < threads else { return false }
            alive += 1
            return true
        }
        if startOne {
            let thread = Thread { [self] in serve() }
            thread.name = "plugvisor-blocking"
            thread.start()
        }
    }

    private func serve() {
        while let work = next() { work() }
    }

    /// The oldest work queued, or nil once none came for `idleLifetime` (the thread then ends).
    private func next() -> (@Sendable () -> Void)? {
        lock.withLock {
            while head == queue.count {
                idle += 1
                let woken = lock.wait(until: .now + idleLifetime)
                idle -= 1
                if !woken && head == queue.count {
                    alive -= 1
                    return nil
                }
            }
            let work = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            }
            return work
        }
    }

    /// `work`'s result, computed on a pool thread; the task waits without holding a thread.
    func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in submit { continuation.resume(returning: work()) } }
    }

    /// `work`'s result, or `late(startedAt)` once `deadline` passes first, waiting for a thread
    /// included: for work whose caller must be answered by its deadline. Work that gets a thread
    /// only after the deadline is not run (`startedAt` is nil); work that runs past it goes on
    /// (its own deadlines bound it), and its result is dropped.
    func run<T: Sendable>(
        until deadline: ContinuousClock.Instant, orElse late: @escaping @Sendable (ContinuousClock.Instant?) -> T,
        _ work: @escaping @Sendable () -> T
    ) async -> T {
        await withCheckedContinuation { continuation in
            let answer = Answer(continuation)
            let timer = Timer(DispatchWorkItem { answer.giveLate(late) })
            let remaining = max(ContinuousClock.now.duration(to: deadline), .zero)
            DispatchQueue.global().asyncAfter(deadline: .now() + remaining.timeInterval, execute: timer.item)
            submit {
                guard answer.start() else { return }
                answer.give(work())
                timer.item.cancel()
            }
        }
    }

    // SAFETY: `DispatchWorkItem` is thread-safe (cancel is an atomic flag) but not marked `Sendable`.
    private struct Timer: @unchecked Sendable {
        let item: DispatchWorkItem
        init(_ item: DispatchWorkItem) { self.item = item }
    }

    /// A continuation resumed by whichever of the work and the timer comes first.
    private final class Answer<T: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<T, Never>?
            var startedAt: ContinuousClock.Instant?
        }
        private let state: Mutex<State>

        init(_ continuation: CheckedContinuation<T, Never>) { state = Mutex(State(continuation: continuation)) }

        /// Notes that the work starts now; false when the caller has been answered already.
        func start() -> Bool {
            state.withLock { state in
                guard state.continuation != nil else { return false }
                state.startedAt = .now
                return true
            }
        }

        func give(_ value: T) {
            state.withLock { $0.continuation.take() }?.resume(returning: value)
        }

        func giveLate(_ late: (ContinuousClock.Instant?) -> T) {
            let (continuation, startedAt) = state.withLock { ($0.continuation.take(), $0.startedAt) }
            continuation?.resume(returning: late(startedAt))
        }
    }
}
