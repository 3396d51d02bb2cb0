import Foundation
import Logging
import PlugvisorManifest
import PlugvisorPosix
import PlugvisorProtocol

/// One plugin: its module bytes, its pool of workers, its state and its counters.
final class PluginRuntime: @unchecked Sendable {
    enum State: Equatable {
        case starting
        case ready
        /// Will not serve until restarted; `code` is what callers get.
        case failed(code: PluginError.Code, reason: String)
        case stopped
    }

    // SAFETY: `spec`, `environment` and `logger` are immutable; everything else is under `lock`.
    let spec: PluginSpec
    private let environment: SupervisorEnvironment
    private let logger: Logger
    private let lock = Lock()

    private var state: State = .starting
    private var module: (bytes: [UInt8], sha256: String)?
    private var meta: JSONValue?
    private var workers: [WorkerHandle] = []
    private var idle: [WorkerHandle] = []
    private var waiting = 0
    private var generation = 0
    private var restarts = RestartTracker(policy: .default)
    private var shuttingDown = false
    private var lastError: String?

    private var calls = 0
    private var errorsByCode: [String: Int] = [:]
    private var latencies = LatencyWindow(capacity: 2048)

    init(spec: PluginSpec, environment: SupervisorEnvironment, logger: Logger) {
        self.spec = spec
        self.environment = environment
        var logger = logger
        logger[metadataKey: "plugin"] = "\(spec.name)"
        self.logger = logger
        restarts = RestartTracker(policy: spec.restart)
    }

    // MARK: Starting

    /// Reads and checks the module, then starts `instances` workers and waits for them.
    /// Never throws: a plugin that cannot start is `failed`, with the reason in its status.
    func start() {
        switch Self.readModule(spec) {
        case let .failure(error):
            fail(code: .loadFailed, reason: error.message)
            return
        case let .success(module):
            lock.withLock { self.module = module }
        }
        let group = DispatchGroup()
        for _ in 0..<spec.instances {
            group.enter()
            startWorker { group.leave() }
        }
        group.wait()
    }

    static func readModule(_ spec: PluginSpec) -> Result<(bytes: [UInt8], sha256: String), PluginError> {
        let module: ModuleFile
        do { module = try ModuleFile(path: spec.wasm) } catch {
            return .failure(PluginError(.loadFailed, plugin: spec.name, error.description))
        }
        if let pin = spec.sha256, pin != module.sha256 {
            return .failure(PluginError(
                .loadFailed, plugin: spec.name, "sha256 of \(spec.wasm) is \(module.sha256), the manifest pins \(pin)"))
        }
        return .success((module.bytes, module.sha256))
    }

    /// Spawns one worker and runs its handshake on a thread of its own; `done` runs when it is
    /// ready or has failed.
    private func startWorker(done: @escaping @Sendable () -> Void = {}) {
        let thread = Thread { [self] in
            defer { done() }
            guard let (bytes, generation) = lock.withLock({ () -> ([UInt8], Int)? in
                guard let module, !shuttingDown, state != .stopped else { return nil }
                return (module.bytes, self.generation)
            }) else { return }
            do throws(PluginError) {
                let worker = try environment.launchWorker(
                    plugin: spec, module: bytes, generation: generation, logger: logger
                ) { [weak self] worker, exit in self?.workerExited(worker, exit) }
                let ready = try handshake(worker)
                lock.withLock {
                    if shuttingDown || state == .stopped || worker.hasExited {
                        worker.kill(because: .stopped)
                        return
                    }
                    meta = ready.meta
                    worker.noteMemory(ready.memoryBytes)
                    workers.append(worker)
                    idle.append(worker)
                    if state == .starting { state = .ready }
                    lock.broadcast()
                }
                logger.info("worker ready", metadata: ["pid": "\(worker.pid)", "generation": "\(generation)"])
            } catch {
                fail(code: error.code, reason: error.message)
            }
        }
        thread.name = "plugvisor-start-\(spec.name)"
        thread.start()
    }

