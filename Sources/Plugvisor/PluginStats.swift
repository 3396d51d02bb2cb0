import PlugvisorProtocol

/// A plugin's call counters: calls, errors by code and recent latencies. Kept under its
/// controller's lock as a cheap value; percentiles are computed from a copy, outside it.
struct PluginStats: Sendable {
    private(set) var calls = 0
    private(set) var errorsByCode: [String: Int] = [:]
    private(set) var latencies = LatencyWindow(capacity: 2048)

    mutating func record(failure: PluginError.Code?, micros: Int) {
        calls += 1
        latencies.add(micros)
        if let failure { errorsByCode[failure.rawValue, default: 0] += 1 }
    }

    var errors: Int { errorsByCode.values.reduce(0, +) }
}

/// The latest `capacity` latencies, for p50/p99 without unbounded memory.
struct LatencyWindow: Sendable {
    private var samples: [Int] = []
    private var next = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    mutating func add(_ micros: Int) {
        if samples.count < capacity { samples.append(micros) } else { samples[next] = micros }
        next = (next + 1) % capacity
    }

    /// The percentiles asked for, sorting once.
    func percentiles(_ ps: [Int]) -> [Int?] {
        guard !samples.isEmpty else { return ps.map { _ in nil } }
        let sorted = samples.sorted()
        return ps.map { sorted[min(sorted.count - 1, (sorted.count * $0) / 100)] }
    }

    func percentile(_ p: Int) -> Int? { percentiles([p])[0] }
}
