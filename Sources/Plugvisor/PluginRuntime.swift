import Foundation
import Logging
import PlugvisorManifest
import PlugvisorPosix
import PlugvisorProtocol

/// One plugin at run time: performs what its `PluginStateMachine` decides (spawn, kill, retire
/// workers), runs calls on its workers, and keeps its counters.
final class PluginRuntime: @unchecked Sendable {
    typealias WorkerID = PluginStateMachine.WorkerID

    // SAFETY: `name`, `environment`, `logger` and `metrics` are immutable; everything else is under `lock`.
    let name: String
    let environment: SupervisorEnvironment
    let logger: Logger
    let metrics: PluginMetrics
    private let lock = Lock()

    private var machine: PluginStateMachine
    private var handles: [WorkerID: WorkerHandle] = [:]
    /// The module of each live generation (the serving one and a reload's), as hashed.
    private var modules: [Int: ModuleVersion] = [:]
    private var metas: [Int: JSONValue] = [:]
    private var lastReloadAt: Date?
    private var calls = 0
    private var errorsByCode: [String: Int] = [:]
    private var latencies = LatencyWindow(capacity: 2048)
    /// Workers being started, so that `start` can wait for the first ones.
    private let starting = DispatchGroup()

    struct ModuleVersion {
        var bytes: [UInt8]
        var sha256: String
    }

    init(spec: PluginSpec, environment: SupervisorEnvironment, logger: Logger) {
        name = spec.name
        self.environment = environment
        var logger = logger
        logger[metadataKey: "plugin"] = "\(spec.name)"
        self.logger = logger
        metrics = PluginMetrics(plugin: spec.name)
        machine = PluginStateMachine(spec: spec)
        let user = environment.workerUser(for: spec.name)
        if let user { self.logger.info("workers run as uid \(user.uid), gid \(user.gid)") }
        for problem in GrantAccess.problems(spec.filesystem, credentials: .worker(user)) { self.logger.warning("\(problem)") }
    }

    /// The spec of the generation that serves.
    var spec: PluginSpec { lock.withLock { machine.spec } }

    // MARK: Lifecycle

    /// Reads and checks the module, starts `instances` workers and waits until each is ready or
    /// failed. Never throws: a plugin that cannot start is `failed`, with the reason in its status.
    func start() {
        begin { machine in machine.begin() }
    }

    /// Reads the module, then lets the machine start workers with `start` (or fails the plugin
    /// when the module cannot be read), and waits for the workers to be ready or failed.
    private func begin(_ start: (inout PluginStateMachine) -> [PluginStateMachine.Action]) {
        let read = Self.readModule(spec)
        perform(lock.withLock {
            let actions: [PluginStateMachine.Action]
            switch read {
            case let .failure(error): actions = machine.fail(code: .loadFailed, reason: error.message)
            case let .success(module):
                actions = start(&machine)
                modules = [machine.generation: module]
            }
            lock.broadcast()
            return actions
        })
        if case let .failure(error) = read { logger.error("plugin failed: \(error.message)") }
        starting.wait()
    }

    static func readModule(_ spec: PluginSpec) -> Result<ModuleVersion, PluginError> {
        let module: ModuleFile
        do { module = try ModuleFile(path: spec.wasm) } catch {
            return .failure(PluginError(.loadFailed, plugin: spec.name, error.description))
        }
        if let pin = spec.sha256, pin != module.sha256 {
            return .failure(PluginError(
                .loadFailed, plugin: spec.name, "sha256 of \(spec.wasm) is \(module.sha256), the manifest pins \(pin)"))
        }
        return .success(ModuleVersion(bytes: module.bytes, sha256: module.sha256))
    }

    /// `plugvisor kill NAME`.
    func kill() {
        perform(lock.withLock {
            let actions = machine.kill()
            lock.broadcast()
            return actions
        })
        logger.warning("killed by name")
    }

    /// `plugvisor restart NAME`: re-reads the module and starts fresh workers (killing any that
    /// still run), with a clean restart count and circuit.
    func restart() {
        logger.info("restarting")
        begin { machine in machine.restart() }
    }

