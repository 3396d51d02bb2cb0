// kit-c-probe: drives the C kit's accessors (kits/c/plugvisor.h) for the tests. It reads the
// call's context, or, when parameters.context is a string, that string as the context (so that a
// test can hand the kit escapes the host would not write), and answers
// {"text": parameters.text, "note": headers.x-note ("" when absent), "count": parameters.count,
//  "flag": parameters.flag, "types": {KEY: pv_param_type, ...}, "prefix": the first 5 bytes of text
//  as pv_param cuts them, "text_length": pv_param's length, "count_is_bool": pv_param_bool's answer}.
// A value the kit says is absent or of another type answers null.
#define PLUGVISOR_IMPLEMENTATION
#include "plugvisor.h"

PV_META("kit-c-probe", "0.2.0", "Exercises the C kit");

static const char *type_names[] = {"absent", "null", "bool", "number", "string", "array", "object"};

int plugvisor_handle(const pv_context *call, pv_result *result) {
    pv_context context = *call;
    char *inner = NULL;
    if (pv_param_type(call, "context") == PV_STRING) {
        size_t length = pv_param(call, "context", NULL, 0);
        inner = malloc(length + 1);
        pv_param(call, "context", inner, length + 1);
        context = (pv_context){inner, length};
    }
    size_t length = pv_param(&context, "text", NULL, 0);
    char *text = malloc(length + 1), note[256], prefix[6];
    pv_param(&context, "text", text, length + 1);
    pv_result_printf(result, "{\"text\":");
    if (pv_param_type(&context, "text") == PV_STRING) pv_result_string(result, text); else pv_result_printf(result, "null");
    pv_param(&context, "text", prefix, sizeof prefix);
    pv_result_printf(result, ",\"prefix\":");
    pv_result_string(result, prefix);
    pv_result_printf(result, ",\"text_length\":%zu,\"note\":", length);
    pv_header(&context, "x-note", note, sizeof note);
    pv_result_string(result, note);
    double count;
    int flag;
    if (pv_param_number(&context, "count", &count)) pv_result_printf(result, ",\"count\":%.17g", count);
    else pv_result_printf(result, ",\"count\":null");
    if (pv_param_bool(&context, "flag", &flag)) pv_result_printf(result, ",\"flag\":%s", flag ? "true" : "false");
    else pv_result_printf(result, ",\"flag\":null");
    pv_result_printf(result, ",\"count_is_bool\":%d,\"types\":{", pv_param_bool(&context, "count", &flag));
    const char *keys[] = {"text", "count", "flag", "off", "none", "list", "object", "missing"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        pv_result_printf(result, "%s\"%s\":\"%s\"", i ? "," : "", keys[i], type_names[pv_param_type(&context, keys[i])]);
    }
    pv_result_printf(result, "}}");
    free(text);
    free(inner);
    return 1;
}
