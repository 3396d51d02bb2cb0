import Glibc

/// Whom the control socket may belong to: this user or root, for its directory, the socket file
/// and the process listening on it. Anyone else could read what a client sends (`call -p
/// card=…`) and forge what it is told, or squat the path so that `start` cannot use it.
public enum ControlSocketTrust {
    /// Why a control socket path cannot be used.
    public enum Problem: Error, Sendable, CustomStringConvertible {
        /// Nothing is there (or nothing listens): no supervisor runs on that path.
        case notListening(String)
        /// Something is there that another user owns, could replace, or runs.
        case untrusted(String)

        public var description: String {
            switch self {
            case let .notListening(text), let .untrusted(text): text
            }
        }
    }

    public static func isTrusted(_ uid: uid_t) -> Bool { uid == geteuid() || uid == 0 }

    /// Throws unless `directory` is a directory (not a symlink) owned by this user or root that
    /// neither its group nor others can write: only then can no one else swap the socket in it.
    public static func checkDirectory(_ directory: String) throws(Problem) {
        var info = stat()
        guard lstat(directory, &info) == 0 else {
            let error = SystemError("stat \(directory)")
            if error.errno == ENOENT { throw .notListening("\(directory) does not exist") }
            throw .untrusted("control socket directory: \(error)")
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw .untrusted("control socket directory \(directory) is not a directory (a symlink or a file)")
        }
        guard isTrusted(info.st_uid) else {
            throw .untrusted(
                "control socket directory \(directory) belongs to \(user(info.st_uid)), not to you (\(user(geteuid()))) or root: another user may have created it to intercept your commands; remove it, or choose another path with --control or XDG_RUNTIME_DIR"
            )
        }
        if info.st_mode & 0o022 != 0 {
            throw .untrusted(
                "control socket directory \(directory) is writable by other users (mode \(octal(info.st_mode & 0o7777))), so they could replace the socket; use a directory only you can write to (chmod 700)"
            )
        }
    }

    /// Throws unless `path` is a socket owned by this user or root that its group and others
    /// cannot write to (connect to).
    public static func checkSocket(_ path: String) throws(Problem) {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            let error = SystemError("stat \(path)")
            if error.errno == ENOENT { throw .notListening("\(path) does not exist") }
            throw .untrusted("control socket: \(error)")
        }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else { throw .untrusted("control socket \(path) is not a socket") }
        guard isTrusted(info.st_uid) else {
            throw .untrusted(
                "control socket \(path) belongs to \(user(info.st_uid)), not to you (\(user(geteuid()))) or root")
        }
        if info.st_mode & 0o022 != 0 {
            throw .untrusted("control socket \(path) is writable by other users (mode \(octal(info.st_mode & 0o7777)))")
        }
    }

    /// Connects to the supervisor on `path` once its directory and the socket pass the checks
    /// above and the process listening on it runs as this user or root (SO_PEERCRED). Nothing is
    /// sent before that.
    public static func connect(path: String) throws(Problem) -> OwnedDescriptor {
        try checkDirectory(directory(of: path))
        try checkSocket(path)
        let socket: OwnedDescriptor
        do throws(SystemError) { socket = try Descriptors.connectUnix(path: path) } catch {
            throw .notListening("\(error)")
        }
        let peer: uid_t
        do throws(SystemError) { peer = try Descriptors.peerUID(socket) } catch {
            socket.close()
            throw .untrusted("control socket \(path): \(error)")
        }
        guard isTrusted(peer) else {
            socket.close()
            throw .untrusted(
                "the process listening on \(path) runs as \(user(peer)), not as you (\(user(geteuid()))) or root")
        }
        return socket
    }

    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// `uid 65534 (nobody)`, or `uid 1234` when it has no name.
    static func user(_ uid: uid_t) -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        if getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, let result, let name = result.pointee.pw_name {
            return "uid \(uid) (\(String(cString: name)))"
        }
        return "uid \(uid)"
    }

    static func octal(_ mode: mode_t) -> String { "0" + String(mode, radix: 8) }
}
