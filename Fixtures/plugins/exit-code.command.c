// A WASI command that fails: prints a JSON value, then exits with code 3.
#include <stdio.h>

int main(void) {
    printf("{\"partial\":true}\n");
    return 3;
}
