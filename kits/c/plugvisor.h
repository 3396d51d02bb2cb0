/*
 * plugvisor.h — write a plugvisor plugin in C (clang --target=wasm32-wasi, wasi-libc).
 *
 * In exactly one file, define PLUGVISOR_IMPLEMENTATION before including this header; it then
 * provides the `allocate`, `deallocate` and `execute` exports. You write one function:
 *
 *     #define PLUGVISOR_IMPLEMENTATION
 *     #include "plugvisor.h"
 *
 *     int plugvisor_handle(const pv_context *context, pv_result *result) {
 *         char name[64];
 *         if (!pv_param(context, "name", name, sizeof name)) snprintf(name, sizeof name, "world");
 *         pv_result_printf(result, "{\"greeting\":");                    // the "data" JSON
 *         pv_result_string(result, name);                                  // escaped for JSON
 *         pv_result_printf(result, "}");
 *         return 1;                                                        // success
 *     }
 *
 * Return 1 for {"success":true,"data":...}, 0 for {"success":false,"error":...} (set the error
 * with pv_result_error). Build: see scripts/build-fixtures.sh (crt1-reactor.o, --no-entry).
 */
#ifndef PLUGVISOR_H
#define PLUGVISOR_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The plugin context as the host sent it: {"request_id", "headers", "parameters"}. */
typedef struct {
    const char *json;
    size_t length;
} pv_context;

/* What the plugin answers: "data" JSON text, or an error message. */
typedef struct {
    char *data;
    size_t length;
    size_t capacity;
    char error[256];
} pv_result;

enum { PV_TRACE = 0, PV_DEBUG = 1, PV_INFO = 2, PV_NOTICE = 3, PV_WARNING = 4, PV_ERROR = 5 };

/* The host functions (plugvisor module). */
__attribute__((import_module("plugvisor"), import_name("log")))
void plugvisor_log(int32_t level, const char *message, int32_t length);
__attribute__((import_module("plugvisor"), import_name("config_get")))
int32_t plugvisor_config_get(const char *key, int32_t key_length, char *buffer, int32_t buffer_length);
__attribute__((import_module("plugvisor"), import_name("http_request")))
uint64_t plugvisor_http_request(const char *request, int32_t length);

/* You write this. */
int plugvisor_handle(const pv_context *context, pv_result *result);

/* Copies the string value of `parameters.<key>` (or `headers.<key>` with pv_header) into
 * `out`, unescaping \" and \\; returns its length, or 0 when absent. */
