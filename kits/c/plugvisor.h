/*
 * plugvisor.h — write a plugvisor plugin in C (clang --target=wasm32-wasi, wasi-libc).
 *
 * In exactly one file, define PLUGVISOR_IMPLEMENTATION before including this header; it then
 * provides the `allocate`, `deallocate` and `execute` exports. You write one function:
 *
 *     #define PLUGVISOR_IMPLEMENTATION
 *     #include "plugvisor.h"
 *
 *     PV_META("greeter", "1.0.0", "Greets parameters.name");          // name, version, description
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
__attribute__((import_module("plugvisor"), import_name("host_call")))
uint64_t plugvisor_host_call(const char *name, int32_t name_length, const void *input, int32_t input_length);

/* You write this. */
int plugvisor_handle(const pv_context *context, pv_result *result);

/* The string value of `parameters.<key>` (or `headers.<key>` with pv_header), decoded into
 * UTF-8 (every JSON escape: \n, \t, \uXXXX, surrogate pairs) and NUL-terminated in `out`.
 * Returns the decoded length; like snprintf's, it is the whole length even when the string does
 * not fit, and then `out` holds only the characters that fit (check `n >= capacity`). Returns 0
 * when the key is absent or not a string: pv_param_type tells which. A malformed string (a bad
 * escape, a lone surrogate) is refused: 0, and a warning in the log naming the key. */
size_t pv_param(const pv_context *context, const char *key, char *out, size_t capacity);
size_t pv_header(const pv_context *context, const char *key, char *out, size_t capacity);

/* The JSON type of `parameters.<key>`, PV_ABSENT when there is no such key. */
enum { PV_ABSENT = 0, PV_NULL, PV_BOOL, PV_NUMBER, PV_STRING, PV_ARRAY, PV_OBJECT };
int pv_param_type(const pv_context *context, const char *key);
/* A number or boolean parameter: returns 1 and sets `*out`, or returns 0 when the key is
 * absent or of another type (pv_param_type tells which) and leaves `*out` alone. */
int pv_param_number(const pv_context *context, const char *key, double *out);
int pv_param_bool(const pv_context *context, const char *key, int *out);

/* Declares the plugin's name, version and description, which the kit answers from the `meta`
 * export (`plugvisor status` shows the version). Once, at file scope:
 *     PV_META("greeter", "1.0.0", "Greets parameters.name") */
#define PV_META(name, version, description) \
    __attribute__((export_name("meta"))) uint64_t pv_meta(void) { return pv_meta_answer(name, version, description); }
uint64_t pv_meta_answer(const char *name, const char *version, const char *description);

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
/* Calls `name`, a host function of the program embedding plugvisor that the manifest grants
 * (host_functions), with `length` bytes of `input`. Returns its answer, NUL-terminated, and sets
 * `*answer_length`; free() it. On failure returns NULL and writes the reason into `error`
 * (NUL-terminated, cut to `error_capacity`). */
char *pv_host_call(const char *name, const void *input, size_t length, size_t *answer_length, char *error,
                   size_t error_capacity);

#ifdef PLUGVISOR_IMPLEMENTATION

__attribute__((export_name("allocate"))) void *allocate(int32_t size) { return malloc(size > 0 ? (size_t)size : 1); }
__attribute__((export_name("deallocate"))) void deallocate(void *pointer, int32_t size) { (void)size; free(pointer); }

static uint64_t pv_pack(const char *pointer, size_t length) {
    return ((uint64_t)(uintptr_t)pointer << 32) | (uint32_t)length;
}

static const char *pv_space(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static int pv_hex4(const char *p, const char *end, uint32_t *value) {
    if (end - p < 4) return 0;
    *value = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (digit < 0) return 0;
        *value = *value << 4 | (uint32_t)digit;
    }
    return 1;
}

/* Decodes the JSON string whose opening quote is at `p` into UTF-8: up to `capacity - 1` bytes
 * and a NUL into `out`, never splitting a character. Returns the whole decoded length and sets
 * `*next` past the closing quote; -1 when the string is malformed (`*next` then says where). */
