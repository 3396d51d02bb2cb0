/// One `plugvisor.http_request` handed by the supervisor to the network broker
/// (`plugvisor-broker`). The broker answers with a `HostResult` carrying the same `id`.
public struct BrokerRequest: Codable, Sendable, Equatable {
    public var id: UInt64
    /// The guest's request, as it wrote it: `{"method", "url", "headers", "body"}`.
    public var request: JSONValue
    /// The plugin's `network.allowed_hosts`: the broker checks the URL and every redirect.
    public var allowedHosts: [String]
    /// What is left of the guest's call, in milliseconds: the broker answers within it.
    public var timeoutMillis: Int64

    public init(id: UInt64, request: JSONValue, allowedHosts: [String], timeoutMillis: Int64) {
        self.id = id
        self.request = request
        self.allowedHosts = allowedHosts
        self.timeoutMillis = timeoutMillis
    }
}
