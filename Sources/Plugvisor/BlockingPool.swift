import Dispatch
import NIOPosix
import PlugvisorPosix
import Synchronization

/// The threads that the async API and the gateway run the supervisor's blocking work on: calls
/// waiting for a worker, starts and shutdowns waiting for processes, status reads taking locks.
/// On Swift's cooperative pool that work would starve every other task; on a thread per call,
/// 10,000 concurrent calls would be 10,000 threads. These are a fixed number, started at first
/// use and reused; work beyond them waits its turn, first come, first served.
final class BlockingPool: Sendable {
    let threads: Int
    private let pool: NIOThreadPool
    private let started = Atomic<Bool>(false)

    init(threads: Int) {
        precondition(threads > 0, "a blocking pool needs at least one thread")
        self.threads = threads
        pool = NIOThreadPool(numberOfThreads: threads)
    }

    deinit {
        if started.load(ordering: .acquiring) { pool.shutdownGracefully { _ in } }
    }

    /// Runs `work` on a pool thread.
    func submit(_ work: @escaping @Sendable () -> Void) {
        if !started.load(ordering: .acquiring) {
            pool.start()  // idempotent: a second caller's start does nothing
            started.store(true, ordering: .releasing)
        }
        // The pool hands `.cancelled` only to work still queued when it shuts down, and only
        // `deinit` shuts it down, when no one can be waiting: the work is run either way.
        pool.submit { _ in work() }
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