    /// Reloads the plugin with `newSpec` (its module re-read from disk): a new generation of
    /// workers is started and checked (load and meta) while the old one serves; then new calls
    /// go to it and the old one finishes its calls and ends. If the new version cannot start,
    /// the old one goes on serving and the reason is kept for `status`.
    /// - Parameter force: reload even when neither the module's hash nor the spec changed.
    func reload(spec newSpec: PluginSpec, force: Bool) -> PluginReloadResult {
        let read = Self.readModule(newSpec)
        if case let .failure(error) = read {
            lock.withLock {
                machine.noteReloadFailed(reason: error.message)
                lastReloadAt = Date()
            }
            logger.error("reload refused: \(error.message)")
            metrics.recordReload(succeeded: false)
            return .failed(error.message)
        }
        guard case let .success(module) = read else { return .failed("unreadable") }
        let actions: [PluginStateMachine.Action]? = lock.withLock {
            let serving = modules[machine.generation]?.sha256
            if !force && serving == module.sha256 && newSpec == machine.spec && machine.pending == nil && machine.state == .ready {
                return nil
            }
            let actions = machine.beginReload(spec: newSpec)
            modules[machine.pending?.generation ?? machine.generation] = module
            lastReloadAt = Date()
            return actions
        }
        guard let actions else { return .unchanged }
        logger.info("reloading", metadata: ["sha256": "\(module.sha256.prefix(12))"])
        perform(actions)
        starting.wait()
        let outcome = lock.withLock { () -> PluginStateMachine.ReloadOutcome? in
            let live = Set([machine.generation] + (machine.pending.map { [$0.generation] } ?? []))
            modules = modules.filter { live.contains($0.key) }
            metas = metas.filter { live.contains($0.key) }
            return machine.lastReload
        }
        switch outcome {
        case let .succeeded(generation)?:
            metrics.recordReload(succeeded: true)
            logger.info("reloaded", metadata: ["generation": "\(generation)", "sha256": "\(module.sha256.prefix(12))"])
            return .reloaded(generation: generation, sha256: module.sha256)
        case let .failed(reason)?:
            metrics.recordReload(succeeded: false)
            logger.error("reload failed, the previous version goes on serving: \(reason)")
            return .failed(reason)
        case nil:
            return .failed("the reload did not finish")
        }
    }

    /// Refuses new calls, lets calls in flight finish until `deadline`, then ends every worker.
    func shutdown(deadline: ContinuousClock.Instant) {
        perform(lock.withLock {
            let actions = machine.shutdown()
            lock.broadcast()
            return actions
        })
        lock.withLock {
            while !handles.isEmpty { if !lock.wait(until: deadline) { break } }
        }
        // Whoever is still there past the grace period is killed.
        let stragglers = lock.withLock { Array(handles.values) }
        for worker in stragglers {
            worker.kill(because: .stopped)
            _ = worker.awaitExit(timeout: .seconds(2))
        }
    }

    // MARK: Performing actions

    private func perform(_ actions: [PluginStateMachine.Action]) {
        for action in actions {
            switch action {
            case let .spawn(id, delay):
                starting.enter()
                if delay == .zero {
                    startWorker(id)
                } else {
                    DispatchQueue.global().asyncAfter(deadline: .now() + delay.timeInterval) { [self] in startWorker(id) }
                }
            case let .kill(id, reason):
                lock.withLock { handles[id] }?.kill(because: reason)
            case let .retire(id):
                // Closing our end is the worker's cue to call destroy() and exit.
                if let worker = lock.withLock({ handles[id] }) {
                    Glibc.shutdown(worker.channel.descriptor.rawValue, Int32(SHUT_RDWR))
                }
            }
        }
    }

