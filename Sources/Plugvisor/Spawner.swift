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
    private var stopped = false

    init() {
        // The thread keeps the spawner alive until `stop()`.
        let thread = Thread { [self] in self.serve() }
        thread.name = "plugvisor-spawner"
        thread.start()
    }

    /// Runs `body` on the spawner thread and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws(SystemError) -> T) throws(SystemError) -> T {
        let box = HandOff<Result<T, SystemError>>()
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

    /// Ends the thread once the jobs already queued are done. Workers it spawned are killed by
    /// PDEATHSIG when the thread ends: stop only after they are gone.
    func stop() {
        lock.withLock {
            stopped = true
            lock.broadcast()
        }
    }

    private func serve() {
        while true {
            let job: (@Sendable () -> Void)? = lock.withLock {
                while jobs.isEmpty && !stopped { lock.wait() }
                return jobs.isEmpty ? nil : jobs.removeFirst()
            }
            guard let job else { return }
            job()
        }
    }
}
