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
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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
    // A binary tree of syscall numbers rather than a list: every system call a worker makes (a
    // few per plugin call) walks the filter, and a list costs a comparison per listed syscall.
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (rc) snprintf(error, error_length, "cannot ask libseccomp for a binary tree: %s", strerror(-rc));
    for (size_t i = 0; i < count && rc == 0; i++) {
        struct scmp_arg_cmp compare[2];
        unsigned used = 0;
        for (int c = 0; c < 2; c++) {
            const pv_seccomp_condition *condition = &rules[i].conditions[c];
            if (condition->arg_index < 0) continue;
            // Equality is a masked comparison with every bit (libseccomp compares 64 bits).
            compare[used].arg = (unsigned)condition->arg_index;
            compare[used].op = SCMP_CMP_MASKED_EQ;
            compare[used].datum_a = condition->mask;
            compare[used].datum_b = condition->value;
            used++;
        }
        rc = seccomp_rule_add_array(ctx, listed, rules[i].number, used, compare);
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
    // The kernel's struct as of ABI 6, spelled out: Debian 12's headers predate its fields.
    struct {
        uint64_t handled_access_fs;
        uint64_t handled_access_net;
        uint64_t scoped;
    } attr;
    memset(&attr, 0, sizeof attr);
    attr.handled_access_fs = all;
    size_t attr_size = sizeof attr.handled_access_fs;
    if (abi >= 4 && restrict_network) {
        attr.handled_access_net = 1ULL << 0 | 1ULL << 1;  // bind and connect TCP
        attr_size = 2 * sizeof(uint64_t);
    }
    if (abi >= 6) {
        // No signals to processes outside this domain (the supervisor, other workers), and no
        // connecting to abstract Unix sockets created outside it.
        attr.scoped = 1ULL << 0 | 1ULL << 1;  // LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | _SIGNAL
        attr_size = sizeof attr;
    }
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
        if (writable[i] & PV_GRANT_WRITE)
            beneath.allowed_access = all & ~LANDLOCK_ACCESS_FS_EXECUTE;
        else if (writable[i] & PV_GRANT_LIST_ONLY)
            beneath.allowed_access = LANDLOCK_ACCESS_FS_READ_DIR;
        else
            beneath.allowed_access = read_rights | (writable[i] & PV_GRANT_EXECUTE ? LANDLOCK_ACCESS_FS_EXECUTE : 0);
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

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t length = strlen(text);
    ssize_t written = write(fd, text, length);
    int saved = errno;
    close(fd);
    if (written != (ssize_t)length) {
        errno = written < 0 ? saved : EIO;
        return -1;
    }
    return 0;
}

// Creates every directory of `path` (absolute) below the current directory.
static int make_directories(const char *path) {
    char partial[4096];
    size_t length = strlen(path);
    if (length + 2 > sizeof partial) {
        errno = ENAMETOOLONG;
        return -1;
    }
    size_t at = 0;
    partial[at++] = '.';
    for (size_t i = 0; i <= length; i++) {
        if ((path[i] == '/' || path[i] == 0) && at > 1 && partial[at - 1] != '/') {
            partial[at] = 0;
            if (mkdir(partial, 0755) < 0 && errno != EEXIST) return -1;
        }
        if (path[i]) partial[at++] = path[i];
    }
    return 0;
}