static long pv_decode(const char *p, const char *end, char *out, size_t capacity, const char **next) {
    size_t length = 0, written = 0;
    int full = capacity == 0;
    for (p++;; ) {
        *next = p;
        if (p >= end || (unsigned char)*p < 0x20) return -1;
        unsigned char unit[4];
        size_t size = 1;
        if (*p == '"') break;
        if (*p != '\\') {
            unsigned char lead = (unsigned char)*p;
            size = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            if ((size_t)(end - p) < size) return -1;
            memcpy(unit, p, size);
            p += size;
        } else {
            char escape = p + 1 < end ? p[1] : 0;
            const char *simple = strchr("\"\\/bfnrt", escape);
            p += 2;
            if (escape && simple) {
                unit[0] = (unsigned char)"\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            } else if (escape == 'u') {
                uint32_t scalar, low;
                if (!pv_hex4(p, end, &scalar)) return -1;
                p += 4;
                if (scalar >= 0xD800 && scalar < 0xDC00) {  /* a high surrogate: its low half must follow */
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !pv_hex4(p + 2, end, &low) || low < 0xDC00 || low >= 0xE000) return -1;
                    p += 6;
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00);
                } else if (scalar >= 0xDC00 && scalar < 0xE000) {
                    return -1;
                }
                if (scalar < 0x80) {
                    unit[0] = (unsigned char)scalar;
                } else if (scalar < 0x800) {
                    size = 2;
                    unit[0] = (unsigned char)(0xC0 | scalar >> 6);
                } else if (scalar < 0x10000) {
                    size = 3;
                    unit[0] = (unsigned char)(0xE0 | scalar >> 12);
                } else {
                    size = 4;
                    unit[0] = (unsigned char)(0xF0 | scalar >> 18);
                }
                for (size_t i = 1; i < size; i++) unit[i] = (unsigned char)(0x80 | (scalar >> (6 * (size - 1 - i)) & 0x3F));
            } else {
                *next = p - 2;
                return -1;
            }
        }
        if (!full && written + size < capacity) {
            memcpy(out + written, unit, size);
            written += size;
        } else {
            full = 1;  /* later, smaller characters must not fill in after a missing one */
        }
        length += size;
    }
    *next = p + 1;
    if (capacity) out[written] = 0;
    return (long)length;
}

/* Past the JSON value at `p` (its strings and brackets matched, not otherwise checked), or NULL. */
static const char *pv_skip(const char *p, const char *end) {
    int depth = 0;
    while (p < end) {
        if (*p == '"') {
            if (pv_decode(p, end, NULL, 0, &p) < 0) return NULL;
            if (depth == 0) return p;
            continue;
        }
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (depth == 0) return p;
            if (--depth == 0) return p + 1;
        } else if (depth == 0 && (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
            return p;
        }
        p++;
    }
    return depth == 0 ? p : NULL;
}

/* The value of the member `key` of the JSON object at `object` (the last one, as JavaScript
 * reads duplicates), or NULL. Keys are compared decoded. */
static const char *pv_member(const char *object, const char *end, const char *key) {
    size_t key_length = strlen(key);
    char name[key_length + 2];
    const char *found = NULL, *p = pv_space(object, end);
    if (p >= end || *p != '{') return NULL;
    p = pv_space(p + 1, end);
    if (p < end && *p == '}') return NULL;
    while (p < end && *p == '"') {
        long length = pv_decode(p, end, name, sizeof name, &p);
        p = pv_space(p, end);
        if (length < 0 || p >= end || *p != ':') return found;
        const char *value = pv_space(p + 1, end);
        if ((size_t)length == key_length && memcmp(name, key, key_length) == 0) found = value;
        p = pv_skip(value, end);
        if (!p) return found;
        p = pv_space(p, end);
        if (p >= end || *p != ',') break;
        p = pv_space(p + 1, end);
    }
    return found;
}

static size_t pv_string_at(const char *value, const char *end, const char *what, const char *key, char *out, size_t capacity) {
    if (capacity) out[0] = 0;
    if (!value || value >= end || *value != '"') return 0;
    const char *stop;
    long length = pv_decode(value, end, out, capacity, &stop);
    if (length < 0) {
        if (capacity) out[0] = 0;
        pv_log(PV_WARNING, "plugvisor.h: %s%s is not a valid JSON string (at byte %ld of it): refused", what, key, (long)(stop - value));
        return 0;
    }
    return (size_t)length;
}

static const char *pv_section_member(const pv_context *context, const char *section, const char *key) {
    const char *end = context->json + context->length;
    const char *object = pv_member(context->json, end, section);
    return object ? pv_member(object, end, key) : NULL;
}

