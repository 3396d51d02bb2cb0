// plugvisor-bench: the measurements behind scripts/bench.sh (DESIGN §8). Every number is taken
// in this run, on this machine, next to the floor it is compared with.
//
//   plugvisor-bench FIXTURES_DIR BIN_DIR OUTPUT_JSON [EXTISM_DIR]
//
// EXTISM_DIR is what scripts/extism-baseline/build.sh made: extism-host and noop.wasm, or a
// file `skipped` saying why not. wrk (scripts/bench-deps.sh) drives the HTTP gateway when it
// is on PATH. A baseline or tool that is missing leaves its keys out; the run goes on.
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
guard arguments.count == 4 || arguments.count == 5 else {
    FileHandle.standardError.write(Data("usage: plugvisor-bench FIXTURES_DIR BIN_DIR OUTPUT_JSON [EXTISM_DIR]\n".utf8))
    exit(64)
}
let fixtures = arguments[1]
let bin = arguments[2]
let outputPath = arguments[3]
let extismDirectory = arguments.count == 5 ? arguments[4] : nil
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
/// A measurement that could not be taken: a line in the table, no key in the results.
func skipped(_ label: String, _ why: String) {
    say("skipped: \(label): \(why)")
    table.append((label, "skipped: \(why)"))
}
func rounded(_ value: Double) -> Double { (value * 100).rounded() / 100 }

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

let benchConfiguration = SupervisorConfiguration(workerExecutable: "\(bin)/plugvisor-worker", watchFiles: false)
let quiet = Logger.silent("plugvisor.bench")