    /// Spawns worker `id` and runs its handshake on a thread of its own.
    private func startWorker(_ id: WorkerID) {
        let thread = Thread { [self] in
            defer { starting.leave() }
            guard let (bytes, spec, generation) = lock.withLock({ () -> ([UInt8], PluginSpec, Int)? in
                guard let worker = machine.workers[id], worker.phase == .starting, let spec = machine.spec(of: id),
                    let module = modules[worker.generation]
                else { return nil }
                machine.workerSpawning(id, now: .now)
                return (module.bytes, spec, worker.generation)
            }) else { return }
            let logger = logger.with(generation: generation)
            let worker: WorkerHandle
            do throws(PluginError) {
                worker = try environment.launchWorker(plugin: spec, module: bytes, logger: logger) { [weak self] worker, exit in
                    self?.workerExited(id, worker, exit)
                }
            } catch {
                failToStart(id, error)
                return
            }
            let stillWanted = lock.withLock { () -> Bool in
                handles[id] = worker
                return machine.workers[id]?.phase == .starting
            }
            guard stillWanted else {
                worker.kill(because: .stopped)
                return
            }
            do throws(PluginError) {
                let ready = try handshake(worker, spec: spec)
                let (wanted, actions) = lock.withLock { () -> (Bool, [PluginStateMachine.Action]) in
                    var result = machine.workerReady(id)
                    if result.wanted {
                        metas[generation] = ready.meta
                        worker.noteMemory(ready.memoryBytes)
                    }
                    // It died right after its handshake: its exit was reported while it was
                    // still starting, so report it again now that it counts.
                    if worker.hasExited {
                        handles.removeValue(forKey: id)
                        result.actions += machine.workerExited(id, now: .now, description: worker.crashDescription())
                    }
                    lock.broadcast()
                    return result
                }
                perform(actions)
                if wanted { worker.logger.info("worker ready") }
            } catch {
                worker.kill(because: .loadFailed)
                failToStart(id, error)
            }
        }
        thread.name = "plugvisor-start-\(name)"
        thread.start()
    }

    private func failToStart(_ id: WorkerID, _ error: PluginError) {
        let (actions, failed) = lock.withLock { () -> ([PluginStateMachine.Action], Bool) in
            let actions = machine.workerFailedToStart(id, code: error.code, reason: error.message, now: .now)
            lock.broadcast()
            if case .failed = machine.state { return (actions, true) }
            return (actions, false)
        }
        perform(actions)
        if failed { logger.error("plugin failed: \(error.message)") }
    }

    private func workerExited(_ id: WorkerID, _ worker: WorkerHandle, _ exit: ProcessExit) {
        let description = worker.crashDescription()
        let (actions, state) = lock.withLock { () -> ([PluginStateMachine.Action], PluginStateMachine.State) in
            if handles[id] === worker { handles.removeValue(forKey: id) }
            let actions = machine.workerExited(id, now: .now, description: description)
            lock.broadcast()
            return (actions, machine.state)
        }
        let metadata: Logger.Metadata = ["exit": "\(worker.killedReason().map { "killed by supervisor (\($0))" } ?? "\(exit)")"]
        if case let .spawn(_, delay)? = actions.first {
            metrics.recordRestart()
            worker.logger.warning("worker ended, restarting in \(delay)", metadata: metadata)
        } else if case .failed = state, !actions.isEmpty || worker.killedReason() == nil {
            worker.logger.error("worker ended and the plugin is failed", metadata: metadata)
        } else {
            worker.logger.debug("worker ended", metadata: metadata)
        }
        perform(actions)
    }

    /// hello → load → ready, within the plugin's timeout (which also bounds a runaway start function).
    private func handshake(_ worker: WorkerHandle, spec: PluginSpec) throws(PluginError) -> ReadyInfo {
        // Starting a worker process and compiling its module take time of their own: a short
        // call timeout would fail loads on a busy machine, so a load gets at least this.
        let minimum = Duration.seconds(2)
        let limit = max(spec.timeout, minimum)
        let deadline = ContinuousClock.now + limit
        let request = LoadRequest(
            spec: spec, workerUser: environment.workerUser(for: name), sandboxDrill: environment.configuration.sandboxDrill)
        do {
            let hello = try worker.channel.receive(WorkerMessage.self, deadline: deadline, limit: WorkerFrameCeiling.envelope)
            guard case let .hello(h) = hello else {
                throw violation(worker, "did not start with hello")
            }
            guard h.plugvisor == ProtocolVersion.current else {
                throw violation(worker,
                    "speaks protocol \(h.plugvisor), this supervisor \(ProtocolVersion.current): reinstall plugvisor-worker")
            }
            try worker.channel.send(SupervisorMessage.load(request), deadline: deadline)
            // `ready` carries the guest's meta answer, at most a result's size.
            let ceiling = WorkerFrameCeiling.result(maxResultBytes: request.maxResultBytes)
            while true {
                switch try worker.channel.receive(WorkerMessage.self, deadline: deadline, limit: ceiling) {
                case let .ready(info):
                    if let problem = Self.checkMemory(info.memoryBytes, spec: spec) { throw violation(worker, problem) }
                    return info
                case let .loadFailed(reason):
                    throw PluginError(.loadFailed, plugin: name, reason)
                case let .log(line):
                    try checkLogFrame(worker)
                    worker.logGuest(line)
                default:
                    throw violation(worker, "sent an unexpected message during load")
                }
            }
        } catch let error as ChannelError {
            switch error {
            case .timedOut:
                worker.kill(because: .timeout)
                let which = spec.timeout >= minimum
                    ? "the plugin's timeout of \(limit)"
                    : "\(limit) (the minimum a load gets; the plugin's timeout of \(spec.timeout) bounds calls)"
                throw PluginError(.loadFailed, plugin: name, "loading took longer than \(which): a runaway start function?")
            case .closed:
                _ = worker.awaitExit(timeout: .seconds(2))
                throw PluginError(.workerCrashed, plugin: name, "worker died while loading: \(worker.crashDescription())")
            default:
                throw violation(worker, "broke the protocol during load (\(error))")
            }
        } catch let error as PluginError {
            throw error
        } catch {
            throw PluginError(.internalError, plugin: name, "\(error)")
        }
    }

