// _GNU_SOURCE only inside this file (O_PATH, setresuid): the public header stays clean.
#define _GNU_SOURCE
#include "CPlugvisorSandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <netinet/in.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int pv_syscall_number(const char *name) {
    int number = seccomp_syscall_resolve_name(name);
    return number == __NR_SCMP_ERROR ? -1 : number;
}

#define PV_MAX_SYSCALL 512
static char syscall_names[PV_MAX_SYSCALL][32];

void pv_prepare_syscall_names(void) {
    for (int i = 0; i < PV_MAX_SYSCALL; i++) {
        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, i);
        if (name) {
            snprintf(syscall_names[i], sizeof syscall_names[i], "%s", name);
            free(name);
        }
    }
}

static size_t append(char *buffer, size_t at, size_t capacity, const char *text) {
    while (*text && at + 1 < capacity) buffer[at++] = *text++;
    buffer[at] = 0;
    return at;
}

static size_t append_number(char *buffer, size_t at, size_t capacity, long value) {
    char digits[24];
    int n = 0;
    unsigned long v = value < 0 ? (unsigned long)-value : (unsigned long)value;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v && n < 23);
    if (value < 0 && at + 1 < capacity) buffer[at++] = '-';
    while (n > 0 && at + 1 < capacity) buffer[at++] = digits[--n];
    buffer[at] = 0;
    return at;
}

// Async-signal-safe: no allocation, no stdio; only write, sigaction, sigprocmask and raise.
static void report_sigsys(int signal, siginfo_t *info, void *context) {
    (void)context;
    char line[128];
    size_t at = append(line, 0, sizeof line, "plugvisor-worker: seccomp refused syscall ");
    at = append_number(line, at, sizeof line, info->si_syscall);
    if (info->si_syscall >= 0 && info->si_syscall < PV_MAX_SYSCALL && syscall_names[info->si_syscall][0]) {
        at = append(line, at, sizeof line, " (");
        at = append(line, at, sizeof line, syscall_names[info->si_syscall]);
        at = append(line, at, sizeof line, ")");
    }
    at = append(line, at, sizeof line, "\n");
    ssize_t ignored = write(2, line, at);
    (void)ignored;
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigaction(signal, &fallback, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signal);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(signal);
    _exit(128 + signal);
}

int pv_install_sigsys_reporter(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = report_sigsys;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    return sigaction(SIGSYS, &action, NULL);
}

int pv_seccomp_install(const pv_seccomp_rule *rules, size_t count, char *error, size_t error_length) {
    return pv_seccomp_install_mode(rules, count, 0, error, error_length);
}

int pv_seccomp_install_mode(const pv_seccomp_rule *rules, size_t count, int deny_listed, char *error,
                            size_t error_length) {
    // An allowlist traps by default; a denylist allows by default and traps what is listed.
    // Either way a foreign architecture's syscalls kill the process (libseccomp's bad-arch action).
    uint32_t listed = deny_listed ? SCMP_ACT_TRAP : SCMP_ACT_ALLOW;
    scmp_filter_ctx ctx = seccomp_init(deny_listed ? SCMP_ACT_ALLOW : SCMP_ACT_TRAP);
    if (!ctx) {
        snprintf(error, error_length, "seccomp_init failed");
        return -ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        if (rules[i].arg_index < 0) {
            rc = seccomp_rule_add(ctx, listed, rules[i].number, 0);
        } else {
            rc = seccomp_rule_add(ctx, listed, rules[i].number, 1,
                                  SCMP_CMP64((unsigned)rules[i].arg_index, SCMP_CMP_EQ, rules[i].arg_value, 0));
        }
        if (rc) snprintf(error, error_length, "cannot add a rule for syscall %d: %s", rules[i].number, strerror(-rc));
    }
    if (rc == 0) {
        rc = seccomp_load(ctx);
        if (rc) snprintf(error, error_length, "seccomp_load: %s", strerror(-rc));
    }
    seccomp_release(ctx);
    return rc;
}

int pv_landlock_abi(void) {
    long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : (int)abi;
}

int pv_landlock_restrict(const char *const *paths, const int *writable, size_t count) {
    return pv_landlock_restrict_paths(paths, writable, count, 1);
}

