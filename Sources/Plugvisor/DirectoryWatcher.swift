import Foundation
import PlugvisorPosix

/// Watches directories with inotify and reports which files changed, debounced per file: a
/// burst of events on a file (an editor's write, a build tool's rename) is reported once, `quiet`
/// after its end, whatever other files in the directory do (a log appended all the time).
///
/// Watching the directory, not the file, is what catches a file replaced by rename.
public final class DirectoryWatcher: @unchecked Sendable {
    // SAFETY: `watches` and `stopped` are only touched under `lock`; `inotify` is immutable.
    private let inotify: Inotify
    private let lock = Lock()
    private var watches: [Int32: String] = [:]
    private var stopped = false
    private let quiet: Duration
    private let onChange: @Sendable (Set<String>) -> Void

    /// - Parameter onChange: called on the watcher's thread with the paths that changed.
    public init(
        quiet: Duration = .milliseconds(150), onChange: @escaping @Sendable (Set<String>) -> Void
    ) throws(SystemError) {
        inotify = try Inotify()
        self.quiet = quiet
        self.onChange = onChange
        let thread = Thread { [self] in run() }
        thread.name = "plugvisor-watcher"
        thread.start()
    }

    /// Watches exactly these directories from now on.
    public func watch(directories: Set<String>) {
        lock.withLock {
            for (watch, path) in watches where !directories.contains(path) {
                inotify.removeWatch(watch)
                watches.removeValue(forKey: watch)
            }
            let watched = Set(watches.values)
            for path in directories.subtracting(watched) {
                if let watch = inotify.watch(directory: path) { watches[watch] = path }
            }
        }
    }

    public func stop() {
        lock.withLock { stopped = true }
    }

    private func run() {
        /// Each changed file, with when its last event came.
        var pending: [String: ContinuousClock.Instant] = [:]
        while !lock.withLock({ stopped }) {
            let events = inotify.events(waitingUpTo: pending.isEmpty ? .milliseconds(500) : .milliseconds(25))
            if !events.isEmpty {
                let now = ContinuousClock.now
                lock.withLock {
                    for event in events {
                        if let directory = watches[event.watch] { pending[directory + "/" + event.name] = now }
                    }
                }
            }
            let now = ContinuousClock.now
            let settled = Set(pending.filter { now - $0.value >= quiet }.keys)
            if !settled.isEmpty {
                for path in settled { pending.removeValue(forKey: path) }
                onChange(settled)
            }
        }
    }
}
