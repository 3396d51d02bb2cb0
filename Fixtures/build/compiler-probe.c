// A stand-in for the Swift compiler that tries what a compiler taken over by a hostile source
// would: SwiftSourceTests put it on PATH as a toolchain's swift-frontend and check that only
// its output folder is within reach. The paths and the port are compiled in (-D), as the
// sandbox gives the compiler an environment of plugvisor's choosing.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static void report(const char *what, int ok) {
    if (ok) printf("probe: %s: ok\n", what);
    else printf("probe: %s: refused (%s)\n", what, strerror(errno));
}

static int can_read(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    char byte;
    int ok = read(fd, &byte, 1) >= 0;
    close(fd);
    return ok;
}

static int can_write(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 0;
    int ok = write(fd, "x", 1) == 1;
    close(fd);
    return ok;
}

int main(int argc, char **argv) {
#ifdef PROBE_LINK_TO_SECRET
    // As the linker (it gets --no-entry), leave a link where the module should be, to a file
    // the sandbox cannot reach but the supervisor could; as the compiler, succeed.
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc && strstr(argv[i + 1], "plugin.wasm")) {
            return symlink(PROBE_SECRET, argv[i + 1]) == 0 ? 0 : 1;
        }
    }
    return 0;
#endif
    (void)argc;
    (void)argv;
    // A child that would outlive the step if the step's process group were not killed.
    pid_t child = fork();
    if (child == 0) {
        for (;;) pause();
    }
    printf("probe: child %d\n", (int)child);
    // A fork bomb, stopped at 400: under root the step's uid may hold 256 processes.
    int forks = 0;
    while (forks < 400) {
        pid_t more = fork();
        if (more < 0) break;
        if (more == 0) {
            for (;;) pause();
        }
        forks++;
    }
    printf("probe: forks %d\n", forks);
    report("read a file beside the sources", can_read(PROBE_SECRET));
    report("read the original source", can_read(PROBE_SOURCE));
    report("read /etc/passwd", can_read("/etc/passwd"));
    report("write outside its output folder", can_write(PROBE_OUTSIDE));
    const char *tmp = getenv("TMPDIR");
    char inside[4096];
    snprintf(inside, sizeof inside, "%s/probe", tmp ? tmp : "/nonexistent");
    report("write in its output folder", can_write(inside));
    // A folder with a file in it, closed to everyone: the build folder must still go.
    snprintf(inside, sizeof inside, "%s/trap", tmp ? tmp : "/nonexistent");
    mkdir(inside, 0700);
    snprintf(inside + strlen(inside), sizeof inside - strlen(inside), "/file");
    can_write(inside);
    *strrchr(inside, '/') = 0;
    chmod(inside, 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(PROBE_PORT)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    report("connect to the host's loopback", fd >= 0 && connect(fd, (struct sockaddr *)&address, sizeof address) == 0);
    char *shell[] = {"/bin/sh", "-c", "true", NULL};
    execv("/bin/sh", shell);
    report("run /bin/sh", 0);
    fflush(stdout);
    return 1;
}
