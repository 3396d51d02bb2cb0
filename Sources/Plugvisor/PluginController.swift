import Foundation
import Logging
import PlugvisorManifest
import PlugvisorPosix
import PlugvisorProtocol
import Synchronization

/// The single owner of one plugin's lifecycle: the only code that touches its
/// `PluginStateMachine`, its worker handles and its modules. Every lifecycle event (spawned,
/// ready, failed to start, exited, call finished, reload, kill, restart, shutdown) is applied
/// to the machine one at a time under `lock`; the machine's answers are delivered there too
/// (a freed worker to the caller queued longest, a start's or reload's outcome to whoever
/// waits for that generation), and the process work it asks for (spawn, kill, retire) is done
/// after the lock is released.
final class PluginController: @unchecked Sendable {
    typealias WorkerID = PluginStateMachine.WorkerID
    typealias Generation = PluginStateMachine.Generation
    typealias Action = PluginStateMachine.Action

    // SAFETY: `name`, `launcher`, `logger` and `metrics` are immutable; everything else is under `lock`.
    let name: String
    let launcher: WorkerLauncher
    let logger: Logger
    let metrics: PluginMetrics
    private let lock = Lock()

    private var machine: PluginStateMachine
    private var handles: [WorkerID: WorkerHandle] = [:]
    /// The module of each live generation (the serving one and a reload's), as hashed.
    private var modules: [Generation: ModuleVersion] = [:]
    private var metas: [Generation: JSONValue] = [:]
    private var lastReloadAt: Date?
    private var stats = PluginStats()
    /// A guest can make a host function fail call after call: its warnings are rate-limited.
    private var hostFunctionWarnings = LogBudget.guest
    /// Callers queued in the machine, each woken alone when its turn comes.
    private var waiters: [PluginStateMachine.WaiterID: CallWaiter] = [:]
    private var nextWaiterID = 1
    private let callIDs = Atomic<UInt64>(0)
    /// Whoever waits for a generation's start or reload to settle.
    private var settleWaiters: [Generation: SettleWaiter] = [:]

    struct ModuleVersion {
        /// The plugin's module, then each linked module's, in `linked`'s order.
        var bytes: [UInt8]
        /// The plugin's own module's hash.
        var sha256: String
        var linked: [LinkedModule] = []
        /// The cached module, for a plugin built from Swift sources.
        var builtModule: String?
    }

    private final class CallWaiter {
        enum Answer {
            case worker(WorkerID)
            case rejected(PluginError.Code, String)
        }
        let condition: Lock.Condition
        var answer: Answer?
        init(_ condition: Lock.Condition) { self.condition = condition }
    }

    private final class SettleWaiter {
        let condition: Lock.Condition
        var outcome: PluginStateMachine.ReloadOutcome?
        init(_ condition: Lock.Condition) { self.condition = condition }
    }

    init(spec: PluginSpec, launcher: WorkerLauncher, logger: Logger) {
        name = spec.name
        self.launcher = launcher
        var logger = logger
        logger[metadataKey: "plugin"] = "\(spec.name)"
        self.logger = logger
        metrics = PluginMetrics(plugin: spec.name)
        machine = PluginStateMachine(spec: spec)
        let user = launcher.workerUser(for: spec.name)
        if let user { self.logger.info("workers run as uid \(user.uid), gid \(user.gid)") }
        for problem in GrantAccess.problems(spec.filesystem, credentials: .worker(user)) {
            self.logger.warning("\(problem)")
        }
    }

    /// The spec of the generation that serves.
    var spec: PluginSpec { lock.withLock { machine.spec } }

    /// The plugin's state as `status` reports it, without building a status.
    var reportedState: PluginStatus.State { lock.withLock { machine.reportedState } }

    // MARK: Events in, actions out

    /// Delivers the machine's answers that concern waiting threads (called under `lock`) and
    /// returns the process work to do once the lock is released.
    private func deliver(_ actions: [Action]) -> [Action] {
        var work: [Action] = []
        for action in actions {
            switch action {
            case let .handOff(id, to: waiterID):
                guard let waiter = waiters[waiterID] else {
                    preconditionFailure("hand-off to unknown waiter \(waiterID)")
                }
                waiter.answer = .worker(id)
                waiter.condition.signal()
            case let .reject(waiterID, code, message):
                guard let waiter = waiters[waiterID] else {
                    preconditionFailure("refusal of unknown waiter \(waiterID)")
                }
                waiter.answer = .rejected(code, message)
                waiter.condition.signal()
            case let .settle(generation, outcome):
                if let waiter = settleWaiters[generation] {
                    waiter.outcome = outcome
                    waiter.condition.signal()
                }
            case .spawn, .kill, .retire:
                work.append(action)
            }
        }
        return work
    }