func supervisor(_ specs: [PluginSpec], configuration: SupervisorConfiguration = benchConfiguration) -> SupervisorCore {
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

/// Milliseconds from spawning a program (output discarded) to reaping it, with posix_spawn and
/// waitpid: Foundation's `Process.waitUntilExit` polls its run loop every 50 ms, which alone
/// made `plugvisor call` look like 60 ms.
func timeProcess(_ executable: String, _ args: [String]) -> Double {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv = ([executable] + args).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let t0 = ContinuousClock.now
    guard posix_spawn(&pid, executable, &actions, nil, argv, environ) == 0 else { return .nan }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return milliseconds(since: t0)
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

@Sendable func milliseconds(since start: ContinuousClock.Instant) -> Double {
    let (s, a) = (ContinuousClock.now - start).components
    return Double(s) * 1e3 + Double(a) / 1e15
}

func rss(_ pid: pid_t) -> Double { Double(ProcFS.residentBytes(pid: pid) ?? 0) / Double(1 << 20) }

/// The `Threads:` line of /proc/self/status: every thread of this process, the pools' included.
@Sendable func threadCount() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("Threads:") }
    return line.flatMap { Int($0.dropFirst("Threads:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
}

/// Runs async work to its end from this synchronous script.
final class Outcome<Value>: @unchecked Sendable {
    // SAFETY: written once by the task before `done` is signalled, read after.
    var value: Value?
    let done = DispatchSemaphore(value: 0)
}
func waitFor<Value>(_ work: @escaping @Sendable () async -> Value) -> Value {
    let outcome = Outcome<Value>()
    Task.detached {
        outcome.value = await work()
        outcome.done.signal()
    }
    outcome.done.wait()
    return outcome.value!
}

/// An executable of that name on PATH.
func onPath(_ name: String) -> String? {
    let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
    return directories.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    return address
}

/// A loopback port nobody listens on now (the kernel picks it; it is free again at once).
func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = loopbackAddress(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    return bound ? Int(UInt16(bigEndian: address.sin_port)) : 0
}

func acceptsConnections(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = loopbackAddress(port: port)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}

/// GET /v1/plugins every `interval` on a thread of its own, a connection per request as a
/// browser's poll may be; `stop` says how many were answered 200.
final class DashboardPoller {
    private let lock = NSLock()
    private var stopping = false
    private var answered = 0
    private var thread: Thread?

    init(port: Int, interval: TimeInterval) {
        thread = Thread { [self] in
            while !lock.withLock({ stopping }) {
                if DashboardPoller.get(port: port, path: "/v1/plugins") { lock.withLock { answered += 1 } }
                Thread.sleep(forTimeInterval: interval)
            }
        }
        thread?.start()
    }

    func stop() -> Int {
        lock.withLock { stopping = true }
        Thread.sleep(forTimeInterval: 0.2)
        return lock.withLock { answered }
    }

    static func get(port: Int, path: String) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = loopbackAddress(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return false }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        guard send(fd, request, request.count, 0) == request.count else { return false }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            answer += buffer[..<count]
        }
        return answer.starts(with: Array("HTTP/1.1 200".utf8))
    }
}

// MARK: Profiling mode

// PLUGVISOR_BENCH_PROFILE=N: only N no-op calls (2 workers, or PLUGVISOR_BENCH_PROFILE_WORKERS,
// 8 callers), for a profiler such as `perf record -a -g` to show where the time goes.
if let calls = ProcessInfo.processInfo.environment["PLUGVISOR_BENCH_PROFILE"].flatMap(Int.init) {
    let workers = ProcessInfo.processInfo.environment["PLUGVISOR_BENCH_PROFILE_WORKERS"].flatMap(Int.init) ?? 2
    let profiled = supervisor([spec("noop2", "noop", instances: workers)])
    let sample = measure(profiled, "noop2", callers: 8, calls: calls / 8)
    print(String(format: "profiled %d calls: %.0f calls/s", calls, sample.perSecond))
    profiled.shutdown()
    exit(0)
}

let (requestBytes, responseBytes) = frameSizes(context: noopContext, answer: ["success": true])

// MARK: One CPU

// PLUGVISOR_BENCH_ONE_CPU=1: the floor and a no-op call, printed as "floor_p50 noop_p50 noop_p99",
// for the run of this program that scripts/bench.sh's main run starts under `taskset -c 0`:
// every process and thread it makes (the ping-pong pair, the supervisor, its workers) inherits
// the one CPU, as when caller and worker share a core on a busy machine.
if ProcessInfo.processInfo.environment["PLUGVISOR_BENCH_ONE_CPU"] == "1" {
    let floorOne = floor(rounds: 20_000, request: requestBytes, response: responseBytes, pairs: 1)[0]
    let pinned = supervisor([spec("noop", "noop")])
    _ = measure(pinned, "noop", callers: 1, calls: 2000)
    let sample = measure(pinned, "noop", callers: 1, calls: 20_000)
    pinned.shutdown()
    print(String(format: "%.2f %.2f %.2f", floorOne.p50, sample.p50, sample.p99))
    try? FileManager.default.removeItem(atPath: scratch)
    exit(0)
}

// MARK: The floor

say("floor: socketpair ping-pong")
let floor1 = floor(rounds: 20_000, request: requestBytes, response: responseBytes, pairs: 1)[0]
let floor2 = floor(rounds: 20_000, request: requestBytes, response: responseBytes, pairs: 2)
record("floor_p50_us", floor1.p50, "floor: ping-pong p50 (\(requestBytes)+\(responseBytes) B frames)", "µs")
record("floor_p99_us", floor1.p99, "floor: ping-pong p99", "µs")
record("floor_calls_per_s", floor1.perSecond, "floor: ping-pong, one pair", "calls/s")
record("floor_calls_per_s_2p", floor2.map(\.perSecond).reduce(0, +), "floor: two ping-pong pairs at once", "calls/s")

say("the floor and a no-op call on one CPU (taskset -c 0)")
let pinnedRun = run("/usr/bin/env", ["PLUGVISOR_BENCH_ONE_CPU=1", "taskset", "-c", "0"] + arguments)
    .split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
if pinnedRun.count == 3 {
    record("floor_p50_us_1cpu", pinnedRun[0], "one CPU: floor, ping-pong p50", "µs")
    record("noop_p50_us_1cpu", pinnedRun[1], "one CPU: no-op call p50, instances 1, 1 caller", "µs")
    record("noop_p99_us_1cpu", pinnedRun[2], "one CPU: no-op call p99", "µs")
} else {
    skipped("one CPU placement", "taskset -c 0 gave no numbers")
}

// MARK: Extism's in-process host

// The same no-op call made by Extism's own runtime (wasmtime) in its host's process: what an
// in-process host costs, with no process boundary and no sandbox. One thread, then two
// threads with a plugin instance each (plugvisor's "2 workers").
say("Extism's in-process C host")
func extism(_ directory: String, threads: Int) -> [Sample] {
    run("\(directory)/extism-host", ["\(directory)/noop.wasm", "100000", "\(threads)"])
        .split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ").compactMap { Double($0) }
            return f.count == 3 ? Sample(p50: f[0], p99: f[1], perSecond: f[2]) : nil
        }
}
if let directory = extismDirectory {
    if let reason = try? String(contentsOfFile: "\(directory)/skipped", encoding: .utf8) {
        skipped("Extism in-process host", reason.trimmingCharacters(in: .whitespacesAndNewlines))
    } else {
        let one = extism(directory, threads: 1)
        let two = extism(directory, threads: 2)
        if one.count == 1 && two.count == 2 {
            record("extism_noop_p50_us", one[0].p50, "Extism in-process host: no-op call p50", "µs")
            record("extism_noop_p99_us", one[0].p99, "Extism in-process host: no-op call p99", "µs")
            record("extism_calls_per_s", one[0].perSecond, "Extism in-process host: no-op calls, 1 thread", "calls/s")
            record(
                "extism_calls_per_s_2t", two.map(\.perSecond).reduce(0, +),
                "Extism in-process host: no-op calls, 2 threads", "calls/s")
        } else {
            skipped("Extism in-process host", "\(directory)/extism-host gave no numbers")
        }
    }
} else {
    skipped("Extism in-process host", "no EXTISM_DIR given (scripts/bench.sh builds one)")
}

