// Hostile: tries to read outside its granted directory (through "..", an absolute path and a
// symlink it makes), and to write inside it. Answers what each attempt gave:
// {"success":true,"data":{"inside":"<first line of /data/hello.txt or error>",
//   "dotdot":"<errno text>","absolute":"...","symlink":"...","write":"..."}}
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char answer[2048];

static void attempt_read(const char *path, char *out, size_t capacity) {
    FILE *file = fopen(path, "r");
    if (!file) {
        snprintf(out, capacity, "error: %s", strerror(errno));
        return;
    }
    char line[64] = {0};
    if (!fgets(line, sizeof line, file)) line[0] = 0;
    line[strcspn(line, "\n\"\\")] = 0;
    fclose(file);
    snprintf(out, capacity, "read: %s", line);
}

static void attempt_write(const char *path, char *out, size_t capacity) {
    FILE *file = fopen(path, "w");
    if (!file) {
        snprintf(out, capacity, "error: %s", strerror(errno));
        return;
    }
    int ok = fputs("written by a plugin\n", file) >= 0;
    ok = fclose(file) == 0 && ok;
    snprintf(out, capacity, ok ? "written" : "error: %s", strerror(errno));
}

__attribute__((export_name("allocate"))) void *allocate(int32_t size) { return malloc(size > 0 ? (size_t)size : 1); }
__attribute__((export_name("deallocate"))) void deallocate(void *pointer, int32_t size) {
    (void)size;
    if (pointer != answer) free(pointer);
}

__attribute__((export_name("execute"))) uint64_t execute(const char *context, int32_t length) {
    (void)context;
    (void)length;
    char inside[128], dotdot[128], absolute[128], symlinked[128], written[128];
    attempt_read("/data/hello.txt", inside, sizeof inside);
    attempt_read("/data/../../../../etc/passwd", dotdot, sizeof dotdot);
    attempt_read("/etc/passwd", absolute, sizeof absolute);
    unlink("/data/escape");
    if (symlink("/etc/passwd", "/data/escape") == 0 || errno == EEXIST) {
        attempt_read("/data/escape", symlinked, sizeof symlinked);
    } else {
        snprintf(symlinked, sizeof symlinked, "error: symlink: %s", strerror(errno));
    }
    attempt_write("/data/new-file.txt", written, sizeof written);
    int n = snprintf(answer, sizeof answer,
        "{\"success\":true,\"data\":{\"inside\":\"%s\",\"dotdot\":\"%s\",\"absolute\":\"%s\",\"symlink\":\"%s\",\"write\":\"%s\"}}",
        inside, dotdot, absolute, symlinked, written);
    return ((uint64_t)(uintptr_t)answer << 32) | (uint32_t)n;
}
