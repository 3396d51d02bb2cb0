// kit-swift-probe: drives the Embedded Swift kit (kits/swift/Plugvisor.swift) for the tests.
// - parameters.json: parses it with the kit's JSON and answers {"value": <it>, "text": <it serialized>,
//   "int": <value.n as an Int, if it is one>}, or fails with the parse error;
// - parameters.url: GETs it with httpRequest and answers {"status", "body"}, or fails
//   with the host's reason;
// - parameters.host_function: calls it with parameters.input through hostCall and answers
//   {"answer": <its bytes as text>}, or fails with the host's reason;
// - otherwise: answers {"header": <the X-Probe header, any case>, "parameters": <them>}.

let plugin = Plugin(version: "0.1.0", description: "Exercises the Swift kit") { context throws(PluginError) in
    if let name = context.parameter("host_function") {
        let answer = try hostCall(name, Array((context.parameter("input") ?? "").utf8))
        return ["answer": .string(String(decoding: answer, as: UTF8.self))]
    }
    if let url = context.parameter("url") {
        let response = try httpRequest(url, headers: ["accept": "text/plain"])
        return ["status": .number(Double(response.status)), "body": .string(response.body)]
    }
    if let text = context.parameter("json") {
        do throws(JSONError) {
            let value = try JSON.parse(text)
            return ["value": value, "text": .string(value.text), "int": value["n"]?.int.map { .number(Double($0)) } ?? nil]
        } catch {
            throw PluginError(error.description)
        }
    }
    return ["header": context.header("x-probe").map { .string($0) } ?? nil, "parameters": context.parameters]
}
