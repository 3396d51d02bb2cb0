// Lists the environment the guest sees: {"success":true,"data":["NAME=value", ...]}.
// Only what the manifest's `env` grants may appear; never the host's environment.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;
static char answer[8192];

__attribute__((export_name("allocate"))) void *allocate(int32_t size) { return malloc(size > 0 ? (size_t)size : 1); }
__attribute__((export_name("deallocate"))) void deallocate(void *pointer, int32_t size) {
    (void)size;
    if (pointer != answer) free(pointer);
}

__attribute__((export_name("execute"))) uint64_t execute(const char *context, int32_t length) {
    (void)context;
    (void)length;
    size_t at = (size_t)snprintf(answer, sizeof answer, "{\"success\":true,\"data\":[");
    for (char **entry = environ; entry && *entry && at < sizeof answer - 64; entry++) {
        at += (size_t)snprintf(answer + at, sizeof answer - at, "%s\"", entry == environ ? "" : ",");
        for (const char *c = *entry; *c && at < sizeof answer - 64; c++) {
            if (*c == '"' || *c == '\\') answer[at++] = '\\';
            answer[at++] = *c;
        }
        answer[at++] = '"';
    }
    at += (size_t)snprintf(answer + at, sizeof answer - at, "]}");
    return ((uint64_t)(uintptr_t)answer << 32) | (uint32_t)at;
}
