import CPlugvisorLinux
import Foundation
import PlugvisorPosix
import Glibc

/// Watches directories with inotify and reports which files changed, debounced per file: a
/// burst of events on a file (an editor's write, a build tool's rename) is reported once, `quiet`
/// after its end, whatever other files in the directory do (a log appended all the time).
///
/// Watching the directory, not the file, is what catches a file replaced by rename.
public final class DirectoryWatcher: @unchecked Sendable {
    // SAFETY: `watches` is only touched under `lock`; `inotify` is immutable.
    private let inotify: OwnedDescriptor
    private let lock = Lock()
    private var watches: [Int32: String] = [:]
    private var stopped = false
    private let quiet: Duration
    private let onChange: @Sendable (Set<String>) -> Void

    /// - Parameter onChange: called on the watcher's thread with the paths that changed.
    public init(quiet: Duration = .milliseconds(150), onChange: @escaping @Sendable (Set<String>) -> Void) throws(SystemError) {
        let fd = pv_inotify_init()
        if fd < 0 { throw SystemError("inotify_init1") }
        inotify = OwnedDescriptor(fd)
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
                _ = pv_inotify_remove_watch(inotify.rawValue, watch)
                watches.removeValue(forKey: watch)
            }
            let watched = Set(watches.values)
            for path in directories.subtracting(watched) {
                let watch = pv_inotify_watch_directory(inotify.rawValue, path)
                if watch >= 0 { watches[watch] = path }
            }
        }
    }

    public func stop() {
        lock.withLock { stopped = true }
    }

    private func run() {
        /// Each changed file, with when its last event came.
        var pending: [String: ContinuousClock.Instant] = [:]
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !lock.withLock({ stopped }) {
            var pfd = pollfd(fd: inotify.rawValue, events: Int16(POLLIN), revents: 0)
            let wait: Int32 = pending.isEmpty ? 500 : 25
            if poll(&pfd, 1, wait) > 0 {
                let count = buffer.withUnsafeMutableBytes { read(inotify.rawValue, $0.baseAddress, $0.count) }
                if count > 0 {
                    let now = ContinuousClock.now
                    for path in paths(in: buffer[0..<count]) { pending[path] = now }
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

    /// Decodes `struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }` records.
    private func paths(in bytes: ArraySlice<UInt8>) -> Set<String> {
        var paths: Set<String> = []
        var offset = bytes.startIndex
        let header = 16
        while offset + header <= bytes.endIndex {
            func word(_ at: Int) -> UInt32 {
                bytes[at..<at + 4].reversed().reduce(0) { ($0 << 8) | UInt32($1) }  // little-endian
            }
            let watch = Int32(bitPattern: word(offset))
            let length = Int(word(offset + 12))
            let nameBytes = bytes[(offset + header)..<min(offset + header + length, bytes.endIndex)].prefix { $0 != 0 }
            if let directory = lock.withLock({ watches[watch] }), !nameBytes.isEmpty {
                paths.insert(directory + "/" + String(decoding: nameBytes, as: UTF8.self))
            }
            offset += header + length
        }
        return paths
    }
}
