import FoundationEssentials

/// A call of an `abi: extism` plugin as it travels the supervisor ⇄ worker wire: the context is
/// `{"function": NAME, "input": BASE64}` and the worker's result an ordinary plugin result,
/// `{"success": true, "data": {"output": BASE64}}` or `{"success": false, "error": MESSAGE}` (the
/// plugin's own failure), so that queues, the circuit breaker and metrics treat it as any call.
public enum ExtismCall {
    /// The context that calls `function` with `input`.
    public static func context(function: String, input: [UInt8]) -> JSONValue {
        ["function": .string(function), "input": .string(Data(input).base64EncodedString())]
    }

    /// The function and input a context names; nil when it is not an Extism call's context.
    public static func request(from context: JSONValue) -> (function: String, input: [UInt8])? {
        guard let function = context["function"]?.stringValue else { return nil }
        guard let text = context["input"]?.stringValue else { return (function, []) }
        guard let data = Data(base64Encoded: text) else { return nil }
        return (function, Array(data))
    }

    /// The result of a call that succeeded with `output`.
    public static func result(output: [UInt8]) -> JSONValue {
        ["success": true, "data": ["output": .string(Data(output).base64EncodedString())]]
    }

    /// The output bytes of `result`; a plugin failure as `plugin_failed` with the plugin's message.
    public static func output(of result: JSONValue, plugin: String) -> Result<[UInt8], PluginError> {
        guard result["success"]?.boolValue == true else {
            return .failure(
                PluginError(
                    .pluginFailed, plugin: plugin, result["error"]?.stringValue ?? "the plugin failed without a message"
                ))
        }
        guard let text = result["data"]?["output"]?.stringValue, let data = Data(base64Encoded: text) else {
            return .failure(PluginError(.invalidResult, plugin: plugin, "the worker's result carries no output"))
        }
        return .success(Array(data))
    }
}