size_t pv_param(const pv_context *context, const char *key, char *out, size_t capacity) {
    return pv_string_at(pv_section_member(context, "parameters", key), context->json + context->length,
                        "parameters.", key, out, capacity);
}

size_t pv_header(const pv_context *context, const char *key, char *out, size_t capacity) {
    return pv_string_at(pv_section_member(context, "headers", key), context->json + context->length,
                        "headers.", key, out, capacity);
}

size_t pv_request_id(const pv_context *context, char *out, size_t capacity) {
    const char *end = context->json + context->length;
    return pv_string_at(pv_member(context->json, end, "request_id"), end, "", "request_id", out, capacity);
}

int pv_param_type(const pv_context *context, const char *key) {
    const char *value = pv_section_member(context, "parameters", key);
    if (!value || value >= context->json + context->length) return PV_ABSENT;
    switch (*value) {
    case 'n': return PV_NULL;
    case 't': case 'f': return PV_BOOL;
    case '"': return PV_STRING;
    case '[': return PV_ARRAY;
    case '{': return PV_OBJECT;
    default: return PV_NUMBER;
    }
}

int pv_param_number(const pv_context *context, const char *key, double *out) {
    const char *end = context->json + context->length;
    const char *value = pv_section_member(context, "parameters", key);
    if (!value || value >= end || !(*value == '-' || (*value >= '0' && *value <= '9'))) return 0;
    const char *stop = pv_skip(value, end);
    if (!stop) return 0;
    size_t length = (size_t)(stop - value);
    char *text = malloc(length + 1);  /* strtod needs a NUL; a number may have hundreds of digits */
    if (!text) return 0;
    memcpy(text, value, length);
    text[length] = 0;
    char *parsed;
    double number = strtod(text, &parsed);
    int whole = parsed == text + length;
    free(text);
    if (whole) *out = number;
    return whole;
}

int pv_param_bool(const pv_context *context, const char *key, int *out) {
    const char *end = context->json + context->length;
    const char *value = pv_section_member(context, "parameters", key);
    const char *stop = value ? pv_skip(value, end) : NULL;
    if (!stop) return 0;
    if (stop - value == 4 && memcmp(value, "true", 4) == 0) *out = 1;
    else if (stop - value == 5 && memcmp(value, "false", 5) == 0) *out = 0;
    else return 0;
    return 1;
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

char *pv_host_call(const char *name, const void *input, size_t length, size_t *answer_length, char *error,
                   size_t error_capacity) {
    uint64_t packed = plugvisor_host_call(name, (int32_t)strlen(name), input, (int32_t)length);
    char *answer = (char *)(uintptr_t)(packed >> 32);
    uint32_t low = (uint32_t)packed;
    size_t count = low & 0x7fffffff;
    if (low >> 31) {
        if (error_capacity > 0) {
            size_t shown = count < error_capacity - 1 ? count : error_capacity - 1;
            memcpy(error, answer, shown);
            error[shown] = 0;
        }
        free(answer);
        return NULL;
    }
    char *copy = malloc(count + 1);
    memcpy(copy, answer, count);
    copy[count] = 0;
    free(answer);
    if (answer_length) *answer_length = count;
    return copy;
}

uint64_t pv_meta_answer(const char *name, const char *version, const char *description) {
    pv_result meta = {0};
    pv_result_printf(&meta, "{\"name\":");
    pv_result_string(&meta, name);
    pv_result_printf(&meta, ",\"version\":");
    pv_result_string(&meta, version);
    pv_result_printf(&meta, ",\"description\":");
    pv_result_string(&meta, description);
    pv_result_printf(&meta, "}");
    return pv_pack(meta.data, meta.length);
}

__attribute__((export_name("execute"))) uint64_t execute(const char *json, int32_t length) {
    pv_context context = {json, (size_t)length};
    pv_result result = {0}, answer = {0};
    if (plugvisor_handle(&context, &result)) {
        if (result.length) pv_result_printf(&answer, "{\"success\":true,\"data\":%.*s}", (int)result.length, result.data);
        else pv_result_printf(&answer, "{\"success\":true,\"data\":null}");
    } else {
        pv_result_printf(&answer, "{\"success\":false,\"error\":");
        pv_result_string(&answer, result.error[0] ? result.error : "failed");
        pv_result_printf(&answer, "}");
    }
    free(result.data);
    return pv_pack(answer.data, answer.length);
}

#endif /* PLUGVISOR_IMPLEMENTATION */
#endif /* PLUGVISOR_H */
