import Glibc
import PlugvisorManifest
import PlugvisorProtocol

/// Whether the worker's user can use each granted directory as its mode says. A grant it cannot
/// write looks, from inside the guest, like a refused or failed open: say so once at start, with
/// the fix, instead of leaving the plugin author to guess.
///
/// Checked here with the worker's ids against the directory's owner and mode bits (the worker
/// cannot tell: in its user namespace every id but its own reads as 65534).
enum GrantAccess {
    /// The worker's credentials: under root the plugin's user (no supplementary groups, as
    /// the drop clears them), otherwise this process's own.
    struct Credentials {
        var uid: uid_t
        var gid: gid_t
        var groups: [gid_t]

        static func worker(_ user: WorkerUser?) -> Credentials {
            if let user { return Credentials(uid: uid_t(user.uid), gid: gid_t(user.gid), groups: []) }
            var groups = [gid_t](repeating: 0, count: max(0, min(Int(getgroups(0, nil)), 65536)))
            let count = getgroups(Int32(groups.count), &groups)
            return Credentials(uid: geteuid(), gid: getegid(), groups: Array(groups.prefix(Int(max(count, 0)))))
        }
    }

    /// One sentence per grant the worker cannot use as its mode says; empty when all are usable.
    static func problems(_ grants: [PluginSpec.DirectoryGrant], credentials: Credentials) -> [String] {
        grants.compactMap { grant in
            var status = stat()
            guard stat(grant.host, &status) == 0 else {
                return "filesystem grant \(grant.host) cannot be used: \(String(cString: strerror(errno)))"
            }
            guard credentials.uid != 0 else { return nil }
            let writable = grant.mode == .readWrite
            let needed: mode_t = writable ? 0o7 : 0o5  // rwx to create files, r-x to list and read
            let shift: mode_t
            if status.st_uid == credentials.uid {
                shift = 6
            } else if status.st_gid == credentials.gid || credentials.groups.contains(status.st_gid) {
                shift = 3
            } else {
                shift = 0
            }
            guard (status.st_mode >> shift) & needed != needed else { return nil }
            let mode = String(status.st_mode & 0o7777, radix: 8)
            let who = "uid \(credentials.uid), gid \(credentials.gid)"
            let fix =
                writable
                ? "chown \(credentials.uid) \(grant.host), or make it group- or world-writable, or grant it with mode: ro"
                : "chown \(credentials.uid) \(grant.host), or chmod o+rx \(grant.host)"
            return "filesystem grant \(grant.host) (\(grant.mode.rawValue)): the workers' user (\(who)) cannot "
                + "\(writable ? "create files in" : "read") it (owner \(status.st_uid):\(status.st_gid), mode \(mode)), "
                + "so the guest would get EACCES; fix: \(fix)"
        }
    }
}
