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
    /// Where the plugin is in its lifecycle; the raw values are the wire strings.
    public enum State: String, Codable, Sendable, CaseIterable {
        case starting
        case ready
        /// Serving while a new generation starts.
        case reloading
        /// Killed by name: no calls, no restarts, until restarted.
        case stopped
        /// Will not serve until restarted: it could not load, or restarted too often.
        case failed
    }

    public var name: String
    /// From the guest's `meta`, when it has one.
    public var version: String?
    public var state: State
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
    /// Nil without a circuit breaker.
    public var circuit: CircuitState?
    /// Calls waiting for a free worker.
    public var queued: Int
    /// Which version serves: 0 at start, one more for each reload or restart.
    public var generation: Int
    /// When the plugin was last reloaded (ISO 8601), and how that went: "ok" or "failed: why".
    public var lastReloadAt: String?
    public var lastReload: String?
    /// For a plugin built from Swift sources: the sources (as the manifest names them) and the
    /// cached module built from them that serves.
    public var source: String?
    public var module: String?

    public init(
        name: String, version: String?, state: State, workers: [WorkerStatus], calls: Int, errors: Int,
        errorsByCode: [String: Int], p50Micros: Int?, p99Micros: Int?, restarts: Int, lastError: String?,
        sha256: String?, circuit: CircuitState? = nil, queued: Int = 0, generation: Int = 0,
        lastReloadAt: String? = nil,
        lastReload: String? = nil, source: String? = nil, module: String? = nil
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
        self.source = source
        self.module = module
    }
}

/// A plugin's circuit breaker; the raw values are the wire strings.
public enum CircuitState: String, Codable, Sendable, CaseIterable {
    /// Calls go through.
    case closed
    /// Calls fail fast until the reset time.
    case open
    /// One trial call decides between closed and open.
    case halfOpen = "half-open"
}

public struct WorkerStatus: Codable, Sendable, Equatable {
    /// Where one worker process is; the raw values are the wire strings.
    public enum State: String, Codable, Sendable, CaseIterable {
        /// Spawned, not yet through its handshake.
        case starting
        case idle
        case busy
        /// Finishing its call, then retired (an older generation, or the plugin is stopping).
        case draining
        /// Loaded and locked down, taking no calls until it takes a lost worker's place
        /// (`standby` in the manifest).
        case standby
        /// Killed, waiting to be reaped.
        case dying
        /// Reaped: no longer known to the plugin.
        case gone
    }

    public var pid: Int32
    public var state: State
    public var uptimeSeconds: Double
    /// Resident memory of the worker process.
    public var rssBytes: Int?
    /// The guest's linear memory.
    public var memoryBytes: Int?
    public init(pid: Int32, state: State, uptimeSeconds: Double, rssBytes: Int?, memoryBytes: Int?) {
        self.pid = pid
        self.state = state
        self.uptimeSeconds = uptimeSeconds
        self.rssBytes = rssBytes
        self.memoryBytes = memoryBytes
    }
}

// Printed as on the wire ("half-open", not "halfOpen").
extension PluginStatus.State: CustomStringConvertible {
    public var description: String { rawValue }
}

extension WorkerStatus.State: CustomStringConvertible {
    public var description: String { rawValue }
}

extension CircuitState: CustomStringConvertible {
    public var description: String { rawValue }
}