size_t pv_param(const pv_context *context, const char *key, char *out, size_t capacity);
size_t pv_header(const pv_context *context, const char *key, char *out, size_t capacity);
/* The request id, like pv_param. */
size_t pv_request_id(const pv_context *context, char *out, size_t capacity);
/* A `config` value from the manifest; returns its length, or -1 when the key is absent. */
int32_t pv_config(const char *key, char *out, size_t capacity);
/* A log line with the plugin's name, printf-style (at most 4 KiB). */
void pv_log(int level, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* Appends to the result's "data" JSON, printf-style. */
void pv_result_printf(pv_result *result, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* Appends `text` to the result's "data" JSON as a JSON string (quoted and escaped). */
void pv_result_string(pv_result *result, const char *text);
/* Sets the error message of a failed result. */
void pv_result_error(pv_result *result, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* GETs `url` through the supervisor (only hosts in the manifest's network.allowed_hosts).
 * Returns the answer JSON {"status","headers","body"} or {"error"}; free() it. */
char *pv_http_get(const char *url);

#ifdef PLUGVISOR_IMPLEMENTATION

__attribute__((export_name("allocate"))) void *allocate(int32_t size) { return malloc(size > 0 ? (size_t)size : 1); }
__attribute__((export_name("deallocate"))) void deallocate(void *pointer, int32_t size) { (void)size; free(pointer); }

static uint64_t pv_pack(const char *pointer, size_t length) {
    return ((uint64_t)(uintptr_t)pointer << 32) | (uint32_t)length;
}

/* Finds `"key":` at depth 1 of the object starting at `object`; returns the value's start. */
static const char *pv_member(const char *object, const char *end, const char *key) {
    size_t key_length = strlen(key);
    int depth = 0, in_string = 0;
    for (const char *p = object; p < end; p++) {
        if (in_string) {
            if (*p == '\\') p++;
            else if (*p == '"') in_string = 0;
            continue;
        }
        if (*p == '{' || *p == '[') depth++;
        else if (*p == '}' || *p == ']') depth--;
        else if (*p == '"') {
            if (depth == 1 && (size_t)(end - p) > key_length + 2 && strncmp(p + 1, key, key_length) == 0 &&
                p[key_length + 1] == '"') {
                const char *q = p + key_length + 2;
                while (q < end && (*q == ' ' || *q == ':')) q++;
                return q;
            }
            in_string = 1;
        }
    }
    return NULL;
}

static size_t pv_string_at(const char *value, const char *end, char *out, size_t capacity) {
    if (!value || value >= end || *value != '"' || capacity == 0) return 0;
    size_t n = 0;
    for (const char *p = value + 1; p < end && *p != '"' && n + 1 < capacity; p++) {
        if (*p == '\\' && p + 1 < end) p++;
        out[n++] = *p;
    }
    out[n] = 0;
    return n;
}

static size_t pv_nested(const pv_context *context, const char *section, const char *key, char *out, size_t capacity) {
    const char *end = context->json + context->length;
    const char *object = pv_member(context->json, end, section);
    if (!object || *object != '{') return 0;
    return pv_string_at(pv_member(object, end, key), end, out, capacity);
}

size_t pv_param(const pv_context *context, const char *key, char *out, size_t capacity) {
    return pv_nested(context, "parameters", key, out, capacity);
}

size_t pv_header(const pv_context *context, const char *key, char *out, size_t capacity) {
    return pv_nested(context, "headers", key, out, capacity);
}

size_t pv_request_id(const pv_context *context, char *out, size_t capacity) {
    const char *end = context->json + context->length;
    return pv_string_at(pv_member(context->json, end, "request_id"), end, out, capacity);
}

int32_t pv_config(const char *key, char *out, size_t capacity) {
    int32_t length = plugvisor_config_get(key, (int32_t)strlen(key), out, capacity > 0 ? (int32_t)capacity - 1 : 0);
    if (length >= 0 && capacity > 0) out[(size_t)length < capacity - 1 ? (size_t)length : capacity - 1] = 0;
    return length;
}

void pv_log(int level, const char *format, ...) {
    char line[4096];
    va_list arguments;
    va_start(arguments, format);
    int n = vsnprintf(line, sizeof line, format, arguments);
    va_end(arguments);
    if (n < 0) return;
    plugvisor_log(level, line, n < (int)sizeof line ? n : (int)sizeof line - 1);
}

void pv_result_printf(pv_result *result, const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    int n = vsnprintf(NULL, 0, format, arguments);
    va_end(arguments);
    if (n < 0) return;
    if (result->length + (size_t)n + 1 > result->capacity) {
        size_t capacity = (result->length + (size_t)n + 1) * 2;
        char *grown = realloc(result->data, capacity);
        if (!grown) return;
        result->data = grown;
        result->capacity = capacity;
    }
    va_start(arguments, format);
    vsnprintf(result->data + result->length, (size_t)n + 1, format, arguments);
    va_end(arguments);
    result->length += (size_t)n;
}

void pv_result_string(pv_result *result, const char *text) {
    pv_result_printf(result, "\"");
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\') pv_result_printf(result, "\\%c", *p);
        else if (*p < 0x20) pv_result_printf(result, "\\u%04x", *p);
        else pv_result_printf(result, "%c", *p);
    }
    pv_result_printf(result, "\"");
}

void pv_result_error(pv_result *result, const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(result->error, sizeof result->error, format, arguments);
    va_end(arguments);
}

char *pv_http_get(const char *url) {
    size_t capacity = strlen(url) + 64;
    char *request = malloc(capacity);
    int n = snprintf(request, capacity, "{\"method\":\"GET\",\"url\":\"%s\"}", url);
    uint64_t packed = plugvisor_http_request(request, n);
    free(request);
    char *answer = (char *)(uintptr_t)(packed >> 32);
    size_t length = (uint32_t)packed;
    char *copy = malloc(length + 1);
    memcpy(copy, answer, length);
    copy[length] = 0;
    free(answer);
    return copy;
}

__attribute__((export_name("execute"))) uint64_t execute(const char *json, int32_t length) {
    pv_context context = {json, (size_t)length};
    pv_result result = {0};
    int ok = plugvisor_handle(&context, &result);
    size_t capacity = result.length + sizeof result.error * 2 + 64;
    char *answer = malloc(capacity);
    int n;
    if (ok) {
        n = snprintf(answer, capacity, "{\"success\":true,\"data\":%s}", result.length ? result.data : "null");
    } else {
        /* The error message is escaped for JSON. */
        char escaped[sizeof result.error * 2];
        size_t e = 0;
        for (const char *p = result.error; *p && e + 2 < sizeof escaped; p++) {
            if (*p == '"' || *p == '\\') escaped[e++] = '\\';
            escaped[e++] = (*p == '\n') ? ' ' : *p;
        }
        escaped[e] = 0;
        n = snprintf(answer, capacity, "{\"success\":false,\"error\":\"%s\"}", e ? escaped : "failed");
    }
    free(result.data);
    return pv_pack(answer, (size_t)n);
}

#endif /* PLUGVISOR_IMPLEMENTATION */
#endif /* PLUGVISOR_H */