    /// hello → load → ready, within the plugin's timeout (which also bounds a runaway start function).
    private func handshake(_ worker: WorkerHandle) throws(PluginError) -> ReadyInfo {
        let deadline = ContinuousClock.now + max(spec.timeout, .seconds(2))
        do {
            let hello = try worker.channel.receive(WorkerMessage.self, deadline: deadline)
            guard case let .hello(h) = hello else {
                worker.kill(because: .protocolViolation)
                throw PluginError(.protocolViolation, plugin: spec.name, "worker did not start with hello")
            }
            guard h.plugvisor == ProtocolVersion.current else {
                worker.kill(because: .protocolViolation)
                throw PluginError(.protocolViolation, plugin: spec.name,
                    "worker speaks protocol \(h.plugvisor), this supervisor \(ProtocolVersion.current): reinstall plugvisor-worker")
            }
            try worker.channel.send(SupervisorMessage.load(loadRequest()))
            while true {
                switch try worker.channel.receive(WorkerMessage.self, deadline: deadline) {
                case let .ready(info): return info
                case let .loadFailed(reason):
                    worker.kill(because: .loadFailed)
                    throw PluginError(.loadFailed, plugin: spec.name, reason)
                case let .log(line): guestLog(line, pid: worker.pid)
                default:
                    worker.kill(because: .protocolViolation)
                    throw PluginError(.protocolViolation, plugin: spec.name, "unexpected message during load")
                }
            }
        } catch let error as ChannelError {
            switch error {
            case .timedOut:
                worker.kill(because: .timeout)
                throw PluginError(.loadFailed, plugin: spec.name,
                    "loading took longer than \(max(spec.timeout, .seconds(2))) (a runaway start function?)")
            case .closed:
                _ = worker.awaitExit(timeout: .seconds(2))
                throw PluginError(.loadFailed, plugin: spec.name, "worker died while loading: \(worker.crashDescription())")
            default:
                worker.kill(because: .protocolViolation)
                throw PluginError(.protocolViolation, plugin: spec.name, "during load: \(error)")
            }
        } catch let error as PluginError {
            throw error
        } catch {
            throw PluginError(.internalError, plugin: spec.name, "\(error)")
        }
    }

    private func loadRequest() -> LoadRequest {
        LoadRequest(
            plugin: spec.name,
            abi: spec.abi == .wasiCommand ? .wasiCommand : .plugvisor,
            memoryLimit: spec.memory,
            fuel: spec.fuel,
            env: spec.env,
            config: spec.config,
            preopens: spec.filesystem.map { Preopen(host: $0.host, guest: $0.guest, readOnly: $0.mode == .readOnly) },
            workerUser: geteuid() == 0 ? environment.configuration.workerUser : nil,
            sandboxDrill: environment.configuration.sandboxDrill)
    }

    private func fail(code: PluginError.Code, reason: String) {
        let doomed = lock.withLock { () -> [WorkerHandle] in
            state = .failed(code: code, reason: reason)
            lastError = reason
            lock.broadcast()
            return workers
        }
        doomed.forEach { $0.kill(because: .stopped) }
        logger.error("plugin failed: \(reason)")
    }

    // MARK: Worker exits

    private func workerExited(_ worker: WorkerHandle, _ exit: ProcessExit) {
        let decision = lock.withLock { () -> RestartTracker.Decision? in
            let wasServing = workers.contains { $0 === worker }
            workers.removeAll { $0 === worker }
            idle.removeAll { $0 === worker }
            guard wasServing, !shuttingDown, state == .ready || state == .starting else { return nil }
            lastError = worker.crashDescription()
            let decision = restarts.workerDied(at: .now, uptime: .now - worker.startedAt)
            if case let .giveUp(count) = decision {
                state = .failed(code: .failed, reason: "restarted \(count) times within \(spec.restart.within); last: \(lastError ?? "")")
                lock.broadcast()
            }
            return decision
        }
        let reason = worker.killedReason().map { "killed by supervisor (\($0))" } ?? "\(exit)"
        switch decision {
        case nil:
            logger.debug("worker ended", metadata: ["pid": "\(worker.pid)", "exit": "\(reason)"])
        case let .restart(after)?:
            logger.warning("worker ended, restarting in \(after)", metadata: ["pid": "\(worker.pid)", "exit": "\(reason)"])
            DispatchQueue.global().asyncAfter(deadline: .now() + after.timeInterval) { [self] in startWorker() }
        case .giveUp?:
            logger.error("worker ended and the restart limit is reached: plugin failed", metadata: ["pid": "\(worker.pid)", "exit": "\(reason)"])
        }
    }

