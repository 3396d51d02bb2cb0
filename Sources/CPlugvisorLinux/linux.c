#include "CPlugvisorLinux.h"

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

// Moves fd above the target range so that one dup2 in the child cannot clobber the source of
// another (e.g. a channel that already sits at fd 4).
static int lift(int fd) { return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 10); }

int pv_spawn(const char *path, char *const argv[], char *const envp[], int stdin_fd, int stdout_fd,
             int stderr_fd, int channel_fd, int module_fd, pid_t *pid_out) {
    int sources[5] = {stdin_fd, stdout_fd, stderr_fd, channel_fd, module_fd};
    int lifted[5] = {-1, -1, -1, -1, -1};
    int err = 0;
    for (int i = 0; i < 5; i++) {
        if (sources[i] < 0) continue;
        lifted[i] = lift(sources[i]);
        if (lifted[i] < 0) { err = errno; goto out; }
    }

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    if ((err = posix_spawn_file_actions_init(&actions))) goto out;
    if ((err = posix_spawnattr_init(&attr))) { posix_spawn_file_actions_destroy(&actions); goto out; }

    for (int target = 0; target < 5; target++) {
        if (lifted[target] >= 0 && !err) err = posix_spawn_file_actions_adddup2(&actions, lifted[target], target);
    }
    if (!err) err = posix_spawn_file_actions_addclosefrom_np(&actions, module_fd >= 0 ? 5 : 4);

    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigfillset(&defaults);
    if (!err) err = posix_spawnattr_setsigmask(&attr, &empty);
    if (!err) err = posix_spawnattr_setsigdefault(&attr, &defaults);
    if (!err) err = posix_spawnattr_setpgroup(&attr, 0);
    if (!err) err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                                        POSIX_SPAWN_SETPGROUP);
    if (!err) err = posix_spawn(pid_out, path, &actions, &attr, argv, envp);

    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
out:
    for (int i = 0; i < 5; i++) {
        if (lifted[i] >= 0) close(lifted[i]);
    }
    return err;
}

int pv_socketpair(int fds[2]) { return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds); }
int pv_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int pv_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
int pv_pidfd_send_signal(int pidfd, int sig) { return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0); }

int pv_waitid_pidfd(int pidfd, int options, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int rc;
    do {
        rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, options);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) return -1;
    if (info.si_pid == 0) return 1;
    *code = info.si_code;
    *status = info.si_status;
    return 0;
}
int pv_wexited(void) { return WEXITED; }
int pv_wnohang(void) { return WNOHANG; }
int pv_cld_exited(void) { return CLD_EXITED; }

int pv_sealed_memfd(const char *name, const void *bytes, size_t length) {
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    const char *p = bytes;
    size_t left = length;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0 ||
        lseek(fd, 0, SEEK_SET) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int pv_peer_uid(int fd, uid_t *uid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -1;
    *uid = cred.uid;
    return 0;
}

static int unix_address(const char *path, struct sockaddr_un *addr) {
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(addr->sun_path, path);
    return 0;
}

int pv_listen_unix(const char *path, int backlog) {
    struct sockaddr_un addr;
    if (unix_address(path, &addr) < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, backlog) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int pv_connect_unix(const char *path) {
    struct sockaddr_un addr;
    if (unix_address(path, &addr) < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int pv_accept(int listen_fd) {
    int fd;
    do {
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

int pv_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }

int pv_inotify_init(void) { return inotify_init1(IN_CLOEXEC | IN_NONBLOCK); }

int pv_inotify_watch_directory(int fd, const char *path) {
    return inotify_add_watch(fd, path, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MODIFY | IN_ONLYDIR);
}

int pv_inotify_remove_watch(int fd, int watch) { return inotify_rm_watch(fd, watch); }

int pv_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int pv_set_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }
