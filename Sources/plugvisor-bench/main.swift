// plugvisor-bench: the measurements behind scripts/bench.sh (DESIGN §8). Every number is taken
// in this run, on this machine, next to the floor it is compared with.
//
//   plugvisor-bench FIXTURES_DIR BIN_DIR OUTPUT_JSON
import Foundation
import Glibc
import Logging
import Metrics
import Plugvisor
import PlugvisorManifest
import PlugvisorPosix
import PlugvisorProtocol
import Prometheus

let arguments = CommandLine.arguments
guard arguments.count == 4 else {
    FileHandle.standardError.write(Data("usage: plugvisor-bench FIXTURES_DIR BIN_DIR OUTPUT_JSON\n".utf8))
    exit(64)
}
let fixtures = arguments[1]
let bin = arguments[2]
let outputPath = arguments[3]
let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("plugvisor-bench-\(getpid())").path
try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: scratch) }

var results: [String: Double] = [:]
var table: [(String, String)] = []
func record(_ key: String, _ value: Double, _ label: String, _ unit: String) {
    results[key] = (value * 100).rounded() / 100
    table.append((label, String(format: "%.2f %@", value, unit)))
}
func say(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

// MARK: Helpers

struct Sample {
    var p50: Double
    var p99: Double
    var perSecond: Double
}

func percentile(_ sorted: [Double], _ p: Int) -> Double { sorted[min(sorted.count - 1, sorted.count * p / 100)] }

func spec(_ name: String, _ file: String, instances: Int = 1, timeout: Duration = .seconds(30)) -> PluginSpec {
    var spec = PluginSpec(name: name, wasm: file.hasPrefix("/") ? file : "\(fixtures)/\(file).wasm")
    spec.instances = instances
    spec.maxQueue = 1024
    spec.timeout = timeout
    spec.restart = .init(max: 10_000, within: .seconds(60), backoffMin: .milliseconds(100), backoffMax: .seconds(1))
    return spec
}

func supervisor(_ specs: [PluginSpec]) -> SupervisorCore {
    let configuration = SupervisorConfiguration(workerExecutable: "\(bin)/plugvisor-worker", watchFiles: false)
    let quiet = Logger(label: "plugvisor.bench", factory: { _ in SwiftLogNoOpLogHandler() })
    let supervisor = SupervisorCore(
        manifest: Manifest(plugins: specs, path: "\(scratch)/bench.yaml"), configuration: configuration, logger: quiet)
    supervisor.start()
    return supervisor
}

let noopContext: JSONValue = ["request_id": "bench", "headers": [:], "parameters": [:]]

/// `callers` threads each make `calls` calls; latencies from all of them.
func measure(
    _ supervisor: SupervisorCore, _ plugin: String, context: JSONValue = noopContext, callers: Int, calls: Int
) -> Sample {
    final class Collected: @unchecked Sendable {
        // SAFETY: only touched under `lock`.
        let lock = NSLock()
        var latencies: [Double] = []
        var failures = 0
    }
    let collected = Collected()
    let group = DispatchGroup()
    let started = ContinuousClock.now
    for _ in 0..<callers {
        group.enter()
        Thread {
            var mine: [Double] = []
            mine.reserveCapacity(calls)
            var failed = 0
            for _ in 0..<calls {
                let t0 = ContinuousClock.now
                if case .failure = supervisor.execute(plugin: plugin, context: context) { failed += 1 }
                let (s, a) = (ContinuousClock.now - t0).components
                mine.append(Double(s) * 1e6 + Double(a) / 1e12)
            }
            collected.lock.withLock {
                collected.latencies += mine
                collected.failures += failed
            }
            group.leave()
        }.start()
    }
    group.wait()
    let (s, a) = (ContinuousClock.now - started).components
    let elapsed = Double(s) + Double(a) / 1e18
    let failures = collected.failures
    var latencies = collected.latencies
    if failures > 0 { say("warning: \(failures) failed calls to \(plugin)") }
    latencies.sort()
    return Sample(
        p50: percentile(latencies, 50), p99: percentile(latencies, 99), perSecond: Double(latencies.count) / elapsed)
}

func run(_ executable: String, _ args: [String]) -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = args
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice  // readiness probes fail until the supervisor listens
    try? process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

/// The frame bodies a no-op call carries, as the supervisor and the worker encode them.
func frameSizes(context: JSONValue, answer: JSONValue) -> (Int, Int) {
    let request = try! JSONCoding.encode(
        SupervisorMessage.call(CallRequest(id: 123_456, fn: .execute, payload: context)))
    let response = try! JSONCoding.encode(
        WorkerMessage.result(
            CallResult(
                id: 123_456, payload: answer, stats: CallStats(micros: 12, memoryBytes: 65536))))
    return (request.count, response.count)
}

func floor(rounds: Int, request: Int, response: Int, pairs: Int) -> [Sample] {
    run("\(bin)/plugvisor-pingpong", ["\(rounds)", "\(request)", "\(response)", "\(pairs)"])
        .split(separator: "\n").map { line in
            let f = line.split(separator: " ").compactMap { Double($0) }
            return Sample(p50: f[0], p99: f[1], perSecond: f[2])
        }
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func milliseconds(since start: ContinuousClock.Instant) -> Double {
    let (s, a) = (ContinuousClock.now - start).components
    return Double(s) * 1e3 + Double(a) / 1e15
}

func rss(_ pid: pid_t) -> Double { Double(ProcFS.residentBytes(pid: pid) ?? 0) / Double(1 << 20) }

// MARK: Profiling mode

// PLUGVISOR_BENCH_PROFILE=N: only N no-op calls (2 workers, 8 callers), for a profiler such as
// `valgrind --tool=callgrind` to show where the supervisor's time goes.
if let calls = ProcessInfo.processInfo.environment["PLUGVISOR_BENCH_PROFILE"].flatMap(Int.init) {
    let profiled = supervisor([spec("noop2", "noop", instances: 2)])
    let sample = measure(profiled, "noop2", callers: 8, calls: calls / 8)
    print(String(format: "profiled %d calls: %.0f calls/s", calls, sample.perSecond))
    profiled.shutdown()
    exit(0)
}

// MARK: The floor

say("floor: socketpair ping-pong")
let (requestBytes, responseBytes) = frameSizes(context: noopContext, answer: ["success": true])
let floor1 = floor(rounds: 20_000, request: requestBytes, response: responseBytes, pairs: 1)[0]
let floor2 = floor(rounds: 20_000, request: requestBytes, response: responseBytes, pairs: 2)
record("floor_p50_us", floor1.p50, "floor: ping-pong p50 (\(requestBytes)+\(responseBytes) B frames)", "µs")
record("floor_p99_us", floor1.p99, "floor: ping-pong p99", "µs")
record("floor_calls_per_s", floor1.perSecond, "floor: ping-pong, one pair", "calls/s")
record("floor_calls_per_s_2p", floor2.map(\.perSecond).reduce(0, +), "floor: two ping-pong pairs at once", "calls/s")

// MARK: No-op calls

say("no-op calls through the library API")
var wordCount = spec("words", "word-count")
wordCount.abi = .wasiCommand
let pool = supervisor([
    spec("noop", "noop"), spec("noop2", "noop", instances: 2), spec("echo", "echo"),
    spec("compute", "compute"), wordCount,
])
_ = measure(pool, "noop", callers: 1, calls: 2000)  // warm-up
let noop = measure(pool, "noop", callers: 1, calls: 20_000)
record("noop_p50_us", noop.p50, "no-op call p50, instances 1, 1 caller", "µs")
record("noop_p99_us", noop.p99, "no-op call p99", "µs")
record("noop_calls_per_s", noop.perSecond, "no-op calls, instances 1, 1 caller", "calls/s")
for (instances, plugin) in [(1, "noop"), (2, "noop2")] {
    for callers in [2, 8] {
        let sample = measure(pool, plugin, callers: callers, calls: 20_000 / callers)
        record(
            "noop_calls_per_s_\(instances)w_\(callers)c", sample.perSecond,
            "no-op calls, instances \(instances), \(callers) callers", "calls/s")
        if instances == 2 && callers == 8 { results["noop_calls_per_s_2w"] = (sample.perSecond * 100).rounded() / 100 }
    }
}

say("contexts of 4 KiB and 256 KiB")
for (label, size) in [("4k", 4 << 10), ("256k", 256 << 10)] {
    let context: JSONValue = [
        "request_id": "bench", "headers": [:], "parameters": ["blob": .string(String(repeating: "x", count: size))],
    ]
    let sample = measure(pool, "echo", context: context, callers: 1, calls: size > 10_000 ? 300 : 5000)
    record("echo_\(label)_p50_us", sample.p50, "echo of a \(label == "4k" ? "4 KiB" : "256 KiB") context, p50", "µs")
    record(
        "echo_\(label)_calls_per_s", sample.perSecond, "echo of a \(label == "4k" ? "4 KiB" : "256 KiB") context",
        "calls/s")
}

say("compute-heavy guest")
let compute = measure(pool, "compute", callers: 1, calls: 5)
record("compute_mib_per_s", 16 / ((compute.p50 - noop.p50) / 1e6), "compute: FNV-1a in the guest", "MiB/s")

say("a WASI command plugin")
let words: JSONValue = ["request_id": "bench", "headers": [:], "parameters": ["text": "the quick brown fox"]]
_ = measure(pool, "words", context: words, callers: 1, calls: 50)
let command = measure(pool, "words", context: words, callers: 1, calls: 1000)
record("wasi_command_p50_us", command.p50, "WASI command call p50 (a new instance per call)", "µs")

say("idle worker memory")
Thread.sleep(forTimeInterval: 0.5)
let idlePID = pool.status().plugins.first { $0.name == "noop" }!.workers[0].pid
record("idle_worker_rss_mib", rss(idlePID), "idle worker RSS", "MiB")
pool.shutdown()

// MARK: Start, restart, reload

say("cold start")
var big = try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/noop.wasm"))
// A custom section makes a ~1 MiB module that a worker must still read, hash and parse.
let payload = 1 << 20
var section = Data([0x05]) + Data("bench".utf8) + Data(count: payload)
var size = section.count
var leb = Data()
repeat {
    var byte = UInt8(size & 0x7F)
    size >>= 7
    if size != 0 { byte |= 0x80 }
    leb.append(byte)
} while size != 0
big += Data([0x00]) + leb + section
let bigPath = "\(scratch)/big.wasm"
try big.write(to: URL(fileURLWithPath: bigPath))
for (key, file, label) in [
    ("cold_start_ms", "noop", "cold start, small module"), ("cold_start_1mib_ms", bigPath, "cold start, 1 MiB module"),
] {
    var times: [Double] = []
    for _ in 0..<10 {
        let t0 = ContinuousClock.now
        let one = supervisor([spec("cold", file)])
        times.append(milliseconds(since: t0))
        one.shutdown()
    }
    record(key, median(times), "\(label) (spawn to ready)", "ms")
}

say("restart after a crash")
// Each crash is the first in its window (a one-off crash), which is replaced at once; repeated
// crashes back off by design and are not what this measures.
var crashSpec = spec("noop", "noop")
crashSpec.restart = .init(
    max: 10_000, within: .milliseconds(1), backoffMin: .milliseconds(100), backoffMax: .seconds(1))
let crashing = supervisor([crashSpec])
var restarts: [Double] = []
for _ in 0..<10 {
    _ = crashing.execute(plugin: "noop", context: noopContext)
    let pid = crashing.status().plugins[0].workers[0].pid
    let t0 = ContinuousClock.now
    kill(pid, SIGKILL)
    // The next answered call, by the fresh worker.
    while true {
        if case .success = crashing.execute(plugin: "noop", context: noopContext),
            crashing.status().plugins[0].workers.first?.pid != pid
        {
            break
        }
    }
    restarts.append(milliseconds(since: t0))
    Thread.sleep(forTimeInterval: 0.2)
}
record("restart_ms", median(restarts), "restart: worker SIGKILLed to next answered call", "ms")
crashing.shutdown()

say("reload under load")
let reloadDirectory = "\(scratch)/reload"
try FileManager.default.createDirectory(atPath: reloadDirectory, withIntermediateDirectories: true)
let versionPath = "\(reloadDirectory)/plugin.wasm"
try FileManager.default.copyItem(atPath: "\(fixtures)/versioned-1.wasm", toPath: versionPath)
let reloading = supervisor([spec("versioned", versionPath, instances: 2)])
let stopLoad = NSLock()
var loadRunning = true
var failedDuringReload = 0
var loadCalls = 0
let loaders = DispatchGroup()
for _ in 0..<4 {
    loaders.enter()
    Thread {
        while stopLoad.withLock({ loadRunning }) {
            let result = reloading.execute(plugin: "versioned", context: noopContext)
            stopLoad.withLock {
                loadCalls += 1
                if case .failure = result { failedDuringReload += 1 }
            }
        }
        loaders.leave()
    }.start()
}
var switches: [Double] = []
for round in 0..<10 {
    let next = round % 2 == 0 ? "versioned-2" : "versioned-1"
    let expected: JSONValue = round % 2 == 0 ? "v2" : "v1"
    try? FileManager.default.removeItem(atPath: "\(reloadDirectory)/new.wasm")
    try FileManager.default.copyItem(atPath: "\(fixtures)/\(next).wasm", toPath: "\(reloadDirectory)/new.wasm")
    rename("\(reloadDirectory)/new.wasm", versionPath)
    let t0 = ContinuousClock.now
    _ = reloading.reload(plugin: "versioned")
    while true {
        if case let .success(answer) = reloading.execute(plugin: "versioned", context: noopContext),
            answer["data"] == expected
        {
            break
        }
    }
    switches.append(milliseconds(since: t0))
}
stopLoad.withLock { loadRunning = false }
loaders.wait()
record("reload_switch_ms", median(switches), "reload: new file to first answer of the new version", "ms")
record(
    "reload_failed_calls", Double(failedDuringReload), "reload: failed calls among \(loadCalls) during 10 reloads",
    "calls")
reloading.shutdown()

// MARK: The supervisor with 20 plugins, and the CLI

say("supervisor with 20 plugins")
var manifest = "plugins:\n"
for i in 0..<20 { manifest += "  - {name: p\(i), wasm: \(fixtures)/noop.wasm}\n" }
try manifest.write(toFile: "\(scratch)/twenty.yaml", atomically: true, encoding: .utf8)
let control = "\(scratch)/control.sock"
let server = Process()
server.executableURL = URL(fileURLWithPath: "\(bin)/plugvisor")
server.arguments = ["start", "\(scratch)/twenty.yaml", "--control", control, "--log-level", "error"]
_ = FileManager.default.createFile(atPath: "\(scratch)/server.log", contents: nil)
server.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(scratch)/server.log"))
try server.run()
var ready = false
for _ in 0..<200 where !ready {
    ready = run("\(bin)/plugvisor", ["status", "--control", control]).contains("p19")
    if !ready { Thread.sleep(forTimeInterval: 0.05) }
}
if !ready {
    say(
        "the 20-plugin supervisor did not come up: "
            + ((try? String(contentsOfFile: "\(scratch)/server.log", encoding: .utf8)) ?? ""))
}
var cliTimes: [Double] = []
for _ in 0..<30 {
    let t0 = ContinuousClock.now
    _ = run("\(bin)/plugvisor", ["call", "p0", "--control", control])
    cliTimes.append(milliseconds(since: t0))
}
Thread.sleep(forTimeInterval: 0.5)
record("supervisor_rss_mib_20_plugins", rss(server.processIdentifier), "supervisor RSS with 20 plugins", "MiB")
record("cli_call_p50_ms", median(cliTimes), "a call through the CLI (new process each time), p50", "ms")
_ = run("\(bin)/plugvisor", ["stop", "--control", control])
server.waitUntilExit()

// MARK: With metrics

// Last, because a metrics backend is bootstrapped once per process: the same no-op call with
// swift-prometheus recording every call, as under `plugvisor start --http`.
say("no-op calls with Prometheus metrics")
MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()))
let metered = supervisor([spec("noop", "noop")])
_ = measure(metered, "noop", callers: 1, calls: 2000)
let meteredNoop = measure(metered, "noop", callers: 1, calls: 20_000)
record("noop_metrics_p50_us", meteredNoop.p50, "no-op call p50 with Prometheus metrics", "µs")
metered.shutdown()