// MARK: The async API

// 64 tasks at once through the public async `Supervisor` (as an embedding program or the
// gateway calls it), 2 workers and the default queue (64). Each waiting call holds a thread of
// the supervisor's blocking pool, so the process's thread count is sampled meanwhile; first of
// all supervisors here, so that no other one's threads are counted.
say("async API, 64 concurrent tasks")
let asyncTasks = 64
let asyncCallsPerTask = 20_000 / asyncTasks
var asyncSpec = spec("noop2", "noop", instances: 2)
asyncSpec.maxQueue = 64
let asyncSupervisor = Supervisor(
    manifest: Manifest(plugins: [asyncSpec], path: "\(scratch)/async.yaml"),
    configuration: benchConfiguration, logger: quiet)
let threadsBefore = threadCount()
let sampling = NSLock()
var sampleThreads = true
var mostThreads = 0
let sampler = DispatchGroup()
sampler.enter()
Thread {
    while sampling.withLock({ sampleThreads }) {
        let now = threadCount()
        sampling.withLock { mostThreads = max(mostThreads, now) }
        usleep(2_000)
    }
    sampler.leave()
}.start()
let (asyncElapsed, asyncFailures) = waitFor { () async -> (Double, Int) in
    await asyncSupervisor.start()
    for _ in 0..<500 { _ = try? await asyncSupervisor.execute(plugin: "noop2", context: noopContext) }  // warm-up
    let started = ContinuousClock.now
    let failures = await withTaskGroup(of: Int.self) { group in
        for _ in 0..<asyncTasks {
            group.addTask {
                var failed = 0
                for _ in 0..<asyncCallsPerTask {
                    do { _ = try await asyncSupervisor.execute(plugin: "noop2", context: noopContext) } catch {
                        failed += 1
                    }
                }
                return failed
            }
        }
        return await group.reduce(0, +)
    }
    let elapsed = milliseconds(since: started) / 1e3
    await asyncSupervisor.shutdown()
    return (elapsed, failures)
}
sampling.withLock { sampleThreads = false }
sampler.wait()
Thread.sleep(forTimeInterval: 0.2)
say("threads: \(threadsBefore) before the async supervisor, \(threadCount()) after its shutdown")
if asyncFailures > 0 { say("warning: \(asyncFailures) failed async calls") }
record(
    "async_calls_per_s_64", Double(asyncTasks * asyncCallsPerTask) / asyncElapsed,
    "async API: no-op calls, instances 2, 64 tasks", "calls/s")
record(
    "async_threads_64", Double(mostThreads),
    "async API: most threads of the process meanwhile (\(threadsBefore) before)", "threads")

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
        if instances == 1 && callers == 8 { results["noop_calls_per_s_1w8c"] = rounded(sample.perSecond) }
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

// MARK: Extism plugins

// Extism's own plugins sit beside the checkout (../shared/extism), as in CI; without them the
// Extism measures are skipped.
let extismPlugins = URL(fileURLWithPath: fixtures).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("shared/extism").path
func extismSpec(_ name: String, _ file: String) -> PluginSpec {
    var extism = spec(name, file)
    extism.abi = .extism
    return extism
}
say("abi: extism calls")
let extismPool = supervisor([extismSpec("extism-noop", "extism-noop")])
let extismNoopContext = ExtismCall.context(function: "noop", input: [])
_ = measure(extismPool, "extism-noop", context: extismNoopContext, callers: 1, calls: 2000)
let extismNoop = measure(extismPool, "extism-noop", context: extismNoopContext, callers: 1, calls: 20_000)
record("extism_abi_noop_p50_us", extismNoop.p50, "abi: extism no-op call p50", "µs")
extismPool.shutdown()
if FileManager.default.fileExists(atPath: "\(extismPlugins)/c/allocations.wasm") {
    let allocations = supervisor([extismSpec("allocations", "\(extismPlugins)/c/allocations.wasm")])
    let context = ExtismCall.context(function: "allocations", input: [])
    let once = measure(allocations, "allocations", context: context, callers: 1, calls: 3)
    record("extism_allocations_ms", once.p50 / 1000, "Extism c/allocations.wasm: 10,000 kernel allocations", "ms")
    allocations.shutdown()
    var times: [Double] = []
    for _ in 0..<5 {
        let t0 = ContinuousClock.now
        let one = supervisor([extismSpec("go-std", "\(extismPlugins)/go/count_vowels_std.wasm")])
        times.append(milliseconds(since: t0))
        one.shutdown()
    }
    record("extism_go_std_cold_start_ms", median(times), "cold start, Extism Go-std plugin (2 MiB)", "ms")
} else {
    skipped("Extism's plugins", "\(extismPlugins) is missing (../shared/extism beside the checkout)")
}

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

say("Swift plugin from source")
// The kit's greeter as `source:`: the first start builds it (two sandboxed steps, the compiler
// and the linker); the next ones find the module in the cache and run no compiler.
let sourceFolder = "\(scratch)/swift-source"
try FileManager.default.createDirectory(atPath: sourceFolder, withIntermediateDirectories: true)
try FileManager.default.copyItem(
    atPath: "\(fixtures)/../../kits/swift/greeter.swift", toPath: "\(sourceFolder)/greeter.swift")
var sourceSpec = spec("greeter", "noop")
sourceSpec.wasm = ""
sourceSpec.source = PluginSpec.SwiftSource(path: "\(sourceFolder)/greeter.swift", written: "greeter.swift")
var sourceConfiguration = benchConfiguration
sourceConfiguration.cacheDirectory = "\(scratch)/swift-cache"
do {
    let t0 = ContinuousClock.now
    let first = supervisor([sourceSpec], configuration: sourceConfiguration)
    let built = milliseconds(since: t0)
    let served = first.status().plugins.first
    first.shutdown()
    if served?.state == .ready, let module = served?.module {
        record("swift_source_first_build_ms", built, "start from Swift source, first build (spawn to ready)", "ms")
        var times: [Double] = []
        for _ in 0..<10 {
            let t1 = ContinuousClock.now
            let again = supervisor([sourceSpec], configuration: sourceConfiguration)
            times.append(milliseconds(since: t1))
            again.shutdown()
        }
        record(
            "swift_source_cached_start_ms", median(times), "start from Swift source, module cached (spawn to ready)",
            "ms")
        times = []
        for _ in 0..<10 {
            let t1 = ContinuousClock.now
            let again = supervisor([spec("greeter", module)], configuration: sourceConfiguration)
            times.append(milliseconds(since: t1))
            again.shutdown()
        }
        record(
            "swift_source_module_start_ms", median(times), "start from the same module as a .wasm (spawn to ready)",
            "ms")
    } else {
        say("  skipped: the greeter did not build (is swiftc on PATH?)")
    }
}

say("restart after a crash")
// Each crash is the first in its window (a one-off crash), which is replaced at once; repeated
// crashes back off by design and are not what this measures. With `standby: 1` a spare worker
// answers instead, and the replacement becomes the next spare.
func restartToNextAnswer(standby: Int) -> Double {
    var crashSpec = spec("noop", "noop")
    crashSpec.standby = standby
    crashSpec.restart = .init(
        max: 10_000, within: .milliseconds(1), backoffMin: .milliseconds(100), backoffMax: .seconds(1))
    let crashing = supervisor([crashSpec])
    var restarts: [Double] = []
    for _ in 0..<10 {
        // Both workers (the serving one and its spare) are up before each crash.
        while crashing.status().plugins[0].workers.filter({ $0.state == .idle || $0.state == .standby }).count
            < 1 + standby
        {
            Thread.sleep(forTimeInterval: 0.01)
        }
        _ = crashing.execute(plugin: "noop", context: noopContext)
        let pid = crashing.status().plugins[0].workers.first { $0.state == .idle }!.pid
        let t0 = ContinuousClock.now
        kill(pid, SIGKILL)
        // The next answered call, by another worker.
        while true {
            if case .success = crashing.execute(plugin: "noop", context: noopContext),
                crashing.status().plugins[0].workers.first(where: { $0.state == .idle })?.pid != pid
            {
                break
            }
        }
        restarts.append(milliseconds(since: t0))
        Thread.sleep(forTimeInterval: 0.2)
    }
    crashing.shutdown()
    return median(restarts)
}
record("restart_ms", restartToNextAnswer(standby: 0), "restart: worker SIGKILLed to next answered call", "ms")
record(
    "standby_restart_ms", restartToNextAnswer(standby: 1), "restart with standby: 1 (a spare answers)", "ms")

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
let cliTimes = (0..<30).map { _ in timeProcess("\(bin)/plugvisor", ["call", "p0", "--control", control]) }
// What the same call looks like timed through Foundation's Process (the old measurement).
var processTimes: [Double] = []
for _ in 0..<10 {
    let t0 = ContinuousClock.now
    _ = run("\(bin)/plugvisor", ["call", "p0", "--control", control])
    processTimes.append(milliseconds(since: t0))
}
// The process alone: start, parse the arguments, print help, exit; no socket.
let helpTimes = (0..<30).map { _ in timeProcess("\(bin)/plugvisor", ["--help"]) }
Thread.sleep(forTimeInterval: 0.5)
record("supervisor_rss_mib_20_plugins", rss(server.processIdentifier), "supervisor RSS with 20 plugins", "MiB")
record("cli_call_p50_ms", median(cliTimes), "a call through the CLI (new process each time), p50", "ms")
record(
    "cli_call_p50_ms_foundation_process", median(processTimes),
    "the same, timed through Foundation's Process (waitUntilExit)", "ms")
record("cli_help_p50_ms", median(helpTimes), "plugvisor --help (the process alone), p50", "ms")
_ = run("\(bin)/plugvisor", ["stop", "--control", control])
server.waitUntilExit()

// MARK: The HTTP gateway

