import CPlugvisorLinux
import Glibc

/// Plain reads, writes and hang-ups on descriptors, each retried on EINTR in one place
/// (`retryingInterrupts`), so that code above this target never calls the C library for them.
extension Descriptors {
    /// What is there to read, up to `buffer.count` bytes, into the start of `buffer`: 0 at end of file.
    public static func read(_ fd: Int32, into buffer: inout [UInt8]) throws(SystemError) -> Int {
        try retryingInterrupts("read") { buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } }
    }

    /// Writes all of `bytes`, in as many writes as the descriptor takes.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let written = try retryingInterrupts("write") {
                bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            }
            if written == 0 { throw SystemError("write", errno: EIO) }
            offset += written
        }
    }

    /// Writes `line` to stderr, for processes that have no logger (a worker, the broker, before
    /// or without one). A line that cannot be written is dropped: there is nowhere to say so.
    public static func writeToStandardError(_ line: String) {
        try? writeAll(STDERR_FILENO, Array(line.utf8))
    }

    /// Opens `path` for reading without ever blocking on it (a FIFO or a device answers at once)
    /// and without it becoming our controlling terminal; with `followingLinks: false`, a
    /// symbolic link as its last component is refused (ELOOP) rather than followed.
    /// A relative `path` is taken in the folder open as `directory` (openat).
    public static func openForReading(
        _ path: String, followingLinks: Bool = true, in directory: Int32 = AT_FDCWD
    ) throws(SystemError) -> OwnedDescriptor {
        let flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | (followingLinks ? 0 : O_NOFOLLOW)
        let fd = try retryingInterrupts("open \(path)") { openat(directory, path, flags) }
        return OwnedDescriptor(fd)
    }

    /// The file type bits (`S_IFMT`) of what `fd` refers to.
    public static func fileType(_ fd: OwnedDescriptor) throws(SystemError) -> mode_t {
        var info = stat()
        try retryingInterrupts("fstat") { fstat(fd.rawValue, &info) }
        return info.st_mode & S_IFMT
    }
}

extension OwnedDescriptor {
    /// Ends both directions of this socket. A thread blocked reading it wakes up at end of file
    /// and the peer sees us hang up; unlike `close`, it is safe while another thread uses the
    /// descriptor (its number cannot be reused under that thread). A socket whose peer is gone
    /// is not an error.
    public func shutdown() {
        _ = Glibc.shutdown(rawValue, Int32(SHUT_RDWR))
    }
}

/// An inotify instance: directories watched for files written, moved in, created or deleted.
public final class Inotify: @unchecked Sendable {
    // SAFETY: `descriptor` is immutable (the kernel serialises watch changes on it); `buffer`
    // is only used by `events`, which one thread calls.
    private let descriptor: OwnedDescriptor
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    public init() throws(SystemError) {
        let fd = pv_inotify_init()
        if fd < 0 { throw SystemError("inotify_init1") }
        descriptor = OwnedDescriptor(fd)
    }

    /// The watch descriptor for `path`, or nil when it cannot be watched (gone, not a directory).
    public func watch(directory path: String) -> Int32? {
        let watch = pv_inotify_watch_directory(descriptor.rawValue, path)
        return watch >= 0 ? watch : nil
    }

    public func removeWatch(_ watch: Int32) {
        _ = pv_inotify_remove_watch(descriptor.rawValue, watch)
    }

    /// The events that arrive within `timeout` (none when nothing did): the watch each came
    /// from and the name of the file in its directory. Call from one thread at a time.
    public func events(waitingUpTo timeout: Duration) -> [(watch: Int32, name: String)] {
        var pfd = pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0)
        let millis = Int32(
            clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard (try? retryingInterrupts("poll", { poll(&pfd, 1, millis) })) ?? 0 > 0 else { return [] }
        // Non-blocking: EAGAIN (another reader took them) is "no events".
        guard let count = try? Descriptors.read(descriptor.rawValue, into: &buffer), count > 0 else { return [] }
        return Self.decode(buffer[0..<count])
    }

    /// Decodes `struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }` records.
    static func decode(_ bytes: ArraySlice<UInt8>) -> [(watch: Int32, name: String)] {
        var events: [(watch: Int32, name: String)] = []
        var offset = bytes.startIndex
        let header = 16
        while offset + header <= bytes.endIndex {
            func word(_ at: Int) -> UInt32 {
                bytes[at..<at + 4].reversed().reduce(0) { ($0 << 8) | UInt32($1) }  // little-endian
            }
            let watch = Int32(bitPattern: word(offset))
            let length = Int(word(offset + 12))
            let name = bytes[(offset + header)..<min(offset + header + length, bytes.endIndex)].prefix { $0 != 0 }
            if !name.isEmpty { events.append((watch, String(decoding: name, as: UTF8.self))) }
            offset += header + length
        }
        return events
    }
}
