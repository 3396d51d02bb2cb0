// greeter: a plugvisor plugin in C with the kit (plugvisor.h). Greets parameters.name with the
// manifest's config.greeting (default "Hello"), logs a line, and fails politely without a name.
#define PLUGVISOR_IMPLEMENTATION
#include "plugvisor.h"

PV_META("greeter", "1.0.0", "Greets parameters.name");

int plugvisor_handle(const pv_context *context, pv_result *result) {
    char name[64], greeting[64], request_id[64];
    if (!pv_param(context, "name", name, sizeof name)) {
        pv_result_error(result, "pass a \"name\" parameter");
        return 0;
    }
    if (pv_config("greeting", greeting, sizeof greeting) < 0) snprintf(greeting, sizeof greeting, "Hello");
    pv_request_id(context, request_id, sizeof request_id);
    pv_log(PV_INFO, "greeting %s for request %s", name, request_id);
    char message[160];
    snprintf(message, sizeof message, "%s, %s!", greeting, name);
    pv_result_printf(result, "{\"message\":");
    pv_result_string(result, message);
    pv_result_printf(result, ",\"request_id\":");
    pv_result_string(result, request_id);
    pv_result_printf(result, "}");
    return 1;
}
