import CPlugvisorSandbox
import Glibc
import PlugvisorProtocol

/// Resource limits of a worker process.
public struct ResourceLimits: Sendable, Equatable {
    /// RLIMIT_DATA: heap and private mappings (WasmKit's linear memory lives there).
    public var dataBytes: UInt64
    /// RLIMIT_NOFILE.
    public var openFiles: UInt64
    /// RLIMIT_CPU in seconds: a backstop for a worker that escapes every other bound.
    public var cpuSeconds: UInt64
    /// RLIMIT_FSIZE: the largest file a plugin may write in a granted directory.
    public var fileBytes: UInt64
    /// RLIMIT_NPROC, counted per uid: set only for a process that runs as a uid of its own
    /// (a build step under root, as its plugin's uid), where it bounds a fork bomb.
    public var processes: UInt64? = nil

    /// Limits for a plugin whose linear memory is capped at `memoryLimit` bytes. Growing a
    /// memory copies it, so the data limit leaves room for two copies plus the runtime, and
    /// the limiter refuses growth (memory.grow = -1) well before the kernel would.
    public static func worker(memoryLimit: Int) -> ResourceLimits {
        ResourceLimits(
            dataBytes: UInt64(memoryLimit) * 2 + 256 << 20, openFiles: 64, cpuSeconds: 3600, fileBytes: 1 << 30)
    }

    public init(dataBytes: UInt64, openFiles: UInt64, cpuSeconds: UInt64, fileBytes: UInt64) {
        self.dataBytes = dataBytes
        self.openFiles = openFiles
        self.cpuSeconds = cpuSeconds
        self.fileBytes = fileBytes
    }
}

/// Everything a worker locks itself down with, right before guest code runs.
public struct LockdownPlan: Sendable {
    public struct Directory: Sendable, Equatable {
        public var path: String
        public var writable: Bool
        /// Programs in it may be executed (a compiler's binaries); never with `writable`.
        public var executable: Bool
        /// Only its entries may be listed, and the empty root does not bind it: it holds other
        /// grants, and nothing else of it exists there.
        public var listOnly: Bool
        public init(path: String, writable: Bool, executable: Bool = false, listOnly: Bool = false) {
            precondition(
                [writable, executable, listOnly].filter { $0 }.count <= 1, "a directory is granted one way")
            self.path = path
            self.writable = writable
            self.executable = executable
            self.listOnly = listOnly
        }

        /// How the C side spells it (PV_GRANT_*).
        var grant: Int32 {
            writable ? PV_GRANT_WRITE : executable ? PV_GRANT_EXECUTE : listOnly ? PV_GRANT_LIST_ONLY : 0
        }

        /// A granted directory, at its host path (Landlock rules know nothing of the guest's).
        public init(_ preopen: Preopen) { self.init(path: preopen.host, writable: !preopen.readOnly) }
    }

    /// The only directories the worker may touch afterwards (Landlock).
    public var directories: [Directory]
    /// Drop to this uid and gid when running as root.
    public var user: WorkerUser?
    public var policy: SeccompPolicy
    /// Whether the process gets its own namespaces (user, mount, network, IPC, UTS) with an empty
    /// root holding only `directories`, and Landlock also forbids TCP bind and connect: yes for
    /// workers, no for the network broker, whose job is to connect through the host's network
    /// with the host's resolver configuration and certificates.
    public var isolated: Bool
    /// (isolated) The next child is pid 1 of a PID namespace of its own (a build step's
    /// compiler): nothing it starts can outlive it, and it sees no process outside.
    public var childInOwnPIDNamespace: Bool

    public init(
        directories: [Directory], user: WorkerUser?, policy: SeccompPolicy, isolated: Bool = true,
        childInOwnPIDNamespace: Bool = false
    ) {
        self.directories = directories
        self.user = user
        self.policy = policy
        self.isolated = isolated
        self.childInOwnPIDNamespace = childInOwnPIDNamespace
    }
}

/// The worker's sandbox as an ordered checklist (nsjail order), seccomp last.
public enum Lockdown {
    /// First thing after exec: keep only fds 0-`lastKept` (for a worker 0-4: stdio, the channel,
    /// the module) and no core dumps.
    public static func atStart(keepingThrough lastKept: Int32 = 4) throws(SandboxError) {
        if pv_close_from(lastKept + 1) != 0 { throw SandboxError(step: "close descriptors", errno: errno) }
        if pv_set_rlimit(pv_rlimit_core(), 0) != 0 { throw SandboxError(step: "RLIMIT_CORE", errno: errno) }
    }