// wrk against `plugvisor start --http`, a no-op plugin with 2 workers: one connection for the
// latency of a single caller (comparable with the library API's no-op p50), 8 for throughput
// (comparable with 2 workers × 8 callers), and GET /healthz, which reaches no worker, for
// what the HTTP server costs by itself. wrk shares the 2 CPUs with the supervisor.
say("HTTP gateway (wrk)")
struct WrkRun {
    var p50Micros: Double
    var requestsPerSecond: Double
    var failed: Int
}
/// wrk's `--latency` report: the 50% line, Requests/sec, and non-2xx answers and socket errors.
func wrk(_ wrkPath: String, _ url: String, connections: Int, script: String? = nil) -> WrkRun? {
    var arguments = ["-t", "\(min(connections, 2))", "-c", "\(connections)", "-d", "5s", "--latency"]
    if let script { arguments += ["-s", script] }
    let output = run(wrkPath, arguments + [url])
    var p50: Double?
    var perSecond: Double?
    var failed = 0
    for line in output.split(separator: "\n") {
        let fields = line.split(separator: " ")
        if fields.first == "50%", fields.count == 2 {
            let text = String(fields[1])
            for (unit, scale) in [("us", 1.0), ("ms", 1e3), ("s", 1e6)] where text.hasSuffix(unit) {
                p50 = Double(text.dropLast(unit.count)).map { $0 * scale }
                break
            }
        } else if line.hasPrefix("Requests/sec:") {
            perSecond = Double(fields.last ?? "")
        } else if line.contains("Non-2xx or 3xx responses:") || line.contains("Socket errors:") {
            // The counts after the colon ("Non-2xx or 3xx responses: 12", "connect 0, read 0, ...").
            let counts = line.split(separator: ":", maxSplits: 1).last ?? ""
            failed += counts.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }.reduce(0, +)
        }
    }
    guard let p50, let perSecond else {
        say("wrk gave no numbers:\n\(output)")
        return nil
    }
    if failed > 0 { say("warning: \(failed) failed requests to \(url)") }
    return WrkRun(p50Micros: p50, requestsPerSecond: perSecond, failed: failed)
}
if let wrkPath = onPath("wrk") {
    let port = freeLoopbackPort()
    try "plugins:\n  - {name: noop, wasm: \(fixtures)/noop.wasm, instances: 2, max_queue: 1024}\n"
        .write(toFile: "\(scratch)/http.yaml", atomically: true, encoding: .utf8)
    let gatewayControl = "\(scratch)/gateway.sock"
    let gateway = Process()
    gateway.executableURL = URL(fileURLWithPath: "\(bin)/plugvisor")
    gateway.arguments = [
        "start", "\(scratch)/http.yaml", "--control", gatewayControl, "--log-level", "error", "--http",
        "127.0.0.1:\(port)",
    ]
    _ = FileManager.default.createFile(atPath: "\(scratch)/gateway.log", contents: nil)
    gateway.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(scratch)/gateway.log"))
    try gateway.run()
    var listening = false
    for _ in 0..<200 where !listening {
        listening = acceptsConnections(port: port)
        if !listening { Thread.sleep(forTimeInterval: 0.05) }
    }
    let base = "http://127.0.0.1:\(port)"
    let post = "\(scratch)/post.lua"
    try "wrk.method = \"POST\"\nwrk.body = \"{}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        .write(toFile: post, atomically: true, encoding: .utf8)
    if !listening {
        skipped(
            "HTTP gateway",
            "the gateway did not listen: "
                + ((try? String(contentsOfFile: "\(scratch)/gateway.log", encoding: .utf8)) ?? ""))
    } else {
        _ = wrk(wrkPath, "\(base)/v1/plugins/noop/execute", connections: 2, script: post)  // warm-up
        if let single = wrk(wrkPath, "\(base)/v1/plugins/noop/execute", connections: 1, script: post) {
            record("http_noop_p50_us", single.p50Micros, "HTTP: POST execute of a no-op, 1 connection, p50", "µs")
        }
        if let loaded = wrk(wrkPath, "\(base)/v1/plugins/noop/execute", connections: 8, script: post) {
            record(
                "http_noop_requests_per_s", loaded.requestsPerSecond,
                "HTTP: POST execute of a no-op, instances 2, 8 connections", "requests/s")
            record("http_noop_p50_us_8c", loaded.p50Micros, "HTTP: POST execute, 8 connections, p50", "µs")
        }
        // What open dashboards cost the calls: the same load while a poller reads what ten pages
        // would (each page polls `GET /v1/plugins` once a second: ten polls a second).
        let polls = DashboardPoller(port: port, interval: 0.1)
        let watched = wrk(wrkPath, "\(base)/v1/plugins/noop/execute", connections: 8, script: post)
        let served = polls.stop()
        if let watched, let unwatched = results["http_noop_requests_per_s"], served > 0 {
            record(
                "http_noop_requests_per_s_dashboards", watched.requestsPerSecond,
                "HTTP: the same, while ten dashboards poll (\(served) polls answered)", "requests/s")
            record(
                "dashboard_cost_ratio", watched.requestsPerSecond / unwatched,
                "HTTP: requests/s with ten dashboards / without", "×")
        }
        if let health = wrk(wrkPath, "\(base)/healthz", connections: 8) {
            record(
                "http_healthz_requests_per_s", health.requestsPerSecond, "HTTP: GET /healthz, 8 connections",
                "requests/s")
            record("http_healthz_p50_us", health.p50Micros, "HTTP: GET /healthz, 8 connections, p50", "µs")
        }
    }
    _ = run("\(bin)/plugvisor", ["stop", "--control", gatewayControl])
    gateway.waitUntilExit()
} else {
    skipped("HTTP gateway", "wrk is not installed (scripts/bench-deps.sh installs it)")
}

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
// Against Extism's in-process host, when it was measured: p50 to p50, and 2 workers × 8
// callers to Extism's 2 threads.
if let extismP50 = results["extism_noop_p50_us"], let extismTwoThreads = results["extism_calls_per_s_2t"] {
    results["noop_p50_vs_extism"] = rounded(results["noop_p50_us"]! / extismP50)
    results["calls_per_s_2w_vs_extism"] = rounded(results["noop_calls_per_s_2w"]! / extismTwoThreads)
}
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
target("no-op p50 / floor p50", results["noop_p50_vs_floor"]!, "≤ 1.5", results["noop_p50_vs_floor"]! <= 1.5)
target("no-op p99 / no-op p50", results["noop_p99_vs_p50"]!, "≤ 5", results["noop_p99_vs_p50"]! <= 5)
if let floorOne = results["floor_p50_us_1cpu"], let noopOne = results["noop_p50_us_1cpu"],
    let noopOneP99 = results["noop_p99_us_1cpu"]
{
    results["noop_p50_vs_floor_1cpu"] = rounded(noopOne / floorOne)
    results["noop_p99_vs_p50_1cpu"] = rounded(noopOneP99 / noopOne)
    target("one CPU: no-op p50 / floor p50", noopOne / floorOne, "≤ 1.5", noopOne / floorOne <= 1.5)
    target("one CPU: no-op p99 / no-op p50", noopOneP99 / noopOne, "≤ 5", noopOneP99 / noopOne <= 5)
}
target(
    "2 workers × 8 callers / two ping-pong pairs", results["throughput_2w_vs_floor_2p"]!, "≥ 0.5 (stretch 0.7)",
    results["throughput_2w_vs_floor_2p"]! >= 0.5)