    // MARK: Calls

    /// Runs `execute` with `context` on an idle worker, waiting in the bounded queue if needed.
    /// Every call returns: a guest result or a typed error; none waits past the plugin's timeout.
    func execute(context: JSONValue) -> Result<JSONValue, PluginError> {
        let started = ContinuousClock.now
        let timeout = spec.timeout
        let deadline = started + timeout
        let result: Result<JSONValue, PluginError>
        switch checkout(deadline: deadline, timeout: timeout) {
        case let .failure(error):
            result = .failure(error)
        case let .success((id, worker, spec, othersWaiting)):
            // Spinning for the answer pays when a core is free; with callers queued, every core
            // is busy and the spin would only take CPU from the worker.
            worker.channel.spin = othersWaiting ? .zero : Self.answerSpin
            result = perform(
                CallRequest(id: worker.takeCallID(), fn: .execute, payload: context), on: worker, spec: spec,
                deadline: deadline)
            worker.reportDroppedGuestLines()
            let failure = result.failureCode
            // Lost means gone or going: what the worker's answer says cannot decide that.
            let lost = worker.killedReason() != nil || worker.hasExited
            perform(lock.withLock {
                let actions = machine.finish(id, failure: failure, workerLost: lost, now: .now)
                // One freed worker is for one waiter: waking them all would only make them queue again.
                if actions.isEmpty && !lost { lock.signal() } else { lock.broadcast() }
                return actions
            })
        }
        let elapsed = ContinuousClock.now - started
        record(result, micros: Int(elapsed.microseconds))
        metrics.recordCall(nanoseconds: elapsed.nanoseconds, error: result.failureCode)
        return result
    }

    static let answerSpin: Duration = .microseconds(50)

    /// An idle worker for one call, waiting in the bounded queue if needed; also says whether
    /// other callers are waiting.
    private func checkout(deadline: ContinuousClock.Instant, timeout: Duration)
        -> Result<(WorkerID, WorkerHandle, PluginSpec, Bool), PluginError>
    {
        lock.withLock {
            var queued = false
            while true {
                switch machine.admit(now: .now, queued: queued) {
                case let .run(id):
                    guard let worker = handles[id], let spec = machine.spec(of: id) else {
                        // Ready in the machine but not registered: cannot happen (registered first).
                        preconditionFailure("worker \(id) admitted without a handle")
                    }
                    if let input = worker.channel.unexpectedInput() {
                        discard(worker, id, because: input)
                        queued = false
                        continue
                    }
                    return .success((id, worker, spec, machine.waiting > 0))
                case let .reject(code, message):
                    if queued { lock.signal() }  // pass on a wake-up this caller will not use
                    return .failure(PluginError(code, plugin: name, message))
                case .wait:
                    queued = true
                    if !lock.wait(until: deadline) {
                        machine.leaveQueue()
                        lock.signal()
                        return .failure(PluginError(.timeout, plugin: name, "no worker became free within \(timeout)"))
                    }
                }
            }
        }
    }

