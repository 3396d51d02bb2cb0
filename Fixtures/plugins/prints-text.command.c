// A WASI command whose stdout is not JSON.
#include <stdio.h>

int main(void) {
    printf("hello, this is not JSON\n");
    return 0;
}
