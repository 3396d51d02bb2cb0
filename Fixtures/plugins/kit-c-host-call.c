// kit-c-host-call: calls the host function named by parameters.function with parameters.input
// through the C kit's pv_host_call, and answers {"answer": ...}, or fails with the host's reason.
#define PLUGVISOR_IMPLEMENTATION
#include "plugvisor.h"

PV_META("kit-c-host-call", "0.1.0", "Calls a host function of the embedding program");

int plugvisor_handle(const pv_context *context, pv_result *result) {
    char function[257], error[512];
    pv_param(context, "function", function, sizeof function);
    size_t length = pv_param(context, "input", NULL, 0);
    char *input = malloc(length + 1);
    pv_param(context, "input", input, length + 1);
    size_t answer_length = 0;
    char *answer = pv_host_call(function, input, length, &answer_length, error, sizeof error);
    free(input);
    if (!answer) {
        pv_result_error(result, "%s", error);
        return 0;
    }
    pv_result_printf(result, "{\"answer\":");
    pv_result_string(result, answer);
    pv_result_printf(result, ",\"length\":%zu}", answer_length);
    free(answer);
    return 1;
}
