// Small C shims for what Swift cannot express directly on Linux: posix_spawn with fd 3/4 wiring,
// pidfds, memfd sealing, SO_PEERCRED, Unix socket addresses, prctl. Compiled with _GNU_SOURCE,
// kept apart from the libseccomp module map (the two clash over glibc headers).
#ifndef CPLUGVISOR_LINUX_H
#define CPLUGVISOR_LINUX_H

#include <sys/types.h>
#include <stdint.h>

/// Spawns `path` in its own process group with fd 0 = stdin_fd, 1 = stdout_fd, 2 = stderr_fd,
/// 3 = channel_fd and 4 = module_fd (or nothing when module_fd < 0); every other fd is closed.
/// Returns 0 and stores the pid, or an errno value.
int pv_spawn(const char *path, char *const argv[], char *const envp[], int stdin_fd, int stdout_fd,
             int stderr_fd, int channel_fd, int module_fd, pid_t *pid_out);

/// A connected AF_UNIX stream pair, both ends close-on-exec. Returns 0 or -1 with errno.
int pv_socketpair(int fds[2]);
/// A pipe, both ends close-on-exec. Returns 0 or -1 with errno.
int pv_pipe(int fds[2]);

int pv_pidfd_open(pid_t pid);
int pv_pidfd_send_signal(int pidfd, int sig);

/// waitid(P_PIDFD). `options` is WEXITED plus optionally WNOHANG. Returns 0 when a status was
/// collected (code is CLD_EXITED/CLD_KILLED/CLD_DUMPED, status the exit code or signal), 1 when
/// WNOHANG found nothing yet, -1 with errno on failure.
int pv_waitid_pidfd(int pidfd, int options, int *code, int *status);
int pv_wexited(void);
int pv_wnohang(void);
int pv_cld_exited(void);

/// An anonymous memory file holding `length` bytes of `bytes`, sealed against any change.
/// Returns the fd (close-on-exec) or -1 with errno.
int pv_sealed_memfd(const char *name, const void *bytes, size_t length);

/// An anonymous, writable memory file (close-on-exec). Returns the fd or -1 with errno.
int pv_memfd(const char *name);

/// The uid of the process at the other end of a Unix socket. Returns 0 or -1 with errno.
int pv_peer_uid(int fd, uid_t *uid);

/// A listening Unix stream socket at `path` (close-on-exec). Returns the fd or -1 with errno
/// (ENAMETOOLONG when the path does not fit sockaddr_un).
int pv_listen_unix(const char *path, int backlog);
/// A connected Unix stream socket to `path`. Returns the fd or -1 with errno.
int pv_connect_unix(const char *path);
/// accept4 with SOCK_CLOEXEC. Returns the fd or -1 with errno.
int pv_accept(int listen_fd);

/// PR_SET_PDEATHSIG: the kernel sends `sig` to this process when its parent thread dies.
int pv_set_parent_death_signal(int sig);

/// An inotify instance (close-on-exec, non-blocking). Returns the fd or -1 with errno.
int pv_inotify_init(void);
/// Watches a directory for files written (closed after writing), moved in, created or deleted.
/// Returns the watch descriptor or -1 with errno.
int pv_inotify_watch_directory(int fd, const char *path);
int pv_inotify_remove_watch(int fd, int watch);

/// Fixes malloc's mmap threshold (M_MMAP_THRESHOLD): blocks of `bytes` or more get mappings of
/// their own, unmapped when freed. Returns 1 on success, 0 on failure.
int pv_set_mmap_threshold(int bytes);

#endif
