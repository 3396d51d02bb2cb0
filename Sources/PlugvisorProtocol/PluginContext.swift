import FoundationEssentials

/// What a plugin's `execute` receives: `{"request_id", "headers", "parameters"}`.
public struct PluginContext: Sendable, Equatable {
    public var requestID: String
    public var headers: [String: String]
    public var parameters: [String: JSONValue]

    /// - Parameter requestID: defaults to a new UUID.
    public init(requestID: String? = nil, headers: [String: String] = [:], parameters: [String: JSONValue] = [:]) {
        self.requestID = requestID ?? UUID().uuidString.lowercased()
        self.headers = headers
        self.parameters = parameters
    }

    public var json: JSONValue {
        [
            "request_id": .string(requestID),
            "headers": .object(headers.mapValues { .string($0) }),
            "parameters": .object(parameters),
        ]
    }
}

/// The rules both the CLI (`plugvisor call -H/-p/--request-id`) and the HTTP gateway follow when
/// they build a context, so a plugin sees the same context whichever way it is called.
extension PluginContext {
    /// What a request id may be: what X-Request-ID allows.
    public static let requestIDRule = "1 to 128 visible ASCII characters"

    public static func isValidRequestID(_ id: String) -> Bool {
        (1...128).contains(id.utf8.count) && id.utf8.allSatisfy { (0x21...0x7e).contains($0) }
    }

    /// Header fields in the order they came as the context's `headers`: names in lower case, and
    /// a name given more than once gets its values joined with ", ", as HTTP defines (RFC 9110).
    public static func headers(from fields: some Sequence<(name: String, value: String)>) -> [String: String] {
        var headers: [String: String] = [:]
        for (name, value) in fields {
            let name = name.lowercased()
            headers[name] = headers[name].map { "\($0), \(value)" } ?? value
        }
        return headers
    }

    /// Named parameters as the context's `parameters`: a name given twice is refused, as the
    /// gateway's strict JSON refuses a duplicate key in the body.
    public static func parameters(
        from pairs: some Sequence<(name: String, value: JSONValue)>
    )
        -> Result<[String: JSONValue], PluginError>
    {
        var parameters: [String: JSONValue] = [:]
        for (name, value) in pairs {
            guard parameters.updateValue(value, forKey: name) == nil else {
                return .failure(PluginError(.badRequest, "parameter \(name.debugDescription) is given twice"))
            }
        }
        return .success(parameters)
    }
}
