import Foundation
import PlugvisorPosix

/// Watches directories with inotify and reports which files changed, debounced: a burst of
/// events (an editor's write, a build tool's rename) is reported once, `quiet` after its end.
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
    public init(quiet: Duration = .milliseconds(150), onChange: @escaping @Sendable (Set<String>) -> Void) throws(SystemError) {
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
        var pending: Set<String> = []
        var lastEvent = ContinuousClock.now
        while !lock.withLock({ stopped }) {
            let events = inotify.events(waitingUpTo: pending.isEmpty ? .milliseconds(500) : .milliseconds(25))
            if !events.isEmpty {
                lock.withLock {
                    for event in events {
                        if let directory = watches[event.watch] { pending.insert(directory + "/" + event.name) }
                    }
                }
                lastEvent = .now
            }
            if !pending.isEmpty && ContinuousClock.now - lastEvent >= quiet {
                let changed = pending
                pending.removeAll()
                onChange(changed)
            }
        }
    }
}