    /// An idle worker that sent something nobody asked for (a stale frame) or hung up: it must
    /// answer no caller. It is killed and replaced; the caller goes on to another worker.
    /// Called under `lock`.
    private func discard(_ worker: WorkerHandle, _ id: WorkerID, because input: FrameChannel.UnexpectedInput) {
        switch input {
        case .bytes:
            worker.kill(because: .protocolViolation)
            worker.logger.error("worker sent a frame while idle (protocol violation); it was killed")
            machine.workerUnusable(id, code: .protocolViolation, now: .now)
        case .closed:
            // It died (its exit is on the way) or closed its end and lingers: either way, gone.
            worker.process.signal(SIGKILL)
            machine.workerUnusable(id, code: .workerCrashed, now: .now)
        }
    }

    /// Sends one call and reads until its result, forwarding guest log lines on the way. Every
    /// send and receive keeps to `deadline`, whatever the worker does.
    private func perform(_ request: CallRequest, on worker: WorkerHandle, spec: PluginSpec, deadline: ContinuousClock.Instant)
        -> Result<JSONValue, PluginError>
    {
        let sent = ContinuousClock.now
        do {
            try worker.channel.send(SupervisorMessage.call(request), deadline: deadline)
            let ceiling = WorkerFrameCeiling.result(maxResultBytes: LoadRequest.defaultMaxResultBytes)
            while true {
                switch try worker.channel.receive(WorkerMessage.self, deadline: deadline, limit: ceiling) {
                case let .log(line):
                    try checkLogFrame(worker)
                    worker.logGuest(line)
                case let .host(hostRequest):
                    guard worker.channel.lastFrameLength <= WorkerFrameCeiling.host else {
                        throw violation(worker, "sent a \(worker.channel.lastFrameLength)-byte host request, over the \(WorkerFrameCeiling.host)-byte ceiling")
                    }
                    let answer = serve(hostRequest, spec: spec, deadline: deadline)
                    try worker.channel.send(SupervisorMessage.hostResult(answer), deadline: deadline)
                case let .result(result) where result.id == request.id:
                    return try check(result, from: worker, spec: spec, elapsed: ContinuousClock.now - sent)
                default:
                    throw violation(worker, "sent an unexpected message")
                }
            }
        } catch let error as PluginError {
            return .failure(error)
        } catch ChannelError.timedOut {
            worker.kill(because: .timeout)
            return .failure(PluginError(.timeout, plugin: name,
                "call ran longer than \(spec.timeout); worker \(worker.pid) was killed and is being replaced"))
        } catch ChannelError.closed {
            // Its end closed: it died, or it hung up and lingers, which a worker must not do.
            let grace = min(max(ContinuousClock.now.duration(to: deadline), .zero) + .milliseconds(50), .seconds(1))
            guard worker.awaitExit(timeout: grace) != nil else {
                return .failure(violation(worker, "closed its channel during a call without exiting"))
            }
            if let reason = worker.killedReason(), reason != .protocolViolation {
                return .failure(PluginError(reason, plugin: name, "worker \(worker.pid) was killed (\(reason))"))
            }
            return .failure(PluginError(.workerCrashed, plugin: name, worker.crashDescription()))
        } catch {
            return .failure(violation(worker, "broke the protocol (\(error))"))
        }
    }

    /// A worker's result, believed only as far as it can be checked: its error code must be one
    /// a worker may give, its numbers within range, its payload a guest answer.
    private func check(_ result: CallResult, from worker: WorkerHandle, spec: PluginSpec, elapsed: Duration)
        throws(PluginError) -> Result<JSONValue, PluginError>
    {
        if let stats = result.stats {
            if let problem = Self.checkMemory(stats.memoryBytes, spec: spec) { throw violation(worker, problem) }
            guard (0...max(0, elapsed.microseconds)).contains(Int64(stats.micros)) else {
                throw violation(worker, "reported a call of \(stats.micros) µs that took \(elapsed.microseconds) µs")
            }
            worker.noteMemory(stats.memoryBytes)
        }
        if let error = result.error {
            guard CallResult.workerErrorCodes.contains(error.code) else {
                throw violation(worker, "answered with error code \(error.code), which only the supervisor gives")
            }
            return .failure(PluginError(error.code, plugin: name, error.message))
        }
        guard let payload = result.payload, payload["success"]?.boolValue != nil else {
            throw violation(worker, "sent a result without a success flag")
        }
        return .success(payload)
    }