    /// Spawns, kills and retires workers as the machine decided; never under `lock`.
    private func perform(_ work: [Action]) {
        for action in work {
            switch action {
            case let .spawn(id, delay):
                if delay == .zero {
                    startWorker(id)
                } else {
                    DispatchQueue.global().asyncAfter(deadline: .now() + delay.timeInterval) { [self] in startWorker(id)
                    }
                }
            case let .kill(id, reason):
                lock.withLock { handles[id] }?.kill(because: reason)
            case let .retire(id):
                if let worker = lock.withLock({ handles[id] }) {
                    WorkerConnection(worker: worker, plugin: name).retire()
                }
            case .handOff, .reject, .settle:
                preconditionFailure("\(action) is delivered under the lock")
            }
        }
    }

    /// Registers a waiter for `generation`'s outcome (under `lock`, before the actions that
    /// may settle it are delivered).
    private func awaitSettling(of generation: Generation) -> SettleWaiter {
        let waiter = SettleWaiter(lock.makeCondition())
        settleWaiters[generation] = waiter
        return waiter
    }

    /// Waits until `generation` settles. Every worker of a start ends its handshake within its
    /// load limit, so this returns; the deadline only guards against a bug turning into a hang.
    private func outcome(of generation: Generation, _ waiter: SettleWaiter) -> PluginStateMachine.ReloadOutcome {
        let deadline = ContinuousClock.now + .seconds(300)
        return lock.withLock {
            while waiter.outcome == nil { if !waiter.condition.wait(until: deadline) { break } }
            settleWaiters.removeValue(forKey: generation)
            return waiter.outcome ?? .failed(reason: "the start did not finish within 300 s")
        }
    }

    // MARK: Lifecycle

    /// Reads and checks the module, starts `instances` workers and waits until each is ready or
    /// failed. A plugin that cannot start is `failed`, with the reason in its status.
    @discardableResult
    func start() -> PluginStateMachine.ReloadOutcome {
        let read = readModule(spec)
        let (work, waiter) = lock.withLock { () -> ([Action], SettleWaiter?) in
            switch read {
            case let .failure(error):
                return (deliver(machine.fail(code: .loadFailed, reason: error.message)), nil)
            case let .success(module):
                modules = [machine.generation: module]
                let waiter = awaitSettling(of: machine.generation)
                return (deliver(machine.begin(now: .now)), waiter)
            }
        }
        perform(work)
        guard let waiter else {
            if case let .failure(error) = read { logger.error("plugin failed: \(error.message)") }
            return .failed(reason: read.failureMessage ?? "")
        }
        return outcome(of: 0, waiter)
    }

    /// The plugin's module (and the modules linked beside it), read and checked, and the host
    /// functions its manifest grants checked against those the program provides.
    func readModule(_ spec: PluginSpec) -> Result<ModuleVersion, PluginError> {
        let provided = Set(launcher.configuration.hostFunctions.map(\.name))
        if let missing = spec.hostFunctions.first(where: { !provided.contains($0) }) {
            let offered =
                provided.isEmpty
                ? "it provides none (the plugvisor command provides none; a Swift program embedding plugvisor can)"
                : "it provides \(provided.sorted().joined(separator: ", "))"
            return .failure(
                PluginError(
                    .loadFailed, plugin: spec.name,
                    "host_functions grants \(missing), which the program running plugvisor does not provide: \(offered)"
                ))
        }
        if let source = spec.source {
            let builder = SwiftSourceBuilder(configuration: launcher.configuration, logger: logger)
            do {
                let built = try builder.build(source, plugin: spec.name, user: launcher.workerUser(for: spec.name))
                return .success(ModuleVersion(bytes: built.bytes, sha256: built.sha256, builtModule: built.path))
            } catch {
                return .failure(PluginError(.loadFailed, plugin: spec.name, error.description))
            }
        }
        let module: ModuleFile
        do { module = try ModuleFile(path: spec.wasm) } catch {
            return .failure(PluginError(.loadFailed, plugin: spec.name, error.description))
        }
        if let pin = spec.sha256, pin != module.sha256 {
            return .failure(
                PluginError(
                    .loadFailed, plugin: spec.name,
                    "sha256 of \(spec.wasm) is \(module.sha256), the manifest pins \(pin)"))
        }
        var version = ModuleVersion(bytes: module.bytes, sha256: module.sha256)
        for linked in spec.modules {
            let file: ModuleFile
            do { file = try ModuleFile(path: linked.wasm) } catch {
                return .failure(
                    PluginError(.loadFailed, plugin: spec.name, "module \(linked.name): \(error.description)"))
            }
            version.bytes += file.bytes
            version.linked.append(LinkedModule(name: linked.name, byteCount: file.bytes.count))
        }
        return .success(version)
    }