    // MARK: Calls

    /// Runs `execute` with `context` on an idle worker, waiting in the bounded queue if needed.
    /// Every call returns: a guest result or a typed error; none waits past the plugin's timeout.
    func execute(context: JSONValue) -> Result<JSONValue, PluginError> {
        let started = ContinuousClock.now
        let deadline = started + spec.timeout
        let result: Result<JSONValue, PluginError>
        switch checkout(deadline: deadline) {
        case let .failure(error):
            result = .failure(error)
        case let .success(worker):
            result = perform(CallRequest(id: worker.takeCallID(), fn: .execute, payload: context), on: worker, deadline: deadline)
            checkin(worker)
        }
        record(result, micros: Int((ContinuousClock.now - started).microseconds))
        return result
    }

    private func checkout(deadline: ContinuousClock.Instant) -> Result<WorkerHandle, PluginError> {
        lock.withLock {
            var queued = false
            defer { if queued { waiting -= 1 } }
            while true {
                switch state {
                case let .failed(code, reason): return .failure(PluginError(code, plugin: spec.name, reason))
                case .stopped: return .failure(PluginError(.stopped, plugin: spec.name, "plugin is stopped"))
                case .starting, .ready: break
                }
                if shuttingDown { return .failure(PluginError(.stopped, plugin: spec.name, "supervisor is shutting down")) }
                if let worker = idle.popLast() { return .success(worker) }
                if !queued {
                    guard waiting < spec.maxQueue else {
                        return .failure(PluginError(.overloaded, plugin: spec.name,
                            "all \(spec.instances) workers busy and \(spec.maxQueue) calls queued"))
                    }
                    waiting += 1
                    queued = true
                }
                if !lock.wait(until: deadline) {
                    return .failure(PluginError(.timeout, plugin: spec.name,
                        "no worker became free within \(spec.timeout)"))
                }
            }
        }
    }

    private func checkin(_ worker: WorkerHandle) {
        lock.withLock {
            guard !worker.hasExited, worker.killedReason() == nil, workers.contains(where: { $0 === worker }) else { return }
            idle.append(worker)
            lock.broadcast()
        }
    }

    /// Sends one call and reads until its result, forwarding guest log lines on the way.
    private func perform(_ request: CallRequest, on worker: WorkerHandle, deadline: ContinuousClock.Instant)
        -> Result<JSONValue, PluginError>
    {
        do {
            try worker.channel.send(SupervisorMessage.call(request))
            while true {
                switch try worker.channel.receive(WorkerMessage.self, deadline: deadline) {
                case let .log(line):
                    guestLog(line, pid: worker.pid)
                case let .host(hostRequest):
                    try worker.channel.send(SupervisorMessage.hostResult(serve(hostRequest, deadline: deadline)))
                case let .result(result) where result.id == request.id:
                    worker.noteMemory(result.stats?.memoryBytes)
                    if let error = result.error {
                        return .failure(PluginError(error.code, plugin: spec.name, error.message))
                    }
                    guard let payload = result.payload, payload["success"]?.boolValue != nil else {
                        worker.kill(because: .protocolViolation)
                        return .failure(PluginError(.protocolViolation, plugin: spec.name,
                            "worker \(worker.pid) sent a result without a success flag; it was killed"))
                    }
                    return .success(payload)
                default:
                    worker.kill(because: .protocolViolation)
                    return .failure(PluginError(.protocolViolation, plugin: spec.name,
                        "worker \(worker.pid) sent an unexpected message; it was killed"))
                }
            }
        } catch .timedOut {
            worker.kill(because: .timeout)
            return .failure(PluginError(.timeout, plugin: spec.name,
                "call ran longer than \(spec.timeout); worker \(worker.pid) was killed and is being replaced"))
        } catch .closed {
            _ = worker.awaitExit(timeout: .seconds(2))
            if let reason = worker.killedReason(), reason != .protocolViolation {
                return .failure(PluginError(reason, plugin: spec.name, "worker \(worker.pid) was killed (\(reason))"))
            }
            return .failure(PluginError(.workerCrashed, plugin: spec.name, worker.crashDescription()))
        } catch {
            worker.kill(because: .protocolViolation)
            return .failure(PluginError(.protocolViolation, plugin: spec.name,
                "worker \(worker.pid) broke the protocol (\(error)); it was killed"))
        }
    }

