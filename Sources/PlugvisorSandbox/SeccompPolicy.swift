import CPlugvisorSandbox
import Glibc

/// A seccomp allowlist kept as data, with the reason for every syscall (Firecracker style).
/// Anything not listed traps: the worker reports the syscall on stderr and dies of SIGSYS.
public struct SeccompPolicy: Sendable, Equatable {
    public struct Rule: Sendable, Equatable {
        public var name: String
        public var why: String
        /// Allowed only when every condition holds. Several rules for one syscall are alternatives.
        public var conditions: [Condition]
        public init(_ name: String, why: String, when conditions: Condition...) {
            precondition(conditions.count <= 2, "a rule takes at most two conditions")
            self.name = name
            self.why = why
            self.conditions = conditions
        }
    }

    /// `(argument & mask) == value`, and what that means, for `plugvisor sandbox-policy`.
    public struct Condition: Sendable, Equatable {
        public var index: Int
        public var mask: UInt64
        public var value: UInt64
        public var meaning: String

        public static func argument(_ index: Int, is value: UInt64, _ meaning: String) -> Condition {
            Condition(index: index, mask: .max, value: value, meaning: meaning)
        }

        /// The argument has none of the bits of `mask`.
        public static func argument(_ index: Int, without mask: UInt64, _ meaning: String) -> Condition {
            Condition(index: index, mask: mask, value: 0, meaning: meaning)
        }
    }

    public enum Mode: Sendable, Equatable {
        /// The rules run; every other syscall traps (SIGSYS).
        case allowList
        /// The rules trap (SIGSYS); every other syscall runs.
        case denyList
    }

    public var rules: [Rule]
    public var mode: Mode

    public init(rules: [Rule], mode: Mode = .allowList) {
        self.rules = rules
        self.mode = mode
    }

    /// The network broker's filter: a denylist, not an allowlist. The broker runs
    /// FoundationNetworking and libcurl (threads, DNS, TLS, sockets of every kind), whose exact
    /// syscalls vary with the library versions and the remote side; an allowlist that misses one
    /// would kill every request. What the filter does instead is take away what an attacker who
    /// got code running in the broker would reach for next: running programs, reading or
    /// writing other processes, and the kernel's rarely used, often exploited surfaces. Landlock
    /// (no writes, reads only of system directories), the privilege drop and rlimits do the rest.
    public static let broker = SeccompPolicy(
        rules: [
            Rule("execve", why: "no new programs: the broker only ever runs its own code"),
            Rule("execveat", why: "no new programs"),
            Rule("fork", why: "no new processes (threads use clone)"),
            Rule("vfork", why: "no new processes"),
            Rule("ptrace", why: "no reading or steering other processes"),
            Rule("process_vm_readv", why: "no reading other processes' memory"),
            Rule("process_vm_writev", why: "no writing other processes' memory"),
            Rule("pidfd_getfd", why: "no stealing other processes' descriptors"),
            Rule("kcmp", why: "no probing other processes' resources"),
            Rule("mount", why: "no changing the filesystem tree"),
            Rule("umount2", why: "no changing the filesystem tree"),
            Rule("pivot_root", why: "no changing the filesystem tree"),
            Rule("chroot", why: "no changing the filesystem tree"),
            Rule("unshare", why: "no new namespaces (user namespaces widen the kernel's attack surface)"),
            Rule("setns", why: "no entering other namespaces"),
            Rule("kexec_load", why: "no loading kernels"),
            Rule("kexec_file_load", why: "no loading kernels"),
            Rule("init_module", why: "no loading kernel modules"),
            Rule("finit_module", why: "no loading kernel modules"),
            Rule("delete_module", why: "no unloading kernel modules"),
            Rule("bpf", why: "no eBPF programs"),
            Rule("perf_event_open", why: "no performance counters (a frequent kernel attack surface)"),
            Rule("userfaultfd", why: "no userfaultfd (used to win kernel races)"),
            Rule("io_uring_setup", why: "io_uring requests are not seen by seccomp"),
            Rule("keyctl", why: "no kernel keyrings"),
            Rule("add_key", why: "no kernel keyrings"),
            Rule("request_key", why: "no kernel keyrings"),
            Rule("personality", why: "no changing the execution domain"),
            Rule("reboot", why: "no rebooting"),
            Rule("swapon", why: "no swap changes"),
            Rule("swapoff", why: "no swap changes"),
            Rule("syslog", why: "no kernel log"),
            Rule("acct", why: "no process accounting"),
            Rule("settimeofday", why: "no setting clocks"),
            Rule("clock_settime", why: "no setting clocks"),
            Rule("iopl", why: "no I/O ports"),
            Rule("ioperm", why: "no I/O ports"),
            Rule("open_by_handle_at", why: "no opening files by handle (bypasses path checks)"),
            Rule("name_to_handle_at", why: "no file handles"),
            Rule("quotactl", why: "no disk quotas"),
            Rule("setuid", why: "credentials are final once dropped"),
            Rule("setgid", why: "credentials are final once dropped"),
            Rule("setreuid", why: "credentials are final once dropped"),
            Rule("setregid", why: "credentials are final once dropped"),
            Rule("setresuid", why: "credentials are final once dropped"),
            Rule("setresgid", why: "credentials are final once dropped"),
            Rule("setgroups", why: "credentials are final once dropped"),
        ], mode: .denyList)

