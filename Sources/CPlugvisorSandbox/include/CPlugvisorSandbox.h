// The worker's lockdown primitives: libseccomp (whose variadic rule API and macro actions Swift
// cannot call), Landlock (raw syscalls), rlimits, privilege drop, and the SIGSYS reporter.
// Kept apart from CPlugvisorLinux, which needs _GNU_SOURCE (it clashes with seccomp.h there).
#ifndef CPLUGVISOR_SANDBOX_H
#define CPLUGVISOR_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// A condition on one syscall argument: `(argument & mask) == value` (mask ~0 for equality).
typedef struct {
    int arg_index;  // -1: no condition
    uint64_t mask;
    uint64_t value;
} pv_seccomp_condition;

/// One listed syscall, only when every condition holds (up to two). Several rules for one
/// syscall are alternatives.
typedef struct {
    int number;
    pv_seccomp_condition conditions[2];
} pv_seccomp_rule;

/// The syscall number for `name` on this architecture, or -1 when it has none.
int pv_syscall_number(const char *name);

/// Remembers the names of syscalls 0..limit so the SIGSYS reporter can name one without
/// allocating (it runs in a signal handler). Call before `pv_seccomp_install`.
void pv_prepare_syscall_names(void);

/// Installs a SIGSYS handler that writes "plugvisor-worker: seccomp refused syscall N (name)"
/// to fd 2, then dies of SIGSYS. Returns 0 or -1 with errno.
int pv_install_sigsys_reporter(void);

/// Loads a filter that allows exactly `rules` and traps (SIGSYS) everything else, including
/// every syscall of a foreign architecture. Returns 0, or a negative errno with `error` filled.
int pv_seccomp_install(const pv_seccomp_rule *rules, size_t count, char *error, size_t error_length);

/// Like `pv_seccomp_install`, or, when `deny_listed` is nonzero, a filter that allows everything
/// but `rules`, which trap (SIGSYS). Returns 0, or a negative errno with `error` filled.
int pv_seccomp_install_mode(const pv_seccomp_rule *rules, size_t count, int deny_listed, char *error,
                            size_t error_length);

/// The Landlock ABI version the kernel offers, or 0 when it has none.
int pv_landlock_abi(void);

/// How a path is granted, in the `writable` arrays below: 0 read-only, PV_GRANT_WRITE read and
/// write (never execute), PV_GRANT_EXECUTE read and execute (a compiler's own binaries),
/// PV_GRANT_LIST_ONLY a folder whose entries may be listed, holding other grants (with
/// `pv_enter_empty_root` it is not bound: only the grants in it exist).
#define PV_GRANT_WRITE 1
#define PV_GRANT_EXECUTE 2
#define PV_GRANT_LIST_ONLY 4

/// Restricts the filesystem to `paths` (granted as `writable[i]` says) and
/// forbids TCP bind/connect where the ABI allows. Returns 0 or a negative errno.
int pv_landlock_restrict(const char *const *paths, const int *writable, size_t count);

/// Like `pv_landlock_restrict`, but leaves TCP alone when `restrict_network` is 0 (the network
/// broker connects on behalf of guests).
int pv_landlock_restrict_paths(const char *const *paths, const int *writable, size_t count, int restrict_network);

/// Sets soft and hard limits of `resource`. Returns 0 or -1 with errno.
int pv_set_rlimit(int resource, uint64_t value);
int pv_rlimit_as(void);
int pv_rlimit_data(void);
int pv_rlimit_nofile(void);
int pv_rlimit_core(void);
int pv_rlimit_cpu(void);
int pv_rlimit_fsize(void);
int pv_rlimit_nproc(void);

/// Gives the calling process its own user, mount, network, IPC and UTS namespaces, with an
/// empty, read-only root in which only `paths` exist (bind mounts at the same paths, read-only
/// unless `writable[i]` has PV_GRANT_WRITE), as nsjail and bubblewrap do. Call after dropping privileges (it maps
/// the caller's own uid and gid, so it works the same for root and for an ordinary user).
/// Afterwards no capability is left in the new namespace either. Returns 0, or a negative errno
/// with `step` naming what failed.
/// With `new_pid_namespace`, the next child of the caller is the first process (pid 1) of a
/// PID namespace of its own: it sees no process outside, and when it exits every process in
/// the namespace is killed.
int pv_enter_empty_root(const char *const *paths, const int *writable, size_t count, int new_pid_namespace, char *step,
                        size_t step_length);

/// setgroups([]), setgid, setuid, and a check that they cannot be undone. 0 or -1 with errno.
int pv_drop_privileges(uid_t uid, gid_t gid);

/// Sets PR_SET_PDEATHSIG to SIGKILL again (a credential change clears it) and checks that the
/// parent is still `parent`. 0, or -1 when the parent is gone or prctl failed.
int pv_rearm_parent_death_signal(pid_t parent);

/// PR_SET_NO_NEW_PRIVS. 0 or -1 with errno.
int pv_set_no_new_privileges(void);

/// Closes every descriptor from `first` up. 0 or -1 with errno.
int pv_close_from(int first);

/// Test-only drill: attempts one forbidden operation, chosen by `which`, with harmless fixed
/// arguments. Under the filter the process dies of SIGSYS before the call returns.
/// 0 socket, 1 connect, 2 execve, 3 fork, 4 clone (a process), 5 openat, 6 ptrace, and what an
/// escaped guest would try next: 7-12 fcntl F_SETOWN (at pid 1), F_SETFL O_ASYNC, F_SETSIG,
/// F_SETOWN_EX, F_SETLEASE, F_NOTIFY; 13 an RWX mapping; 14 mprotect to executable; 15 stat of
/// /etc/shadow; 16 kill(1, 0); 17 open of /proc/self/status. A drill that returns gives
/// the syscall's result (negative: refused).
long pv_sandbox_drill(int which);

#endif