let oneWorkerVsPair = results["noop_calls_per_s_1w8c"]! / results["floor_calls_per_s"]!
results["throughput_1w8c_vs_floor_1p"] = rounded(oneWorkerVsPair)
target("1 worker × 8 callers / one ping-pong pair", oneWorkerVsPair, "≥ 2", oneWorkerVsPair >= 2)
target("cold start, small module (ms)", results["cold_start_ms"]!, "< 10", results["cold_start_ms"]! < 10)
if let cached = results["swift_source_cached_start_ms"] {
    // The cache key is hashed from the sources and the kit: that is all a cached start adds.
    results["swift_source_cached_vs_wasm"] = rounded(cached / results["swift_source_module_start_ms"]!)
    target(
        "start from cached Swift source / its .wasm", results["swift_source_cached_vs_wasm"]!, "≤ 1.5",
        results["swift_source_cached_vs_wasm"]! <= 1.5)
}
target("restart to next answered call (ms)", results["restart_ms"]!, "< 20", results["restart_ms"]! < 20)
target(
    "restart with a spare (standby: 1) (ms)", results["standby_restart_ms"]!, "≤ 2", results["standby_restart_ms"]! <= 2
)
target("idle worker RSS (MiB)", results["idle_worker_rss_mib"]!, "< 15", results["idle_worker_rss_mib"]! < 15)
results["extism_noop_vs_noop"] = rounded(results["extism_abi_noop_p50_us"]! / results["noop_p50_us"]!)
target(
    "abi: extism no-op p50 / plugvisor no-op p50", results["extism_noop_vs_noop"]!, "≤ 1.2",
    results["extism_noop_vs_noop"]! <= 1.2)
if let allocations = results["extism_allocations_ms"], let goStart = results["extism_go_std_cold_start_ms"] {
    target("Extism c/allocations.wasm (ms)", allocations, "< 1000", allocations < 1000)
    target("cold start, Extism Go-std plugin (ms)", goStart, "< 100", goStart < 100)
}
target("failed calls during reload", results["reload_failed_calls"]!, "= 0", results["reload_failed_calls"]! == 0)
target(
    "plugvisor call from the shell, p50 (ms)", results["cli_call_p50_ms"]!, "≤ 15", results["cli_call_p50_ms"]! <= 15)
if let dashboards = results["dashboard_cost_ratio"] {
    // Two wrk runs of 5 s differ by a few per cent by themselves.
    target("HTTP requests/s with ten dashboards polling / without", dashboards, "≥ 0.95", dashboards >= 0.95)
}
if let vsExtism = results["noop_p50_vs_extism"], let throughputVsExtism = results["calls_per_s_2w_vs_extism"] {
    target("no-op p50 / Extism in-process p50", vsExtism, "≤ 3 (stretch)", vsExtism <= 3)
    target(
        "2 workers × 8 callers / Extism 2 threads", throughputVsExtism, "≥ 0.5 (stretch)", throughputVsExtism >= 0.5)
} else {
    print("no-op p50 and calls/s / Extism's: skipped (no Extism baseline in this run)")
}
let json = try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys])
try json.write(to: URL(fileURLWithPath: outputPath))
print("\nwrote \(outputPath)")
