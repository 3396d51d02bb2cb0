// A plain WASI command (no plugvisor kit): reads its stdin (the plugin context), and prints
// {"bytes":N,"words":W,"argv":[...],"mode":"<$MODE or null>"} on stdout; one line on stderr.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long bytes = 0, words = 0;
    int c, inside = 0;
    while ((c = getchar()) != EOF) {
        bytes++;
        if (isalnum(c)) {
            if (!inside) words++;
            inside = 1;
        } else {
            inside = 0;
        }
    }
    fprintf(stderr, "word-count read %ld bytes\n", bytes);
    printf("{\"bytes\":%ld,\"words\":%ld,\"argv\":[", bytes, words);
    for (int i = 0; i < argc; i++) printf("%s\"%s\"", i ? "," : "", argv[i]);
    const char *mode = getenv("MODE");
    if (mode) printf("],\"mode\":\"%s\"}\n", mode); else printf("],\"mode\":null}\n");
    return 0;
}
