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