    /// A compiler's filter, for a plugin built from source: the broker's denylist, but execve
    /// is allowed, since the filter is installed before the compiler is executed (as pid 1 of
    /// a PID namespace of its own, so that what it starts cannot outlive it or see other
    /// processes). Landlock lets nothing but the toolchain's own binaries execute; the compiler
    /// is large, multi-threaded and changes with every toolchain, so an allowlist of its
    /// syscalls would break with the next release.
    public static let compiler = SeccompPolicy(
        rules: broker.rules.filter { !["execve", "execveat"].contains($0.name) }, mode: .denyList)

    /// What a locked-down worker needs: read and write its frames, allocate, run WasmKit, and
    /// serve the WASI functions its grants allow. No sockets, exec, fork, ptrace; no open at all
    /// unless the plugin was granted directories (then Landlock confines where).
    public static func worker(
        channel: Int32, processID: pid_t, filesystem: Bool, command: Bool = false
    ) -> SeccompPolicy {
        let onChannel = Condition.argument(0, is: UInt64(channel), "on the channel only")
        let notExecutable = Condition.argument(2, without: UInt64(PROT_EXEC), "never PROT_EXEC")
        var rules: [Rule] = [
            Rule("read", why: "frames from the supervisor; WASI fd_read"),
            Rule("write", why: "frames to the supervisor, log lines to fd 2; WASI fd_write"),
            Rule("sendto", why: "frames to the supervisor with MSG_NOSIGNAL", when: onChannel),
            Rule("recvfrom", why: "frames from the supervisor, polled briefly before blocking", when: onChannel),
            Rule("readv", why: "WASI fd_read with several buffers"),
            Rule("writev", why: "WASI fd_write with several buffers"),
            Rule("close", why: "WASI fd_close"),
            Rule("lseek", why: "WASI fd_seek and fd_tell"),
            Rule("fstat", why: "WASI fd_filestat_get, and the C library on its own descriptors"),
            Rule("newfstatat", why: "WASI fd_filestat_get (fstatat with AT_EMPTY_PATH)"),
            // fcntl only with the commands WASI needs: F_SETOWN, F_SETOWN_EX, F_SETSIG and O_ASYNC
            // would have the kernel signal another process (any of this uid) when a frame
            // arrives, and leases and notifications signal too.
            Rule("fcntl", why: "WASI fd_fdstat_get", when: .argument(1, is: UInt64(F_GETFL), "F_GETFL")),
            Rule(
                "fcntl", why: "WASI fd_fdstat_set_flags", when: .argument(1, is: UInt64(F_SETFL), "F_SETFL"),
                .argument(2, without: UInt64(O_ASYNC), "without O_ASYNC")),
            Rule(
                "fcntl", why: "the C library on its own descriptors", when: .argument(1, is: UInt64(F_GETFD), "F_GETFD")
            ),
            Rule(
                "fcntl", why: "the C library on its own descriptors", when: .argument(1, is: UInt64(F_SETFD), "F_SETFD")
            ),
            // Never executable memory: WasmKit interprets, so only an attacker would want it.
            Rule("mmap", why: "memory for the Swift runtime and malloc", when: notExecutable),
            Rule("munmap", why: "memory for the Swift runtime and malloc"),
            Rule("mremap", why: "malloc growing large blocks"),
            Rule("mprotect", why: "malloc arenas", when: notExecutable),
            Rule("brk", why: "malloc"),
            Rule("madvise", why: "malloc returning memory"),
            Rule("futex", why: "locks in the Swift runtime and WasmKit"),
            Rule("rt_sigprocmask", why: "the SIGSYS reporter unblocks the signal it re-raises"),
            Rule("rt_sigaction", why: "the SIGSYS reporter restores the default action"),
            Rule("rt_sigreturn", why: "returning from signal handlers"),
            Rule("getpid", why: "raise() in the SIGSYS reporter"),
            Rule("gettid", why: "raise() in the SIGSYS reporter; the Swift runtime"),
            Rule(
                "tgkill", why: "raise() in the SIGSYS reporter",
                when: .argument(0, is: UInt64(processID), "at the worker's own pid")),
            Rule("exit", why: "thread exit"),
            Rule("exit_group", why: "the worker's own exit"),
            Rule("clock_gettime", why: "WASI clocks, call timing (when the vDSO is not used)"),
            Rule("clock_getres", why: "WASI clock_res_get"),
            Rule("gettimeofday", why: "WASI wall clock (when the vDSO is not used)"),
            Rule("clock_nanosleep", why: "WASI poll_oneoff on a clock"),
            Rule("nanosleep", why: "WASI poll_oneoff on a clock"),
            Rule("sched_yield", why: "WASI sched_yield; spin locks"),
            Rule("getrandom", why: "WASI random_get; Swift's random numbers"),
            Rule("poll", why: "WASI poll_oneoff; waiting for frames with a deadline"),
            Rule("ppoll", why: "WASI poll_oneoff"),
        ]
        if command {
            rules += [
                Rule("ftruncate", why: "a WASI command's stdin and stdout memory files, emptied for each call"),
                Rule("pwrite64", why: "the context written to a WASI command's stdin memory file"),
                Rule("pread64", why: "a WASI command's stdout memory file, read after it exits"),
            ]
        }
        if filesystem {
            rules += [
                Rule("openat", why: "WASI path_open, beneath granted directories (Landlock confines it)"),
                Rule("getdents64", why: "WASI fd_readdir"),
                Rule("pread64", why: "WASI fd_pread"),
                Rule("pwrite64", why: "WASI fd_pwrite"),
                Rule("mkdirat", why: "WASI path_create_directory"),
                Rule("unlinkat", why: "WASI path_unlink_file and path_remove_directory"),
                Rule("renameat", why: "WASI path_rename"),
                Rule("renameat2", why: "WASI path_rename"),
                Rule("readlinkat", why: "WASI path_readlink; resolving paths beneath a preopen"),
                Rule("symlinkat", why: "WASI path_symlink"),
                Rule("linkat", why: "WASI path_link"),
                Rule("utimensat", why: "WASI path_filestat_set_times and fd_filestat_set_times"),
                Rule("ftruncate", why: "WASI fd_filestat_set_size"),
                Rule("fsync", why: "WASI fd_sync"),
                Rule("fdatasync", why: "WASI fd_datasync"),
                Rule("fadvise64", why: "WASI fd_advise"),
                Rule("fallocate", why: "WASI fd_allocate"),
                Rule("statx", why: "WASI path_filestat_get"),
            ]
        }
        // A syscall allowed twice (a command granted directories) is listed once.
        var seen: Set<String> = []
        return SeccompPolicy(rules: rules.filter { seen.insert("\($0.name) \($0.conditions)").inserted })
    }

