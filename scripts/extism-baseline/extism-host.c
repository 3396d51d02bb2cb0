// The in-process baseline for plugvisor's benchmark: Extism's own runtime (libextism from
// PyPI's extism-sys, wasmtime inside) calling a no-op plugin in a loop, in this process.
//
//   extism-host PLUGIN.wasm ROUNDS [THREADS]
//
// Each thread has a plugin instance of its own (an Extism plugin serves one call at a time)
// and makes ROUNDS calls with the context plugvisor's no-op call carries, all threads at once.
// Prints one line per thread: "p50_us p99_us calls_per_s", as plugvisor-pingpong does.
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// The wheel ships libextism but not extism.h: the few functions used here, as the library
// exports them (extism-sys 1.41.0's cffi declarations give the same types).
typedef struct ExtismPlugin ExtismPlugin;
typedef struct ExtismFunction ExtismFunction;
typedef uint64_t ExtismSize;
ExtismPlugin *extism_plugin_new(const uint8_t *wasm, ExtismSize wasm_size, const ExtismFunction **functions,
                                ExtismSize n_functions, bool with_wasi, char **errmsg);
void extism_plugin_new_error_free(char *err);
void extism_plugin_free(ExtismPlugin *plugin);
int32_t extism_plugin_call(ExtismPlugin *plugin, const char *func_name, const uint8_t *data, ExtismSize data_len);
const char *extism_plugin_error(ExtismPlugin *plugin);
ExtismSize extism_plugin_output_length(ExtismPlugin *plugin);
const uint8_t *extism_plugin_output_data(ExtismPlugin *plugin);
const char *extism_version(void);

static const char context[] = "{\"request_id\":\"bench\",\"headers\":{},\"parameters\":{}}";
static const char expected[] = "{\"success\":true}";

static uint8_t *wasm;
static size_t wasm_size;
static int rounds;
static pthread_barrier_t start_together;

struct result {
    double p50, p99, per_second;
};

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void call_or_die(ExtismPlugin *plugin) {
    if (extism_plugin_call(plugin, "noop", (const uint8_t *)context, sizeof context - 1) != 0) {
        fprintf(stderr, "extism-host: call failed: %s\n", extism_plugin_error(plugin));
        exit(1);
    }
    // Read the answer as a host would; check it once per call, which costs next to nothing.
    if (extism_plugin_output_length(plugin) != sizeof expected - 1 ||
        memcmp(extism_plugin_output_data(plugin), expected, sizeof expected - 1) != 0) {
        fprintf(stderr, "extism-host: unexpected output\n");
        exit(1);
    }
}

static void *run_thread(void *out) {
    char *error = NULL;
    ExtismPlugin *plugin = extism_plugin_new(wasm, wasm_size, NULL, 0, false, &error);
    if (plugin == NULL) {
        fprintf(stderr, "extism-host: cannot load the plugin: %s\n", error ? error : "?");
        extism_plugin_new_error_free(error);
        exit(1);
    }
    for (int i = 0; i < 1000; i++) call_or_die(plugin);  // warm-up
    double *samples = malloc(sizeof(double) * (size_t)rounds);
    pthread_barrier_wait(&start_together);
    double started = now_us();
    for (int i = 0; i < rounds; i++) {
        double t0 = now_us();
        call_or_die(plugin);
        samples[i] = now_us() - t0;
    }
    double elapsed = now_us() - started;
    qsort(samples, (size_t)rounds, sizeof(double), compare);
    struct result *result = out;
    result->p50 = samples[rounds / 2];
    result->p99 = samples[(rounds * 99) / 100];
    result->per_second = rounds / (elapsed / 1e6);
    free(samples);
    extism_plugin_free(plugin);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s PLUGIN.wasm ROUNDS [THREADS]\n", argv[0]);
        return 64;
    }
    rounds = atoi(argv[2]);
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    if (rounds < 1 || threads < 1 || threads > 64) {
        fprintf(stderr, "extism-host: ROUNDS must be at least 1 and THREADS 1-64\n");
        return 64;
    }
    FILE *file = fopen(argv[1], "rb");
    if (file == NULL || fseek(file, 0, SEEK_END) != 0) {
        perror(argv[1]);
        return 1;
    }
    wasm_size = (size_t)ftell(file);
    rewind(file);
    wasm = malloc(wasm_size);
    if (fread(wasm, 1, wasm_size, file) != wasm_size) {
        perror(argv[1]);
        return 1;
    }
    fclose(file);
    fprintf(stderr, "extism-host: libextism %s, %d thread(s) × %d calls\n", extism_version(), threads, rounds);

    pthread_t ids[64];
    struct result results[64];
    pthread_barrier_init(&start_together, NULL, (unsigned)threads);
    for (int t = 0; t < threads; t++) pthread_create(&ids[t], NULL, run_thread, &results[t]);
    for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    for (int t = 0; t < threads; t++) printf("%.2f %.2f %.1f\n", results[t].p50, results[t].p99, results[t].per_second);
    return 0;
}
