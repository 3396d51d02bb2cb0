// The floor for plugvisor's benchmark: a bare ping-pong of length-prefixed frames between two
// processes over a socketpair, with the same frame bytes a no-op call carries, and nothing else.
//
//   plugvisor-pingpong ROUNDS REQUEST_BYTES RESPONSE_BYTES [PAIRS]
//
// Prints one line per pair: "p50_us p99_us calls_per_s", all pairs running at once.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int read_full(int fd, uint8_t *buffer, size_t length) {
    size_t done = 0;
    while (done < length) {
        ssize_t n = read(fd, buffer + done, length - done);
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    return 0;
}

static int read_frame(int fd, uint8_t *buffer, size_t capacity) {
    uint8_t header[4];
    if (read_full(fd, header, 4) < 0) return -1;
    size_t length = ((size_t)header[0] << 24) | ((size_t)header[1] << 16) | ((size_t)header[2] << 8) | header[3];
    if (length > capacity) return -1;
    return read_full(fd, buffer, length) < 0 ? -1 : (int)length;
}

static uint8_t *make_frame(size_t body) {
    uint8_t *frame = malloc(body + 4);
    frame[0] = (uint8_t)(body >> 24);
    frame[1] = (uint8_t)(body >> 16);
    frame[2] = (uint8_t)(body >> 8);
    frame[3] = (uint8_t)body;
    memset(frame + 4, 'x', body);
    return frame;
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run_pair(int rounds, size_t request, size_t response, int report) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0) exit(1);
    size_t capacity = (request > response ? request : response) + 16;
    pid_t child = fork();
    if (child == 0) {
        close(fds[0]);
        uint8_t *buffer = malloc(capacity);
        uint8_t *answer = make_frame(response);
        while (read_frame(fds[1], buffer, capacity) >= 0) {
            if (write(fds[1], answer, response + 4) != (ssize_t)(response + 4)) break;
        }
        _exit(0);
    }
    close(fds[1]);
    uint8_t *frame = make_frame(request);
    uint8_t *buffer = malloc(capacity);
    double *samples = malloc(sizeof(double) * (size_t)rounds);
    double started = now_us();
    for (int i = 0; i < rounds; i++) {
        double t0 = now_us();
        if (write(fds[0], frame, request + 4) != (ssize_t)(request + 4)) exit(1);
        if (read_frame(fds[0], buffer, capacity) < 0) exit(1);
        samples[i] = now_us() - t0;
    }
    double elapsed = now_us() - started;
    close(fds[0]);
    waitpid(child, NULL, 0);
    qsort(samples, (size_t)rounds, sizeof(double), compare);
    dprintf(report, "%.2f %.2f %.1f\n", samples[rounds / 2], samples[(rounds * 99) / 100], rounds / (elapsed / 1e6));
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s ROUNDS REQUEST_BYTES RESPONSE_BYTES [PAIRS]\n", argv[0]);
        return 64;
    }
    int rounds = atoi(argv[1]);
    size_t request = (size_t)atol(argv[2]), response = (size_t)atol(argv[3]);
    int pairs = argc > 4 ? atoi(argv[4]) : 1;
    for (int p = 0; p < pairs; p++) {
        if (fork() == 0) {
            run_pair(rounds, request, response, 1);
            _exit(0);
        }
    }
    for (int p = 0; p < pairs; p++) wait(NULL);
    return 0;
}
