import Metrics
import PlugvisorProtocol

/// One plugin's metrics, through swift-metrics: whatever backend the program bootstrapped
/// (`plugvisor start` uses swift-prometheus for `/metrics`; an embedding program picks its own;
/// without one they cost nothing).
///
/// Counters and the latency timer move as calls, restarts and reloads happen; the gauges
/// (queue depth, workers, memory, state) are set from the plugin's status by
/// `Supervisor.updateGauges()`, which the gateway calls before each scrape.
struct PluginMetrics: Sendable {
    let plugin: String
    private let calls: Counter
    private let latency: Metrics.Timer
    private let restarts: Counter

    init(plugin: String) {
        self.plugin = plugin
        let dimensions = [("plugin", plugin)]
        calls = Counter(label: Names.calls, dimensions: dimensions)
        latency = Metrics.Timer(label: Names.duration, dimensions: dimensions, preferredDisplayUnit: .seconds)
        restarts = Counter(label: Names.restarts, dimensions: dimensions)
    }

    enum Names {
        static let calls = "plugvisor_calls_total"
        static let errors = "plugvisor_call_errors_total"
        static let duration = "plugvisor_call_duration_seconds"
        static let restarts = "plugvisor_worker_restarts_total"
        static let reloads = "plugvisor_reloads_total"
        static let queued = "plugvisor_queued_calls"
        static let workers = "plugvisor_workers"
        static let residentBytes = "plugvisor_worker_resident_bytes"
        static let guestMemoryBytes = "plugvisor_guest_memory_bytes"
        static let ready = "plugvisor_plugin_ready"
        static let generation = "plugvisor_plugin_generation"
        static let circuitOpen = "plugvisor_circuit_open"
        static let hostFunctionCalls = "plugvisor_host_function_calls_total"
        static let hostFunctionErrors = "plugvisor_host_function_errors_total"
        static let hostFunctionDuration = "plugvisor_host_function_duration_seconds"
    }

    /// One answered call: every call counts, a typed error also counts under its code.
    func recordCall(nanoseconds: Int64, error: PluginError.Code?) {
        calls.increment()
        latency.recordNanoseconds(nanoseconds)
        if let error {
            // Created on first use: the set of codes is small and fixed by the supervisor.
            Counter(label: Names.errors, dimensions: [("plugin", plugin), ("code", error.rawValue)]).increment()
        }
    }

    func recordRestart() { restarts.increment() }

    /// One run of host function `name` for this plugin; a failure (thrown, timed out, too large)
    /// also counts as an error.
    func recordHostFunction(_ name: String, nanoseconds: Int64, outcome: Result<[UInt8], HostFunctionError>) {
        // Created on use: the names are the embedding program's, a fixed set.
        let dimensions = [("plugin", plugin), ("function", name)]
        Counter(label: Names.hostFunctionCalls, dimensions: dimensions).increment()
        Metrics.Timer(label: Names.hostFunctionDuration, dimensions: dimensions, preferredDisplayUnit: .seconds)
            .recordNanoseconds(nanoseconds)
        if case .failure = outcome { Counter(label: Names.hostFunctionErrors, dimensions: dimensions).increment() }
    }

    func recordReload(succeeded: Bool) {
        Counter(label: Names.reloads, dimensions: [("plugin", plugin), ("result", succeeded ? "ok" : "failed")])
            .increment()
    }

    /// Sets the gauges from a status snapshot.
    func update(from status: PluginStatus) {
        let dimensions = [("plugin", plugin)]
        Gauge(label: Names.queued, dimensions: dimensions).record(status.queued)
        Gauge(label: Names.workers, dimensions: dimensions).record(status.workers.count)
        Gauge(label: Names.residentBytes, dimensions: dimensions).record(
            status.workers.compactMap(\.rssBytes).saturatingSum())
        Gauge(label: Names.guestMemoryBytes, dimensions: dimensions).record(
            status.workers.compactMap(\.memoryBytes).saturatingSum())
        Gauge(label: Names.ready, dimensions: dimensions).record(status.state == .ready ? 1 : 0)
        Gauge(label: Names.generation, dimensions: dimensions).record(status.generation)
        // 1 while calls fail fast (open or half-open); 0 when closed or without a breaker.
        Gauge(label: Names.circuitOpen, dimensions: dimensions).record((status.circuit ?? .closed) == .closed ? 0 : 1)
    }
}