int pv_landlock_restrict_paths(const char *const *paths, const int *writable, size_t count, int restrict_network) {
    int abi = pv_landlock_abi();
    if (abi <= 0) return -EOPNOTSUPP;
    uint64_t read_rights = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
    uint64_t all = (1ULL << 13) - 1;  // ABI 1: execute .. make_sym
    if (abi >= 2) all |= 1ULL << 13;  // refer
    if (abi >= 3) all |= 1ULL << 14;  // truncate
    if (abi >= 5) all |= 1ULL << 15;  // ioctl on devices
    struct landlock_ruleset_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.handled_access_fs = all;
    size_t attr_size = offsetof(struct landlock_ruleset_attr, handled_access_fs) + sizeof attr.handled_access_fs;
#ifdef LANDLOCK_ACCESS_NET_CONNECT_TCP
    if (abi >= 4 && restrict_network) {
        attr.handled_access_net = LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
        attr_size = offsetof(struct landlock_ruleset_attr, handled_access_net) + sizeof attr.handled_access_net;
    }
#endif
    int ruleset = (int)syscall(__NR_landlock_create_ruleset, &attr, attr_size, 0);
    if (ruleset < 0) return -errno;
    for (size_t i = 0; i < count; i++) {
        struct landlock_path_beneath_attr beneath;
        memset(&beneath, 0, sizeof beneath);
        beneath.parent_fd = open(paths[i], O_PATH | O_CLOEXEC);
        if (beneath.parent_fd < 0) {
            int saved = errno;
            close(ruleset);
            return -saved;
        }
        beneath.allowed_access = writable[i] ? all & ~LANDLOCK_ACCESS_FS_EXECUTE : read_rights;
        long rc = syscall(__NR_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0);
        int saved = errno;
        close(beneath.parent_fd);
        if (rc < 0) {
            close(ruleset);
            return -saved;
        }
    }
    long rc = syscall(__NR_landlock_restrict_self, ruleset, 0);
    int saved = errno;
    close(ruleset);
    return rc < 0 ? -saved : 0;
}

int pv_set_rlimit(int resource, uint64_t value) {
    struct rlimit limit = {.rlim_cur = value, .rlim_max = value};
    return setrlimit(resource, &limit);
}
int pv_rlimit_as(void) { return RLIMIT_AS; }
int pv_rlimit_data(void) { return RLIMIT_DATA; }
int pv_rlimit_nofile(void) { return RLIMIT_NOFILE; }
int pv_rlimit_core(void) { return RLIMIT_CORE; }
int pv_rlimit_cpu(void) { return RLIMIT_CPU; }
int pv_rlimit_fsize(void) { return RLIMIT_FSIZE; }

int pv_drop_privileges(uid_t uid, gid_t gid) {
    if (setgroups(0, NULL) < 0) return -1;
    if (setresgid(gid, gid, gid) < 0) return -1;
    if (setresuid(uid, uid, uid) < 0) return -1;
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

int pv_rearm_parent_death_signal(pid_t parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) return -1;
    if (getppid() != parent) {
        errno = ESRCH;
        return -1;
    }
    return 0;
}

int pv_set_no_new_privileges(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }

int pv_close_from(int first) {
    long rc = syscall(__NR_close_range, (unsigned)first, ~0U, 0);
    if (rc == 0) return 0;
    for (int fd = first; fd < 65536; fd++) close(fd);
    return 0;
}

long pv_sandbox_drill(int which) {
    switch (which) {
    case 0: return syscall(__NR_socket, AF_INET, SOCK_STREAM, 0);
    case 1: {
        struct sockaddr_in address;
        memset(&address, 0, sizeof address);
        address.sin_family = AF_INET;
        address.sin_port = htons(9);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return syscall(__NR_connect, 3, &address, sizeof address);
    }
    case 2: {
        char *const argv[] = {"/nonexistent/plugvisor-drill", NULL};
        return syscall(__NR_execve, argv[0], argv, NULL);
    }
    case 3: {
        long pid = syscall(__NR_fork);
        if (pid == 0) _exit(0);
        return pid;
    }
    case 4: {
        long pid = syscall(__NR_clone, SIGCHLD, 0, NULL, NULL, 0);
        if (pid == 0) _exit(0);
        return pid;
    }
    case 5: return syscall(__NR_openat, AT_FDCWD, "/etc/passwd", O_RDONLY | O_CLOEXEC);
    case 6: return syscall(__NR_ptrace, PTRACE_TRACEME, 0, NULL, NULL);
    default: errno = EINVAL; return -1;
    }
}
