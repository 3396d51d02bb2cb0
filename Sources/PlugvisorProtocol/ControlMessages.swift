/// Messages on the control socket (CLI ⇄ supervisor). Same framing as the worker protocol.
public struct ControlRequest: Codable, Sendable, Equatable {
    public enum Operation: String, Codable, Sendable {
        case call, status, stop, kill, restart, reload
    }
    public var op: Operation
    public var plugin: String?
    /// For `call`: the plugin context.
    public var context: JSONValue?
    public init(op: Operation, plugin: String? = nil, context: JSONValue? = nil) {
        self.op = op
        self.plugin = plugin
        self.context = context
    }
}

public struct ControlResponse: Codable, Sendable, Equatable {
    public var result: JSONValue?
    public var status: StatusReport?
    public var error: PluginError?
    public init(result: JSONValue? = nil, status: StatusReport? = nil, error: PluginError? = nil) {
        self.result = result
        self.status = status
        self.error = error
    }
}

/// What `plugvisor status --json` prints.
public struct StatusReport: Codable, Sendable, Equatable {
    public var plugins: [PluginStatus]
    public init(plugins: [PluginStatus]) { self.plugins = plugins }
}

public struct PluginStatus: Codable, Sendable, Equatable {
    public var name: String
    /// From the guest's `meta`, when it has one.
    public var version: String?
    /// starting, ready, stopped or failed.
    public var state: String
    public var workers: [WorkerStatus]
    public var calls: Int
    public var errors: Int
    public var errorsByCode: [String: Int]
    public var p50Micros: Int?
    public var p99Micros: Int?
    public var restarts: Int
    /// Why the plugin is failed, or the last worker failure.
    public var lastError: String?
    public var sha256: String?
    /// closed, open or half-open; nil without a circuit breaker.
    public var circuit: String?
    /// Calls waiting for a free worker.
    public var queued: Int
    /// Which version serves: 0 at start, one more for each reload or restart.
    public var generation: Int
    /// When the plugin was last reloaded (ISO 8601), and how that went: "ok" or "failed: why".
    public var lastReloadAt: String?
    public var lastReload: String?

    public init(
        name: String, version: String?, state: String, workers: [WorkerStatus], calls: Int, errors: Int,
        errorsByCode: [String: Int], p50Micros: Int?, p99Micros: Int?, restarts: Int, lastError: String?,
        sha256: String?, circuit: String? = nil, queued: Int = 0, generation: Int = 0, lastReloadAt: String? = nil,
        lastReload: String? = nil
    ) {
        self.name = name
        self.version = version
        self.state = state
        self.workers = workers
        self.calls = calls
        self.errors = errors
        self.errorsByCode = errorsByCode
        self.p50Micros = p50Micros
        self.p99Micros = p99Micros
        self.restarts = restarts
        self.lastError = lastError
        self.sha256 = sha256
        self.circuit = circuit
        self.queued = queued
        self.generation = generation
        self.lastReloadAt = lastReloadAt
        self.lastReload = lastReload
    }
}

public struct WorkerStatus: Codable, Sendable, Equatable {
    public var pid: Int32
    /// idle, busy or starting.
    public var state: String
    public var uptimeSeconds: Double
    /// Resident memory of the worker process.
    public var rssBytes: Int?
    /// The guest's linear memory.
    public var memoryBytes: Int?
    public init(pid: Int32, state: String, uptimeSeconds: Double, rssBytes: Int?, memoryBytes: Int?) {
        self.pid = pid
        self.state = state
        self.uptimeSeconds = uptimeSeconds
        self.rssBytes = rssBytes
        self.memoryBytes = memoryBytes
    }
}