// MARK: Report

results["noop_p50_vs_floor"] = (results["noop_p50_us"]! / results["floor_p50_us"]! * 100).rounded() / 100
results["noop_p99_vs_p50"] = (results["noop_p99_us"]! / results["noop_p50_us"]! * 100).rounded() / 100
results["throughput_2w_vs_floor_2p"] =
    (results["noop_calls_per_s_2w"]! / results["floor_calls_per_s_2p"]! * 100).rounded() / 100
let width = table.map(\.0.count).max() ?? 0
print("plugvisor benchmark (\(ProcessInfo.processInfo.processorCount) CPUs)")
for (label, value) in table { print(label.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value) }
print("")
print("targets (DESIGN §8)")
func target(_ label: String, _ value: Double, _ goal: String, _ met: Bool) {
    print(
        label.padding(toLength: 46, withPad: " ", startingAt: 0) + String(format: "%8.2f   ", value) + goal
            + (met ? "   met" : "   NOT MET"))
}
target("no-op p50 / floor p50", results["noop_p50_vs_floor"]!, "≤ 2", results["noop_p50_vs_floor"]! <= 2)
target("no-op p99 / no-op p50", results["noop_p99_vs_p50"]!, "≤ 10", results["noop_p99_vs_p50"]! <= 10)
target(
    "2 workers × 8 callers / two ping-pong pairs", results["throughput_2w_vs_floor_2p"]!, "≥ 0.7",
    results["throughput_2w_vs_floor_2p"]! >= 0.7)
target("cold start, small module (ms)", results["cold_start_ms"]!, "< 10", results["cold_start_ms"]! < 10)
target("restart to next answered call (ms)", results["restart_ms"]!, "< 20", results["restart_ms"]! < 20)
target("idle worker RSS (MiB)", results["idle_worker_rss_mib"]!, "< 15", results["idle_worker_rss_mib"]! < 15)
target("failed calls during reload", results["reload_failed_calls"]!, "= 0", results["reload_failed_calls"]! == 0)
let json = try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys])
try json.write(to: URL(fileURLWithPath: outputPath))
print("\nwrote \(outputPath)")