    /// Nil when `bytes` (a worker's report of its guest's linear memory) can be true: at most the
    /// plugin's memory cap, which the worker enforces.
    static func checkMemory(_ bytes: Int?, spec: PluginSpec) -> String? {
        guard let bytes else { return nil }
        let cap = spec.memory ?? LoadRequest.defaultMemoryLimit
        guard bytes < 0 || bytes > cap else { return nil }
        return "reported \(bytes) bytes of guest memory, outside 0...\(cap) (its cap)"
    }

    private func checkLogFrame(_ worker: WorkerHandle) throws(PluginError) {
        let length = worker.channel.lastFrameLength
        guard length <= WorkerFrameCeiling.log else {
            throw violation(worker, "sent a \(length)-byte log frame, over the \(WorkerFrameCeiling.log)-byte ceiling")
        }
    }

    /// Kills `worker` for breaking the protocol; the error says what it did.
    private func violation(_ worker: WorkerHandle, _ what: String) -> PluginError {
        worker.kill(because: .protocolViolation)
        return PluginError(.protocolViolation, plugin: name, "worker \(worker.pid) \(what); it was killed")
    }

    /// A host service the guest asked for during its call; refused unless the manifest grants it.
    private func serve(_ request: HostRequest, spec: PluginSpec, deadline: ContinuousClock.Instant) -> HostResult {
        switch request.op {
        case "http":
            let answer = environment.broker.perform(request.request, allowedHosts: spec.allowedHosts, deadline: deadline)
            if let error = answer["error"]?.stringValue { logger.notice("http_request refused: \(error)") }
            return HostResult(id: request.id, result: answer)
        default:
            return HostResult(id: request.id, result: ["error": .string("unknown host service \(request.op)")])
        }
    }

    private func record(_ result: Result<JSONValue, PluginError>, micros: Int) {
        lock.withLock {
            calls += 1
            latencies.add(micros)
            if case let .failure(error) = result { errorsByCode[error.code.rawValue, default: 0] += 1 }
        }
    }

    // MARK: Status

    func status() -> PluginStatus {
        lock.withLock {
            let workerStatus = handles.sorted { $0.key < $1.key }.map { id, worker in
                WorkerStatus(
                    pid: worker.pid, state: machine.reportedState(of: id),
                    uptimeSeconds: Double((ContinuousClock.now - worker.startedAt).microseconds) / 1e6,
                    rssBytes: worker.process.residentBytes, memoryBytes: worker.memoryBytes)
            }
            var reason = machine.lastError
            if case let .failed(_, why) = machine.state { reason = why }
            var reload: String?
            switch machine.lastReload {
            case .succeeded?: reload = "ok"
            case let .failed(why)?: reload = "failed: \(why)"
            case nil: reload = nil
            }
            return PluginStatus(
                name: name, version: metas[machine.generation]?["version"]?.stringValue, state: machine.reportedState,
                workers: workerStatus,
                calls: calls, errors: errorsByCode.values.reduce(0, +), errorsByCode: errorsByCode,
                p50Micros: latencies.percentile(50), p99Micros: latencies.percentile(99),
                restarts: machine.restarts.total, lastError: reason, sha256: modules[machine.generation]?.sha256,
                circuit: machine.circuit?.reportedState, queued: machine.waiting, generation: machine.generation,
                lastReloadAt: lastReloadAt.map { ISO8601DateFormatter().string(from: $0) }, lastReload: reload)
        }
    }
}

extension Result where Failure == PluginError {
    var failureCode: PluginError.Code? {
        if case let .failure(error) = self { return error.code }
        return nil
    }
}

/// How a plugin reload ended.
public enum PluginReloadResult: Sendable, Equatable {
    /// Neither the module's bytes nor the plugin's spec changed: nothing was done.
    case unchanged
    /// The new generation serves.
    case reloaded(generation: Int, sha256: String)
    /// The new version could not start; the previous one goes on serving.
    case failed(String)

    public var summary: String {
        switch self {
        case .unchanged: return "unchanged"
        case let .reloaded(generation, sha256): return "generation \(generation), sha256 \(sha256.prefix(12))"
        case let .failed(reason): return "failed: \(reason)"
        }
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