    /// `plugvisor kill NAME`.
    func kill() {
        perform(lock.withLock { deliver(machine.kill()) })
        logger.warning("killed by name")
    }

    /// `plugvisor restart NAME`: re-reads the module and starts fresh workers (killing any that
    /// still run), with a clean restart count and circuit.
    /// - Returns: the version that serves, or why the plugin does not.
    func restart() -> Result<Int, PluginError> {
        logger.info("restarting")
        let current = spec
        let read = readModule(current)
        let (work, started) = lock.withLock { () -> ([Action], (Generation, SettleWaiter)?) in
            if case let .failure(error) = read {
                return (deliver(machine.fail(code: .loadFailed, reason: error.message)), nil)
            }
            let (generation, actions) = machine.restart(now: .now)
            guard let generation, case let .success(module) = read else { return (deliver(actions), nil) }
            modules = [generation: module]
            let waiter = awaitSettling(of: generation)
            return (deliver(actions), (generation, waiter))
        }
        perform(work)
        guard let (generation, waiter) = started else {
            let error = read.failureError ?? PluginError(.stopped, plugin: name, "the supervisor is shutting down")
            logger.error("restart failed: \(error.message)")
            return .failure(error)
        }
        switch outcome(of: generation, waiter) {
        case let .succeeded(version):
            return .success(version)
        case let .failed(reason):
            let code = lock.withLock {
                if case let .failed(code, _) = machine.state { code } else { PluginError.Code.loadFailed }
            }
            logger.error("restart failed: \(reason)")
            return .failure(PluginError(code, plugin: name, reason))
        }
    }

    /// Reloads the plugin with `newSpec` (its module re-read from disk): a new generation of
    /// workers is started and checked (load and meta) while the old one serves; then new calls
    /// go to it and the old one finishes its calls and ends. If the new version cannot start,
    /// the old one goes on serving and the reason is kept for `status`. The answer waits for
    /// this reload's generation only, never for an unrelated restart.
    /// - Parameter force: reload even when neither the module's hash nor the spec changed.
    func reload(spec newSpec: PluginSpec, force: Bool) -> PluginReloadResult {
        let module: ModuleVersion
        switch readModule(newSpec) {
        case let .failure(error):
            lock.withLock {
                machine.noteReloadFailed(reason: error.message)
                lastReloadAt = Date()
            }
            logger.error("reload refused: \(error.message)")
            metrics.recordReload(succeeded: false)
            return .failed(error.message)
        case let .success(read):
            module = read
        }
        let started = lock.withLock { () -> (Generation, SettleWaiter, [Action])?? in
            let serving = modules[machine.generation]?.sha256
            if !force && serving == module.sha256 && newSpec == machine.spec && machine.state == .serving {
                return .some(nil)
            }
            let (generation, actions) = machine.beginReload(spec: newSpec, now: .now)
            guard let generation else { return nil }
            modules[generation] = module
            lastReloadAt = Date()
            let waiter = awaitSettling(of: generation)
            return (generation, waiter, deliver(actions))
        }
        guard let started else { return .failed("the supervisor is shutting down") }
        guard let (generation, waiter, work) = started else { return .unchanged }
        logger.info("reloading", metadata: ["sha256": "\(module.sha256.prefix(12))"])
        perform(work)
        let outcome = outcome(of: generation, waiter)
        lock.withLock {
            let live = Set([machine.generation] + (machine.pending.map { [$0.generation] } ?? []))
            modules = modules.filter { live.contains($0.key) }
            metas = metas.filter { live.contains($0.key) }
        }
        switch outcome {
        case let .succeeded(version):
            metrics.recordReload(succeeded: true)
            logger.info("reloaded", metadata: ["generation": "\(version)", "sha256": "\(module.sha256.prefix(12))"])
            return .reloaded(generation: version, sha256: module.sha256)
        case let .failed(reason):
            metrics.recordReload(succeeded: false)
            let serving = lock.withLock { machine.state == .serving }
            logger.error(
                "reload failed, \(serving ? "the previous version goes on serving" : "the plugin does not serve"): \(reason)"
            )
            return .failed(reason)
        }
    }

