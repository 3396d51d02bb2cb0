// greeter: a plugvisor plugin with the Embedded Swift kit (Plugvisor.swift, compiled with it).
// Greets parameters.name with the manifest's config.greeting (default "Hello"), logs a line,
// and fails politely without a name.

let plugin = Plugin(name: "greeter", version: "1.0.0", description: "Greets parameters.name") { context throws(PluginError) in
    guard let name = context.parameter("name"), !name.isEmpty else {
        throw PluginError("pass a \"name\" parameter")
    }
    let greeting = config("greeting") ?? "Hello"
    log(.info, "greeting \(name) for request \(context.requestID)")
    return ["message": "\(greeting), \(name)!", "request_id": .string(context.requestID)]
}
