/// A typed error that every caller of a plugin can act on: the CLI prints it as one JSON line,
/// the HTTP gateway maps its code to a status, the library throws it.
public struct PluginError: Error, Sendable, Hashable, Codable, CustomStringConvertible {
    /// An extensible set of error codes (a struct, not a frozen enum, so new codes stay compatible).
    public struct Code: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(from decoder: Decoder) throws {
            rawValue = try decoder.singleValueContainer().decode(String.self)
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(rawValue)
        }
        public var description: String { rawValue }

        /// The CLI could not reach a supervisor on the control socket.
        public static let notRunning = Code(rawValue: "not_running")
        /// The control socket, its directory or the process listening on it belongs to another
        /// user (or others can write there): the CLI sent nothing.
        public static let untrustedSocket = Code(rawValue: "untrusted_socket")
        /// No plugin of that name in the manifest.
        public static let unknownPlugin = Code(rawValue: "unknown_plugin")
        /// The request itself was malformed (bad arguments, bad JSON).
        public static let badRequest = Code(rawValue: "bad_request")
        /// An admin operation over HTTP without the gateway's bearer token, or with a wrong one.
        public static let unauthorized = Code(rawValue: "unauthorized")
        /// An HTTP request body over the gateway's size limit.
        public static let payloadTooLarge = Code(rawValue: "payload_too_large")
        /// The plugin's module could not be loaded; the message says why.
        public static let loadFailed = Code(rawValue: "load_failed")
        /// The call ran past the plugin's `timeout`; its worker was killed and replaced.
        public static let timeout = Code(rawValue: "timeout")
        /// The worker process exited or was killed by a signal during the call.
        public static let workerCrashed = Code(rawValue: "worker_crashed")
        /// The guest trapped (unreachable, out-of-bounds access, stack exhaustion, ...).
        public static let trap = Code(rawValue: "trap")
        /// The guest ran out of its per-call fuel budget.
        public static let outOfFuel = Code(rawValue: "out_of_fuel")
        /// The call needed more memory than the plugin's `memory` budget (all its memories together).
        public static let outOfMemory = Code(rawValue: "oom")
        /// The plugin itself reported a failure (an Extism plugin's `error_set` or non-zero return
        /// code); the message is the plugin's.
        public static let pluginFailed = Code(rawValue: "plugin_failed")
        /// The guest's answer broke the ABI: bad pointer, not UTF-8, not JSON, wrong shape.
        public static let invalidResult = Code(rawValue: "invalid_result")
        /// The worker broke the wire protocol; it was killed.
        public static let protocolViolation = Code(rawValue: "protocol_violation")
        /// The plugin's workers were killed by `plugvisor kill` during the call.
        public static let killed = Code(rawValue: "killed")
        /// The plugin is stopped (killed by name, or the supervisor is shutting down).
        public static let stopped = Code(rawValue: "stopped")
        /// The plugin restarted too often and is no longer restarted (the plugin is `failed`).
        public static let restartLimit = Code(rawValue: "failed")
        @available(*, deprecated, renamed: "restartLimit")
        public static let failed = restartLimit
        /// Every worker is busy and the plugin's queue is full.
        public static let overloaded = Code(rawValue: "overloaded")
        /// The plugin's circuit breaker is open after consecutive failures.
        public static let circuitOpen = Code(rawValue: "circuit_open")
        /// A manifest reload found problems; nothing changed.
        public static let invalidManifest = Code(rawValue: "invalid_manifest")
        /// A reload could not start the new version; the old one goes on serving.
        public static let reloadFailed = Code(rawValue: "reload_failed")
        /// The supervisor failed at its own job (spawning, I/O); the message says where.
        public static let internalError = Code(rawValue: "internal")
    }

    public var code: Code
    public var plugin: String?
    public var message: String

    public init(_ code: Code, plugin: String? = nil, _ message: String) {
        self.code = code
        self.plugin = plugin
        self.message = message
    }

    public var description: String {
        if let plugin { return "\(code) (\(plugin)): \(message)" }
        return "\(code): \(message)"
    }
}