    /// Before the module is read and compiled.
    public static func setResourceLimits(_ limits: ResourceLimits) throws(SandboxError) {
        let steps: [(String, Int32, UInt64)] = [
            ("RLIMIT_DATA", pv_rlimit_data(), limits.dataBytes),
            ("RLIMIT_NOFILE", pv_rlimit_nofile(), limits.openFiles),
            ("RLIMIT_CPU", pv_rlimit_cpu(), limits.cpuSeconds),
            ("RLIMIT_FSIZE", pv_rlimit_fsize(), limits.fileBytes),
        ]
        for (name, resource, value) in steps where pv_set_rlimit(resource, value) != 0 {
            throw SandboxError(step: name, errno: errno)
        }
        if let processes = limits.processes, pv_set_rlimit(pv_rlimit_nproc(), processes) != 0 {
            throw SandboxError(step: "RLIMIT_NPROC", errno: errno)
        }
    }

    /// Before any guest byte is parsed. Irreversible. One order for every sandboxed process:
    /// 1. no_new_privs first: Landlock and seccomp need it when the process is not root;
    /// 2. under root, the drop to `plan.user`;
    /// 3. (isolated) own namespaces with an empty root: made as that user, so the same for root
    ///    and for an ordinary user, and nothing outside the grants exists, not even for stat;
    /// 4. PR_SET_PDEATHSIG again, as every credential change above clears it;
    /// 5. Landlock: the grants, TCP (isolated), signals and abstract sockets scoped to itself;
    /// 6. the seccomp filter, last.
    public static func apply(_ plan: LockdownPlan) throws(SandboxError) {
        let parent = getppid()
        if pv_set_no_new_privileges() != 0 { throw SandboxError(step: "PR_SET_NO_NEW_PRIVS", errno: errno) }
        if let user = plan.user, geteuid() == 0 {
            if pv_drop_privileges(user.uid, user.gid) != 0 {
                throw SandboxError(step: "drop privileges to \(user.uid):\(user.gid)", errno: errno)
            }
        }
        if plan.isolated { try enterEmptyRoot(plan.directories, newPIDNamespace: plan.childInOwnPIDNamespace) }
        if pv_rearm_parent_death_signal(parent) != 0 { throw SandboxError(step: "PR_SET_PDEATHSIG", errno: errno) }
        try restrictFilesystem(plan.directories, network: plan.isolated)
        try plan.policy.install()  // must stay last
    }

    static func enterEmptyRoot(_ directories: [LockdownPlan.Directory], newPIDNamespace: Bool) throws(SandboxError) {
        let owned = directories.map { strdup($0.path) }
        defer { owned.forEach { free($0) } }
        let paths: [UnsafePointer<CChar>?] = owned.map { $0.map { UnsafePointer($0) } }
        let writable: [Int32] = directories.map(\.grant)
        var step = [CChar](repeating: 0, count: 256)
        let rc = pv_enter_empty_root(paths, writable, directories.count, newPIDNamespace ? 1 : 0, &step, step.count)
        if rc != 0 {
            let name = String(decoding: step.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw SandboxError(step: "namespaces (\(name))", errno: -rc)
        }
    }

    /// Landlock where the kernel has it. Without it, seccomp still forbids open when nothing is
    /// granted, and a read-only grant is refused rather than silently left writable.
    static func restrictFilesystem(_ directories: [LockdownPlan.Directory], network: Bool) throws(SandboxError) {
        guard landlockABI > 0 else {
            if let readOnly = directories.first(where: { !$0.writable }) {
                throw SandboxError(
                    step: "landlock", "this kernel has no Landlock, so \(readOnly.path) cannot be made read-only")
            }
            return
        }
        let owned = directories.map { strdup($0.path) }
        defer { owned.forEach { free($0) } }
        let paths: [UnsafePointer<CChar>?] = owned.map { $0.map { UnsafePointer($0) } }
        let writable: [Int32] = directories.map(\.grant)
        let rc = pv_landlock_restrict_paths(paths, writable, directories.count, network ? 1 : 0)
        if rc != 0 { throw SandboxError(step: "landlock", errno: -rc) }
    }

    public static var landlockABI: Int { Int(pv_landlock_abi()) }

    /// Test-only: attempts forbidden operation `which` (see `pv_sandbox_drill`).
    public static func drill(_ which: Int32) -> Int { Int(pv_sandbox_drill(which)) }
}
