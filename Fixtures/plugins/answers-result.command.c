// A WASI command whose stdout is already a plugin result (an object with a boolean "success"):
// plugvisor takes it as the result itself rather than wrapping it as "data" again.
#include <stdio.h>

int main(void) {
    printf("{\"success\":true,\"data\":{\"answer\":42}}\n");
    return 0;
}