    /// Refuses new calls, lets calls in flight finish until `deadline`, then ends every worker.
    func shutdown(deadline: ContinuousClock.Instant) {
        perform(lock.withLock { deliver(machine.shutdown()) })
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

    // MARK: Workers

    /// Spawns worker `id` and runs its handshake on a thread of its own.
    private func startWorker(_ id: WorkerID) {
        let thread = Thread { [self] in
            let (work, prepared) = lock.withLock { () -> ([Action], (ModuleVersion, PluginSpec, Int)?) in
                let (wanted, actions) = machine.workerSpawning(id, now: .now)
                guard wanted, let worker = machine.workers[id], let spec = machine.spec(of: id),
                    let module = modules[worker.generation]
                else { return (deliver(actions), nil) }
                return (deliver(actions), (module, spec, machine.version(of: worker.generation)))
            }
            perform(work)
            guard let (module, spec, version) = prepared else { return }
            let logger = logger.with(generation: version)
            let worker: WorkerHandle
            do throws(PluginError) {
                worker = try launcher.launchWorker(plugin: spec, module: module.bytes, logger: logger) {
                    [weak self] worker, exit in
                    self?.workerExited(id, worker, exit)
                }
            } catch {
                failToStart(id, error)
                return
            }
            let stillWanted = lock.withLock { () -> Bool in
                // One that died already has had its exit reported: registering it would leave
                // a handle nobody removes.
                if !worker.hasExited { handles[id] = worker }
                return machine.workers[id]?.phase == .starting
            }
            guard stillWanted else {
                worker.kill(because: .stopped)
                return
            }
            let connection = WorkerConnection(worker: worker, plugin: name)
            do throws(PluginError) {
                var request = LoadRequest(
                    spec: spec, workerUser: launcher.workerUser(for: name),
                    sandboxDrill: launcher.configuration.sandboxDrill, logLevel: worker.logger.logLevel.rawValue)
                request.linkedModules = module.linked
                let ready = try connection.handshake(request, spec: spec)
                let (wanted, work) = lock.withLock { () -> (Bool, [Action]) in
                    let (wanted, actions) = machine.workerReady(id, now: .now)
                    if wanted {
                        if let generation = machine.workers[id]?.generation { metas[generation] = ready.meta }
                        worker.noteMemory(ready.memoryBytes)
                    }
                    return (wanted, deliver(actions))
                }
                perform(work)
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
        let (work, failed) = lock.withLock { () -> ([Action], Bool) in
            let work = deliver(machine.workerFailedToStart(id, code: error.code, reason: error.message, now: .now))
            if case .failed = machine.state { return (work, true) }
            return (work, false)
        }
        perform(work)
        if failed { logger.error("plugin failed: \(error.message)") }
    }

    private func workerExited(_ id: WorkerID, _ worker: WorkerHandle, _ exit: ProcessExit) {
        let description = worker.crashDescription()
        let (work, failed) = lock.withLock { () -> ([Action], Bool) in
            if handles[id] === worker { handles.removeValue(forKey: id) }
            let work = deliver(machine.workerExited(id, now: .now, description: description))
            lock.broadcast()  // for shutdown, waiting for the last handle to go
            if case .failed = machine.state { return (work, true) }
            return (work, false)
        }
        let metadata: Logger.Metadata = [
            "exit": "\(worker.killedReason().map { "killed by supervisor (\($0))" } ?? "\(exit)")"
        ]
        if case let .spawn(_, delay)? = work.first {
            metrics.recordRestart()
            worker.logger.warning("worker ended, restarting in \(delay)", metadata: metadata)
        } else if failed, !work.isEmpty || worker.killedReason() == nil {
            worker.logger.error("worker ended and the plugin is failed", metadata: metadata)
        } else {
            worker.logger.debug("worker ended", metadata: metadata)
        }
        perform(work)
    }

    // MARK: Calls

    /// Runs `execute` with `context` on a worker (idle, or behind the call it runs), waiting in
    /// the bounded queue if needed. Every call returns: a guest result or a typed error; none
    /// waits past the plugin's timeout.
    /// - Parameter calledAt: when the caller called (it may have waited for a thread since):
    ///   the timeout counts from then.
    /// - Parameter callers: plugins whose calls wait for this one in host functions
    ///   (`HostFunction.waitingCallers`): their workers must not be given it.
    func execute(
        context: JSONValue, calledAt: ContinuousClock.Instant = .now, callers: [String] = []
    ) -> Result<JSONValue, PluginError> {
        let started = calledAt
        let timeout = lock.withLock { machine.spec.timeout }
        let deadline = started + timeout
        let result = run(context: context, deadline: deadline, timeout: timeout, callers: callers)
        let elapsed = ContinuousClock.now - started
        lock.withLock { stats.record(failure: result.failureCode, micros: Int(elapsed.microseconds)) }
        metrics.recordCall(nanoseconds: elapsed.nanoseconds, error: result.failureCode)
        return result
    }

    /// How long a caller polls for its answer before sleeping (`FrameChannel.spin`).
    static let answerSpin: Duration = .microseconds(50)

    /// Calls up to this size may be sent behind another worker's call: the most a pipeline holds
    /// behind a call (`Pipelining.depth - 1` of them) fits in a socket's buffer, so their send
    /// never waits for a worker that is busy.
    static let pipelinedFrameLimit = 16 << 10

    private func run(
        context: JSONValue, deadline: ContinuousClock.Instant, timeout: Duration, callers: [String]
    ) -> Result<JSONValue, PluginError> {
        let call: WorkerConnection.EncodedCall
        do throws(ChannelError) {
            call = try WorkerConnection.EncodedCall(id: callIDs.add(1, ordering: .relaxed).newValue, context: context)
        } catch {
            return .failure(PluginError(.internalError, plugin: name, "\(error)"))
        }
        // Never behind a busy worker when one of this plugin's workers waits for the answer: it
        // could be that one. An idle worker then takes it.
        let terms = PluginStateMachine.CallTerms(
            deadline: deadline, mayPipeline: call.frame.count <= Self.pipelinedFrameLimit && !callers.contains(name))
        let hostService: WorkerConnection.HostService = { request, spec, deadline in
            self.serve(request, spec: spec, deadline: deadline, callers: callers)
        }
        var returning = false
        while true {
            let id: WorkerID
            let worker: WorkerHandle
            let spec: PluginSpec
            switch checkout(terms, timeout: timeout, returning: returning) {
            case let .failure(error):
                return .failure(error)
            case let .success(checkedOut):
                (id, worker, spec) = checkedOut
            }
            switch WorkerConnection(worker: worker, plugin: name).call(
                call, spec: spec, deadline: deadline, hostService: hostService)
            {
            case .notRun:
                // Its worker was lost before reaching it: it goes first to whichever serves next.
                perform(lock.withLock { deliver(machine.returnUnused(id, now: .now)) })
                returning = true
            case let .unusable(input):
                perform(lock.withLock { discard(worker, id, because: input) })
                returning = true
            case let .answered(result):
                worker.reportDroppedGuestLines()
                // Lost means gone or going: what the worker's answer says cannot decide that.
                let lost = worker.killedReason() != nil || worker.hasExited
                perform(
                    lock.withLock {
                        deliver(machine.finish(id, failure: result.failureCode, workerLost: lost, now: .now))
                    })
                return result
            }
        }
    }

    /// A worker for one call, waiting in the machine's queue (first come, first served) if
    /// needed.
    /// - Parameter returning: the caller's call was not run on the worker it had: it keeps its
    ///   place at the head of the queue.
    private func checkout(
        _ terms: PluginStateMachine.CallTerms, timeout: Duration, returning: Bool
    ) -> Result<(WorkerID, WorkerHandle, PluginSpec), PluginError> {
        let deadline = terms.deadline ?? .now
        var work: [Action] = []
        defer { perform(work) }
        return lock.withLock { () -> Result<(WorkerID, WorkerHandle, PluginSpec), PluginError> in
            var returning = returning
            while true {
                let waiterID = nextWaiterID
                nextWaiterID += 1
                let id: WorkerID
                switch machine.admit(waiterID, now: .now, terms: terms, returning: returning) {
                case let .run(worker):
                    id = worker
                case let .reject(code, message):
                    return .failure(PluginError(code, plugin: name, message))
                case .wait:
                    let waiter = CallWaiter(lock.makeCondition())
                    waiters[waiterID] = waiter
                    while waiter.answer == nil { if !waiter.condition.wait(until: deadline) { break } }
                    waiters.removeValue(forKey: waiterID)
                    switch waiter.answer {
                    case let .worker(worker)?:
                        guard ContinuousClock.now < deadline else {
                            // Handed a worker just as its time ran out: too late to call, and a
                            // call that cannot be sent in time would cost the worker.
                            work += deliver(machine.returnUnused(worker, now: .now))
                            return .failure(noWorkerFree(within: timeout))
                        }
                        id = worker
                    case let .rejected(code, message)?:
                        return .failure(PluginError(code, plugin: name, message))
                    case nil:
                        let left = machine.leaveQueue(waiterID)
                        precondition(left, "a waiter without an answer is queued")
                        return .failure(noWorkerFree(within: timeout))
                    }
                }
                if let worker = handles[id], let spec = machine.spec(of: id) { return .success((id, worker, spec)) }
                // It exited between being handed over and now: the call never reached it.
                work += deliver(machine.returnUnused(id, now: .now))
                returning = true
            }
        }
    }

    private func noWorkerFree(within timeout: Duration) -> PluginError {
        PluginError(.timeout, plugin: name, "no worker became free within \(timeout)")
    }

    /// An idle worker that sent something nobody asked for (a stale frame) or hung up: it must
    /// answer no caller. It is killed and replaced; the caller goes on to another worker.
    /// Called under `lock`.
    private func discard(
        _ worker: WorkerHandle, _ id: WorkerID, because input: FrameChannel.UnexpectedInput
    ) -> [Action] {
        switch input {
        case .bytes:
            worker.kill(because: .protocolViolation)
            worker.logger.error("worker sent a frame while idle (protocol violation); it was killed")
            return deliver(machine.workerUnusable(id, code: .protocolViolation, now: .now))
        case .closed:
            // It died (its exit is on the way) or closed its end and lingers: either way, gone.
            worker.process.signal(SIGKILL)
            return deliver(machine.workerUnusable(id, code: .workerCrashed, now: .now))
        }
    }

    /// A host service the guest asked for during its call; refused unless the manifest grants it.
    private func serve(
        _ request: HostRequest, spec: PluginSpec, deadline: ContinuousClock.Instant, callers: [String]
    ) -> HostResult {
        switch request.op {
        case "http":
            let answer = launcher.broker.perform(request.request, allowedHosts: spec.allowedHosts, deadline: deadline)
            if let error = answer["error"]?.stringValue { logger.notice("http_request refused: \(error)") }
            return HostResult(id: request.id, result: answer)
        case "host_function":
            return HostResult(
                id: request.id,
                result: callHostFunction(request.request, spec: spec, deadline: deadline, callers: callers))
        default:
            return HostResult(id: request.id, result: ["error": .string("unknown host service \(request.op)")])
        }
    }

    /// Runs the host function a guest named, if its manifest entry grants it: `{"output": BASE64}`
    /// or `{"error"}`. A failure is the guest's to handle; the log gets a line.
    private func callHostFunction(
        _ request: JSONValue, spec: PluginSpec, deadline: ContinuousClock.Instant, callers: [String]
    ) -> JSONValue {
        let name = request["name"]?.stringValue ?? ""
        guard spec.hostFunctions.contains(name),
            let function = launcher.configuration.hostFunctions.first(where: { $0.name == name })
        else {
            return ["error": .string("host function \(name.debugDescription) is not granted to this plugin")]
        }
        guard let text = request["input"]?.stringValue, let input = Data(base64Encoded: text) else {
            return ["error": "the host function's input is not base64"]
        }
        // The worker bounds the input, but a compromised one would not: bound it here too.
        guard input.count <= HostFunction.maxBytes else {
            return ["error": .string("the input is \(input.count) bytes, over the \(HostFunction.maxBytes)-byte limit")]
        }
        let started = ContinuousClock.now
        let outcome = function.run(Array(input), plugin: spec.name, callers: callers, deadline: deadline)
        metrics.recordHostFunction(name, nanoseconds: (ContinuousClock.now - started).nanoseconds, outcome: outcome)
        switch outcome {
        case let .success(output):
            return ["output": .string(Data(output).base64EncodedString())]
        case let .failure(error):
            let message = String(decoding: error.message.utf8.prefix(LogLine.maxMessageBytes), as: UTF8.self)
            let verdict = lock.withLock { hostFunctionWarnings.admit(bytes: message.utf8.count, now: .now) }
            if case let .logAfterSummary(dropped) = verdict {
                logger.warning("\(dropped) host function failure lines dropped (rate limit)")
            }
            if verdict != .drop { logger.warning("host function \(name) failed: \(message)") }
            return ["error": .string(error.message)]
        }
    }

    // MARK: Status

    /// What `status` shows, copied under the lock; reading /proc, sorting latencies and
    /// formatting dates happen outside it, so a status never holds up calls.
    private struct Snapshot {
        var workers: [(WorkerHandle, WorkerStatus.State)]
        var state: PluginStatus.State
        var reason: String?
        var lastReload: PluginStateMachine.ReloadOutcome?
        var lastReloadAt: Date?
        var version: Int
        var meta: JSONValue?
        var sha256: String?
        var builtModule: String?
        var source: String?
        var restarts: Int
        var circuit: CircuitState?
        var queued: Int
        var stats: PluginStats
    }

    func status() -> PluginStatus {
        let snapshot = lock.withLock { () -> Snapshot in
            var reason = machine.lastError
            if case let .failed(_, why) = machine.state { reason = why }
            return Snapshot(
                workers: handles.sorted { $0.key < $1.key }.map { ($0.value, machine.reportedState(of: $0.key)) },
                state: machine.reportedState, reason: reason, lastReload: machine.lastReload,
                lastReloadAt: lastReloadAt,
                version: machine.version, meta: metas[machine.generation], sha256: modules[machine.generation]?.sha256,
                builtModule: modules[machine.generation]?.builtModule, source: machine.spec.source?.written,
                restarts: machine.restarts.total, circuit: machine.circuit?.reportedState, queued: machine.waiting,
                stats: stats)
        }
        let now = ContinuousClock.now
        let workers = snapshot.workers.map { worker, phase in
            WorkerStatus(
                pid: worker.pid, state: phase,
                uptimeSeconds: Double((now - worker.startedAt).microseconds) / 1e6,
                rssBytes: worker.process.residentBytes, memoryBytes: worker.memoryBytes)
        }
        let reload: String? =
            switch snapshot.lastReload {
            case .succeeded?: "ok"
            case let .failed(why)?: "failed: \(why)"
            case nil: nil
            }
        let percentiles = snapshot.stats.latencies.percentiles([50, 99])
        return PluginStatus(
            name: name, version: snapshot.meta?["version"]?.stringValue, state: snapshot.state,
            workers: workers,
            calls: snapshot.stats.calls, errors: snapshot.stats.errors, errorsByCode: snapshot.stats.errorsByCode,
            p50Micros: percentiles[0], p99Micros: percentiles[1],
            restarts: snapshot.restarts, lastError: snapshot.reason, sha256: snapshot.sha256,
            circuit: snapshot.circuit, queued: snapshot.queued, generation: snapshot.version,
            lastReloadAt: snapshot.lastReloadAt.map { ISO8601DateFormatter().string(from: $0) }, lastReload: reload,
            source: snapshot.source, module: snapshot.builtModule)
    }
}

extension Result where Failure == PluginError {
    var failureCode: PluginError.Code? {
        if case let .failure(error) = self { return error.code }
        return nil
    }

    var failureError: PluginError? {
        if case let .failure(error) = self { return error }
        return nil
    }

    var failureMessage: String? { failureError?.message }
}

/// How a plugin reload ended.
public enum PluginReloadResult: Sendable, Equatable {
    /// Neither the module's bytes nor the plugin's spec changed: nothing was done.
    case unchanged
    /// The new generation serves.
    case reloaded(generation: Int, sha256: String)
    /// The new version could not start; the previous one goes on serving, if one did.
    case failed(String)

    public var summary: String {
        switch self {
        case .unchanged: return "unchanged"
        case let .reloaded(generation, sha256): return "generation \(generation), sha256 \(sha256.prefix(12))"
        case let .failed(reason): return "failed: \(reason)"
        }
    }
}
