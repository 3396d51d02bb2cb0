// hello-c: a plugvisor plugin in C (clang --target=wasm32-wasi, Debian's wasi-libc).
// It reads its "greeting" from the manifest's config, logs a line, and answers
// {"success":true,"data":{"message":"<greeting>, <parameters.name or world>!","context_bytes":N}}.
#define _GNU_SOURCE  // memmem
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Host functions from the `plugvisor` import module (see the README's ABI section).
__attribute__((import_module("plugvisor"), import_name("log")))
void plugvisor_log(int32_t level, const char *message, int32_t length);
__attribute__((import_module("plugvisor"), import_name("config_get")))
int32_t plugvisor_config_get(const char *key, int32_t key_length, char *buffer, int32_t buffer_length);

static uint64_t pack(const char *pointer, size_t length) {
    return ((uint64_t)(uintptr_t)pointer << 32) | (uint32_t)length;
}

__attribute__((export_name("allocate"))) void *allocate(int32_t size) { return malloc(size > 0 ? (size_t)size : 1); }
__attribute__((export_name("deallocate"))) void deallocate(void *pointer, int32_t size) { (void)size; free(pointer); }

__attribute__((export_name("meta"))) uint64_t meta(void) {
    static const char text[] =
        "{\"name\":\"hello-c\",\"version\":\"1.0.0\",\"description\":\"Greets in C\",\"author\":\"plugvisor\"}";
    char *copy = malloc(sizeof text);
    memcpy(copy, text, sizeof text);
    return pack(copy, sizeof text - 1);
}

// Copies the string value of "name" inside "parameters" into out (no unescaping: a demo).
static void find_name(const char *context, int32_t length, char *out, size_t capacity) {
    const char *parameters = memmem(context, (size_t)length, "\"parameters\"", 12);
    const char *key = parameters ? memmem(parameters, (size_t)(context + length - parameters), "\"name\"", 6) : NULL;
    const char *quote = key ? memchr(key + 6, '"', (size_t)(context + length - key - 6)) : NULL;
    const char *end = quote ? memchr(quote + 1, '"', (size_t)(context + length - quote - 1)) : NULL;
    if (!end || (size_t)(end - quote - 1) >= capacity) {
        snprintf(out, capacity, "world");
        return;
    }
    memcpy(out, quote + 1, (size_t)(end - quote - 1));
    out[end - quote - 1] = 0;
}

__attribute__((export_name("execute"))) uint64_t execute(const char *context, int32_t length) {
    char greeting[64];
    int32_t n = plugvisor_config_get("greeting", 8, greeting, sizeof greeting - 1);
    if (n < 0 || n >= (int32_t)sizeof greeting) n = snprintf(greeting, sizeof greeting, "Hello");
    greeting[n] = 0;
    char name[64];
    find_name(context, length, name, sizeof name);
    static const char line[] = "hello-c is greeting someone";
    plugvisor_log(2, line, sizeof line - 1);

    char *answer = malloc(256);
    int written = snprintf(answer, 256,
        "{\"success\":true,\"data\":{\"message\":\"%s, %s!\",\"context_bytes\":%d}}", greeting, name, (int)length);
    return pack(answer, (size_t)written);
}
