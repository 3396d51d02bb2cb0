import Foundation
import Testing

@testable import Plugvisor

/// The pool the async API and the gateway block on: threads only as work needs them, never
/// more than its bound, and none kept once idle.
@Suite(.timeLimit(.minutes(1))) struct BlockingPoolTests {
    @Test func threadsStartAsWorkNeedsThemUpToTheBoundAndEndWhenIdle() throws {
        let pool = BlockingPool(threads: 4, idleLifetime: .milliseconds(300))
        #expect(pool.threadCount == 0, "no thread before any work")

        // Work that finds the thread idle reuses it.
        for _ in 0..<5 {
            let done = DispatchSemaphore(value: 0)
            pool.submit { done.signal() }
            done.wait()
            #expect(eventually { pool.idleThreadCount == 1 })
        }
        #expect(pool.threadCount == 1)

        // Six jobs that block: four threads run four, two wait their turn.
        let release = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        let started = Counter()
        for _ in 0..<6 {
            pool.submit {
                started.increment()
                release.wait()
                finished.signal()
            }
        }
        #expect(eventually { started.value == 4 })
        #expect(pool.threadCount == 4)
        Thread.sleep(forTimeInterval: 0.05)
        #expect(started.value == 4, "the bound holds")
        for _ in 0..<6 { release.signal() }
        for _ in 0..<6 { finished.wait() }
        #expect(started.value == 6, "the queued jobs ran too")

        #expect(eventually { pool.threadCount == 0 }, "idle threads end")
        // And the pool starts again when work comes back.
        let again = DispatchSemaphore(value: 0)
        pool.submit { again.signal() }
        again.wait()
        #expect(pool.threadCount == 1)
    }

    private func eventually(_ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return condition()
    }

    private final class Counter: @unchecked Sendable {
        // SAFETY: `count` is only touched under `lock`.
        private let lock = NSLock()
        private var count = 0
        var value: Int { lock.withLock { count } }
        func increment() { lock.withLock { count += 1 } }
    }
}
