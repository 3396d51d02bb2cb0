import Foundation
import PlugvisorProtocol
import ServiceLifecycle

// What the control socket and the HTTP gateway both serve, in one place: the same request
// gets the same answer and the same error whichever way it came.
extension Supervisor {
    /// Performs one control request (call, status, kill, restart, reload; `stop` is only
    /// acknowledged: stopping is the caller's job). Blocks until it is done.
    package func respond(to request: ControlRequest) -> ControlResponse {
        switch request.op {
        case .call:
            guard let plugin = request.plugin else {
                return ControlResponse(error: PluginError(.badRequest, "call needs a plugin name"))
            }
            switch execute(plugin: plugin, context: request.context ?? .object([:])) {
            case let .success(result): return ControlResponse(result: result)
            case let .failure(error): return ControlResponse(error: error)
            }
        case .status:
            return ControlResponse(status: status())
        case .kill, .restart:
            guard let plugin = request.plugin else {
                return ControlResponse(error: PluginError(.badRequest, "\(request.op.rawValue) needs a plugin name"))
            }
            let outcome = request.op == .kill ? kill(plugin: plugin) : restart(plugin: plugin)
            switch outcome {
            case .success:
                let state = status().plugins.first { $0.name == plugin }
                return ControlResponse(result: ["plugin": .string(plugin), "state": .string(state?.state.rawValue ?? "?")])
            case let .failure(error): return ControlResponse(error: error)
            }
        case .stop:
            return ControlResponse(result: ["stopping": true])
        case .reload:
            guard let plugin = request.plugin else {
                switch reloadManifest() {
                case let .failure(error): return ControlResponse(error: error)
                case let .success(changes):
                    return ControlResponse(result: [
                        "added": .array(changes.added.map { .string($0) }),
                        "removed": .array(changes.removed.map { .string($0) }),
                        "reloaded": .object(changes.reloaded.mapValues { .string($0.summary) }),
                    ])
                }
            }
            switch reload(plugin: plugin) {
            case let .failure(error): return ControlResponse(error: error)
            case let .success(.failed(reason)):
                return ControlResponse(error: PluginError(.reloadFailed, plugin: plugin, "\(reason); the previous version goes on serving"))
            case let .success(result):
                return ControlResponse(result: ["plugin": .string(plugin), "result": .string(result.summary)])
            }
        }
    }

    /// Sets every plugin's gauges (queue depth, workers, memory, readiness, generation) from
    /// its status; call before a metrics scrape.
    public func updateGauges() {
        for (runtime, status) in runtimesWithStatus() { runtime.metrics.update(from: status) }
    }
}

// MARK: async/await

extension Supervisor {
    /// Starts every plugin's workers; returns when each plugin is ready or failed.
    public func start() async {
        await offload { self.start() }
    }

    /// Calls the plugin's `execute` with `context` (`{"request_id", "headers", "parameters"}`;
    /// see `PluginContext`). The call runs on a thread of its own, so no Swift concurrency
    /// thread waits for a worker; it ends within the plugin's timeout even if the task is cancelled.
    /// - Returns: the guest's result object (`{"success", "data", "error"?}`).
    /// - Throws: a typed `PluginError` (unknown plugin, timeout, crash, overloaded, ...).
    public func execute(plugin name: String, context: JSONValue) async throws(PluginError) -> JSONValue {
        try await offload { self.execute(plugin: name, context: context) }.get()
    }

    /// Calls the plugin with a typed context.
    public func execute(plugin name: String, context: PluginContext) async throws(PluginError) -> JSONValue {
        try await execute(plugin: name, context: context.json)
    }

    /// SIGKILLs the plugin's workers now; it stays stopped until `restart` or a reload.
    public func kill(plugin name: String) async throws(PluginError) {
        try await offload { self.kill(plugin: name) }.get()
    }

    /// Starts the plugin again with fresh workers, and returns once they are ready or failed.
    public func restart(plugin name: String) async throws(PluginError) {
        try await offload { self.restart(plugin: name) }.get()
    }

    /// Reloads one plugin (zero failed calls); a version that cannot start leaves the old one
    /// serving and comes back as `.failed(reason)`.
    public func reload(plugin name: String) async throws(PluginError) -> PluginReloadResult {
        try await offload { self.reload(plugin: name) }.get()
    }

    /// Re-reads the manifest file, as `plugvisor reload` and SIGHUP do.
    public func reloadManifest() async throws(PluginError) -> ManifestChanges {
        try await offload { self.reloadManifest() }.get()
    }

    /// Refuses new calls, lets calls in flight finish within the grace period, and ends every
    /// worker (what the `Service` does on graceful shutdown).
    public func shutdown() async {
        await offload { self.shutdown() }
    }

    /// `respond(to:)` for async callers.
    public func respond(to request: ControlRequest) async -> ControlResponse {
        await offload { self.respond(to: request) }
    }

    /// Runs blocking supervisor work on a new thread and resumes when it is done. The
    /// supervisor's calls wait on locks and sockets for up to a plugin's timeout: on the
    /// cooperative pool that would starve every other task. The gateway decodes request bodies
    /// here too, for the same reason.
    package func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: work()) }
            thread.name = "plugvisor-async"
            thread.start()
        }
    }
}

// MARK: swift-service-lifecycle

/// Run the supervisor in a `ServiceGroup`: `run()` starts every plugin (unless `start()` did
/// already), serves until graceful shutdown (SIGTERM/SIGINT when the group is configured for
/// them), then drains and stops every worker.
extension Supervisor: Service {
    public func run() async throws {
        await offload { self.start() }
        try? await gracefulShutdown()  // returns on graceful shutdown; throws on cancellation: stop either way
        await offload { self.shutdown() }
    }
}
