import Foundation
import PlugvisorPosix

/// Spawns every worker from one long-lived thread.
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked a process exits, not the process; a
/// worker spawned from a short-lived thread would be killed when that thread ends.
final class Spawner: @unchecked Sendable {
    // SAFETY: `jobs` is only touched under `lock`.
    private let lock = Lock()
    private var jobs: [@Sendable () -> Void] = []

    init() {
        let thread = Thread { [unowned self] in self.serve() }
        thread.name = "plugvisor-spawner"
        thread.start()
    }

    /// Runs `body` on the spawner thread and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws(SystemError) -> T) throws(SystemError) -> T {
        let box = ResultBox<Result<T, SystemError>>()
        lock.withLock {
            jobs.append {
                let result: Result<T, SystemError>
                do throws(SystemError) { result = .success(try body()) } catch { result = .failure(error) }
                box.fulfill(result)
            }
            lock.broadcast()
        }
        return try box.wait().get()
    }

    private func serve() {
        while true {
            let job: @Sendable () -> Void = lock.withLock {
                while jobs.isEmpty { lock.wait() }
                return jobs.removeFirst()
            }
            job()
        }
    }
}

/// A value handed from one thread to another exactly once.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    // SAFETY: `value` is only touched under `lock`.
    private let lock = Lock()
    private var value: T?

    func fulfill(_ newValue: T) {
        lock.withLock {
            value = newValue
            lock.broadcast()
        }
    }

    func wait() -> T {
        lock.withLock {
            while value == nil { lock.wait() }
            return value!
        }
    }
}
