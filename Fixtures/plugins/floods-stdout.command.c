// A WASI command that writes 9 MiB to stdout, past the 8 MiB a result may have.
#include <stdio.h>
#include <string.h>

int main(void) {
    static char line[1024];
    memset(line, ' ', sizeof line);
    for (int i = 0; i < 9 * 1024; i++) fwrite(line, 1, sizeof line, stdout);
    printf("{}");
    return 0;
}