static unsigned long locked_flags(const char *path) {
    // Remounting a bind mount inside a user namespace must keep the flags its source has
    // (the kernel locks them); read them rather than guess.
    struct statvfs info;
    unsigned long flags = 0;
    if (statvfs(path, &info) == 0) {
        if (info.f_flag & ST_NOSUID) flags |= MS_NOSUID;
        if (info.f_flag & ST_NODEV) flags |= MS_NODEV;
        if (info.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
        if (info.f_flag & ST_RDONLY) flags |= MS_RDONLY;
        if (info.f_flag & ST_NOATIME) flags |= MS_NOATIME;
        if (info.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
        if (info.f_flag & ST_RELATIME) flags |= MS_RELATIME;
    }
    return flags;
}

#define PV_STEP(name) do { snprintf(step, step_length, "%s", name); goto fail; } while (0)

int pv_enter_empty_root(const char *const *paths, const int *writable, size_t count, int new_pid_namespace, char *step,
                        size_t step_length) {
    enum { max_paths = 64 };
    int sources[max_paths];
    size_t opened = 0;
    char buffer[4200];
    int saved = 0;
    if (count > max_paths) {
        errno = E2BIG;
        PV_STEP("too many granted directories");
    }
    uid_t uid = geteuid();
    gid_t gid = getegid();
    int namespaces = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
    if (new_pid_namespace) namespaces |= CLONE_NEWPID;
    if (unshare(namespaces) < 0) PV_STEP("unshare");
    // The credential change made the process undumpable, which gives /proc/self to root:
    // dumpable again for the three writes that map our own ids, undumpable after.
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) PV_STEP("PR_SET_DUMPABLE");
    if (write_file("/proc/self/setgroups", "deny") < 0) PV_STEP("write /proc/self/setgroups");
    snprintf(buffer, sizeof buffer, "%u %u 1", (unsigned)uid, (unsigned)uid);
    if (write_file("/proc/self/uid_map", buffer) < 0) PV_STEP("write /proc/self/uid_map");
    snprintf(buffer, sizeof buffer, "%u %u 1", (unsigned)gid, (unsigned)gid);
    if (write_file("/proc/self/gid_map", buffer) < 0) PV_STEP("write /proc/self/gid_map");
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) PV_STEP("PR_SET_DUMPABLE");
    // The granted directories, held open (opened in the new mount namespace: a bind mount's
    // source must be in the caller's): the tmpfs below may cover where they are.
    for (; opened < count; opened++) {
        sources[opened] = open(paths[opened], O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (sources[opened] < 0) {
            snprintf(step, step_length, "open %s", paths[opened]);
            goto fail;
        }
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) PV_STEP("make / private");
    // The new root is a small tmpfs mounted over /tmp in this namespace only (bubblewrap's
    // choice: /tmp exists everywhere); it holds nothing but the granted directories.
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,nr_inodes=1024,mode=0755") < 0)
        PV_STEP("mount tmpfs");
    if (chdir("/tmp") < 0) PV_STEP("chdir to the new root");
    for (size_t i = 0; i < count; i++) {
        if (make_directories(paths[i]) < 0) {
            snprintf(step, step_length, "mkdir %s in the new root", paths[i]);
            goto fail;
        }
        // A folder that holds other grants, to be listed, not bound: what is not granted in it
        // does not exist here.
        if (writable[i] & PV_GRANT_LIST_ONLY) continue;
        char source[64];
        snprintf(source, sizeof source, "/proc/self/fd/%d", sources[i]);
        snprintf(buffer, sizeof buffer, ".%s", paths[i]);
        if (mount(source, buffer, NULL, MS_BIND | MS_REC, NULL) < 0) {
            snprintf(step, step_length, "bind %s", paths[i]);
            goto fail;
        }
        int writable_here = writable[i] & PV_GRANT_WRITE;
        unsigned long flags = locked_flags(buffer) | MS_NOSUID | MS_NODEV | (writable_here ? 0 : MS_RDONLY);
        if (mount(NULL, buffer, NULL, MS_REMOUNT | MS_BIND | flags, NULL) < 0) {
            snprintf(step, step_length, "remount %s%s", paths[i], writable_here ? "" : " read-only");
            goto fail;
        }
    }
    // pivot_root(".", "."): the old root ends up on top of the new one, then goes.
    if (syscall(SYS_pivot_root, ".", ".") < 0) PV_STEP("pivot_root");
    if (umount2(".", MNT_DETACH) < 0) PV_STEP("detach the old root");
    if (chdir("/") < 0) PV_STEP("chdir /");
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        PV_STEP("remount the new root read-only");
    (void)sethostname("plugvisor", 9);
    // Unsharing the user namespace gave this process every capability inside it: drop them all.
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) < 0) PV_STEP("drop capabilities");
    for (size_t i = 0; i < opened; i++) close(sources[i]);
    return 0;
fail:
    saved = errno;
    for (size_t i = 0; i < opened; i++) close(sources[i]);
    return -saved;
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
int pv_rlimit_nproc(void) { return RLIMIT_NPROC; }

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
    case 7: return syscall(__NR_fcntl, 3, F_SETOWN, 1);
    case 8: return syscall(__NR_fcntl, 3, F_SETFL, O_ASYNC | O_NONBLOCK);
    case 9: return syscall(__NR_fcntl, 3, F_SETSIG, SIGKILL);
    case 10: {
        struct f_owner_ex owner = {.type = F_OWNER_PID, .pid = 1};
        return syscall(__NR_fcntl, 3, F_SETOWN_EX, &owner);
    }
    case 11: return syscall(__NR_fcntl, 3, F_SETLEASE, F_RDLCK);
    case 12: return syscall(__NR_fcntl, 3, F_NOTIFY, DN_MODIFY);
    case 13: {
        long address = syscall(__NR_mmap, NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return address == -1 ? -1 : 0;
    }
    case 14: {
        long address = syscall(__NR_mmap, NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (address == -1) return -1;
        return syscall(__NR_mprotect, address, 4096, PROT_READ | PROT_EXEC);
    }
    case 15: {
        struct stat info;
        return syscall(__NR_newfstatat, AT_FDCWD, "/etc/shadow", &info, 0);
    }
    case 16: return syscall(__NR_kill, 1, 0);
    case 17: return syscall(__NR_openat, AT_FDCWD, "/proc/self/status", O_RDONLY | O_CLOEXEC);
    default: errno = EINVAL; return -1;
    }
}