    /// Problems the kernel would report less clearly: names unknown on this architecture.
    public func problems() -> [String] {
        rules.filter { pv_syscall_number($0.name) < 0 }.map { "unknown syscall \($0.name)" }
    }

    /// Loads the filter into this process. Irreversible.
    public func install() throws(SandboxError) {
        let unknown = problems()
        guard unknown.isEmpty else { throw SandboxError(step: "seccomp", unknown.joined(separator: ", ")) }
        pv_prepare_syscall_names()
        if pv_install_sigsys_reporter() != 0 { throw SandboxError(step: "seccomp", errno: errno) }
        let compiled = rules.map { rule in
            func compiled(_ index: Int) -> pv_seccomp_condition {
                guard index < rule.conditions.count else {
                    return pv_seccomp_condition(arg_index: -1, mask: 0, value: 0)
                }
                let condition = rule.conditions[index]
                return pv_seccomp_condition(
                    arg_index: Int32(condition.index), mask: condition.mask, value: condition.value)
            }
            return pv_seccomp_rule(number: pv_syscall_number(rule.name), conditions: (compiled(0), compiled(1)))
        }
        var message = [CChar](repeating: 0, count: 256)
        let rc = pv_seccomp_install_mode(compiled, compiled.count, mode == .denyList ? 1 : 0, &message, message.count)
        if rc != 0 {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw SandboxError(step: "seccomp", text)
        }
    }
}

/// A lockdown step failed: the worker must not serve.
public struct SandboxError: Error, Sendable, CustomStringConvertible {
    public var step: String
    public var detail: String
    public init(step: String, _ detail: String) {
        self.step = step
        self.detail = detail
    }
    public init(step: String, errno: Int32) {
        self.init(step: step, String(cString: strerror(errno)))
    }
    public var description: String { "sandbox \(step): \(detail)" }
}