    /// A host service the guest asked for during its call; refused unless the manifest grants it.
    private func serve(_ request: HostRequest, deadline: ContinuousClock.Instant) -> HostResult {
        switch request.op {
        case "http":
            let answer = HTTPBroker.perform(request.request, allowedHosts: spec.allowedHosts, deadline: deadline)
            if let error = answer["error"]?.stringValue { logger.notice("http_request refused: \(error)") }
            return HostResult(id: request.id, result: answer)
        default:
            return HostResult(id: request.id, result: ["error": .string("unknown host service \(request.op)")])
        }
    }

    private func guestLog(_ line: LogLine, pid: pid_t) {
        let level = Logger.Level(rawValue: line.level) ?? .info
        logger.log(level: level, "\(line.message)", metadata: ["pid": "\(pid)", "source": "guest"])
    }

    private func record(_ result: Result<JSONValue, PluginError>, micros: Int) {
        lock.withLock {
            calls += 1
            latencies.add(micros)
            if case let .failure(error) = result { errorsByCode[error.code.rawValue, default: 0] += 1 }
        }
    }

    // MARK: Status and shutdown

    func status() -> PluginStatus {
        lock.withLock {
            let stateName: String
            switch state {
            case .starting: stateName = "starting"
            case .ready: stateName = "ready"
            case .failed: stateName = "failed"
            case .stopped: stateName = "stopped"
            }
            let idleSet = Set(idle.map { ObjectIdentifier($0) })
            let workerStatus = workers.map { worker in
                WorkerStatus(
                    pid: worker.pid, state: idleSet.contains(ObjectIdentifier(worker)) ? "idle" : "busy",
                    uptimeSeconds: Double((ContinuousClock.now - worker.startedAt).microseconds) / 1e6,
                    rssBytes: worker.process.residentBytes, memoryBytes: worker.memoryBytes)
            }
            var reason = lastError
            if case let .failed(_, why) = state { reason = why }
            return PluginStatus(
                name: spec.name, version: meta?["version"]?.stringValue, state: stateName, workers: workerStatus,
                calls: calls, errors: errorsByCode.values.reduce(0, +), errorsByCode: errorsByCode,
                p50Micros: latencies.percentile(50), p99Micros: latencies.percentile(99),
                restarts: restarts.total, lastError: reason, sha256: module?.sha256)
        }
    }

    /// Refuses new calls, lets calls in flight finish until `deadline`, then ends every worker.
    func shutdown(deadline: ContinuousClock.Instant) {
        lock.withLock {
            shuttingDown = true
            lock.broadcast()
            while idle.count < workers.count { if !lock.wait(until: deadline) { break } }
        }
        let all = lock.withLock { workers }
        for worker in all {
            // Closing our end is the worker's cue to call destroy() and exit; SIGKILL if it lingers.
            _ = shutdownSocket(worker.channel.descriptor)
        }
        for worker in all where worker.awaitExit(timeout: .seconds(2)) == nil {
            worker.kill(because: .stopped)
            _ = worker.awaitExit(timeout: .seconds(2))
        }
        lock.withLock { state = .stopped }
    }

    private func shutdownSocket(_ descriptor: OwnedDescriptor) -> Int32 {
        Glibc.shutdown(descriptor.rawValue, Int32(SHUT_RDWR))
    }
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

    func percentile(_ p: Int) -> Int? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        return sorted[min(sorted.count - 1, (sorted.count * p) / 100)]
    }
}

extension Duration {
    var microseconds: Int64 {
        let (seconds, attos) = components
        return seconds * 1_000_000 + attos / 1_000_000_000_000
    }
    var timeInterval: Double { Double(microseconds) / 1e6 }
}
