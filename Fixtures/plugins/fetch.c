// fetch: GETs the "url" parameter through plugvisor.http_request (the supervisor brokers it
// within the manifest's network.allowed_hosts) and answers {"success":true,"data":<response>}.
#define _GNU_SOURCE  // memmem
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((import_module("plugvisor"), import_name("http_request")))
uint64_t plugvisor_http_request(const char *request, int32_t length);

__attribute__((export_name("allocate"))) void *allocate(int32_t size) { return malloc(size > 0 ? (size_t)size : 1); }
__attribute__((export_name("deallocate"))) void deallocate(void *pointer, int32_t size) { (void)size; free(pointer); }

__attribute__((export_name("execute"))) uint64_t execute(const char *context, int32_t length) {
    const char *key = memmem(context, (size_t)length, "\"url\":\"", 7);
    const char *start = key ? key + 7 : NULL;
    const char *end = start ? memchr(start, '"', (size_t)(context + length - start)) : NULL;
    if (!end) {
        static const char missing[] = "{\"success\":false,\"error\":\"pass -p url=...\"}";
        char *copy = malloc(sizeof missing);
        memcpy(copy, missing, sizeof missing);
        return ((uint64_t)(uintptr_t)copy << 32) | (sizeof missing - 1);
    }
    char request[1024];
    int n = snprintf(request, sizeof request, "{\"method\":\"GET\",\"url\":\"%.*s\"}", (int)(end - start), start);
    uint64_t packed = plugvisor_http_request(request, n);
    const char *response = (const char *)(uintptr_t)(packed >> 32);
    uint32_t response_length = (uint32_t)packed;

    size_t capacity = response_length + 64;
    char *answer = malloc(capacity);
    int written = snprintf(answer, capacity, "{\"success\":true,\"data\":%.*s}", (int)response_length, response);
    free((void *)response);
    return ((uint64_t)(uintptr_t)answer << 32) | (uint32_t)written;
}
