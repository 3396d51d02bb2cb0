import PlugvisorManifest
import PlugvisorProtocol

/// The lifecycle of one plugin and of each of its workers, without any I/O (NIO style): every
/// event returns the actions the I/O layer (`PluginRuntime`) must perform. The caller supplies
/// the time, so that every rule can be tested without processes or clocks.
struct PluginStateMachine: Sendable {
    typealias WorkerID = Int

    enum State: Equatable {
        case starting
        case ready
        /// Killed by name: no calls, no restarts, until `restart`.
        case stopped
        /// Will not serve until restarted: it could not load, or restarted too often.
        case failed(code: PluginError.Code, reason: String)
    }

    enum Phase: Equatable {
        /// Spawned, not yet through its handshake.
        case starting
        case idle
        case busy
        /// Finishing its call, then retired (shutdown).
        case draining
        /// Being killed; `replace` says whether a new worker takes its place when it exits.
        case dying(replace: Bool)
    }

    struct Worker: Equatable {
        var phase: Phase
        var startedAt: ContinuousClock.Instant
        /// Workers of one generation run one version of the module and of the plugin's spec.
        var generation: Int
    }

    /// A new generation being started by a reload, not yet serving.
    struct Pending: Equatable {
        var generation: Int
        var spec: PluginSpec
        var ready: Set<WorkerID> = []
    }

    enum ReloadOutcome: Equatable {
        case succeeded(generation: Int)
        case failed(reason: String)
    }

    enum Action: Equatable {
        /// Start worker `id` after `delay`.
        case spawn(WorkerID, after: Duration)
        /// SIGKILL the worker; calls on it are answered with `reason`.
        case kill(WorkerID, because: PluginError.Code)
        /// Close the worker's channel: it calls the guest's destroy and exits.
        case retire(WorkerID)
    }

    enum Admission: Equatable {
        case run(WorkerID)
        /// No worker is free: wait (in the bounded queue) and ask again.
        case wait
        case reject(PluginError.Code, String)
    }

    let name: String
    /// The spec of the generation that serves.
    private(set) var spec: PluginSpec
    private(set) var generation = 0
    private(set) var pending: Pending?
    private(set) var lastReload: ReloadOutcome?
    private(set) var state: State = .starting
    private(set) var workers: [WorkerID: Worker] = [:]
    private var idle: [WorkerID] = []
    private(set) var waiting = 0
    private(set) var restarts: RestartTracker
    private(set) var circuit: CircuitBreaker?
    private(set) var lastError: String?
    private(set) var shuttingDown = false
    private var nextID = 1
    /// Generations are never reused, so that a late event of an abandoned one cannot pass for
    /// the current one.
    private var newestGeneration = 0

    init(spec: PluginSpec) {
        name = spec.name
        self.spec = spec
        restarts = RestartTracker(policy: spec.restart)
        circuit = spec.circuit.map(CircuitBreaker.init(policy:))
    }

    var instances: Int { spec.instances }
    var maxQueue: Int { spec.maxQueue }

    /// The spec a worker's generation runs with.
    func spec(of id: WorkerID) -> PluginSpec? {
        guard let worker = workers[id] else { return nil }
        if let pending, pending.generation == worker.generation { return pending.spec }
        return spec
    }

    // MARK: Workers

    /// The first workers.
    mutating func begin() -> [Action] {
        (0..<instances).map { _ in spawn(after: .zero, generation: generation) }
    }

    private mutating func spawn(after delay: Duration, generation: Int) -> Action {
        let id = nextID
        nextID += 1
        workers[id] = Worker(phase: .starting, startedAt: .now, generation: generation)
        return .spawn(id, after: delay)
    }

    /// The spawn is about to happen now: its uptime counts from here.
    mutating func workerSpawning(_ id: WorkerID, now: ContinuousClock.Instant) {
        workers[id]?.startedAt = now
    }

    /// The worker finished its handshake. Returns false when it is no longer wanted (the plugin
    /// was killed or is shutting down meanwhile): then it is being killed.
    mutating func workerReady(_ id: WorkerID) -> (wanted: Bool, actions: [Action]) {
        guard let worker = workers[id], worker.phase == .starting else { return (false, []) }
        let current = worker.generation == generation
        let awaited = worker.generation == pending?.generation
        guard !shuttingDown, state == .starting || state == .ready, current || awaited else {
            workers[id]?.phase = .dying(replace: false)
            return (false, [.kill(id, because: .stopped)])
        }
        workers[id]?.phase = .idle
        if awaited {
            // Not routable until the whole new generation is ready: then it takes over.
            pending?.ready.insert(id)
            if let pending, pending.ready.count == pending.spec.instances { return (true, switchToPending()) }
            return (true, [])
        }
        idle.append(id)
        state = .ready
        return (true, [])
    }

    /// The new generation is ready: it serves from now on; the old one finishes its calls and ends.
    private mutating func switchToPending() -> [Action] {
        guard let next = pending else { return [] }
        let actions = windDown { $0.generation != next.generation }
        generation = next.generation
        if next.spec.restart != spec.restart { restarts = RestartTracker(policy: next.spec.restart) }
        if next.spec.circuit != spec.circuit { circuit = next.spec.circuit.map(CircuitBreaker.init(policy:)) }
        spec = next.spec
        idle = next.ready.sorted()
        pending = nil
        state = .ready
        lastReload = .succeeded(generation: generation)
        return actions
    }

    /// Retires the idle workers `selected` picks and kills those still starting; busy ones are
    /// retired when their call ends (see `finish`).
    private mutating func windDown(_ selected: (Worker) -> Bool) -> [Action] {
        var actions: [Action] = []
        for (id, worker) in workers.sorted(by: { $0.key < $1.key }) where selected(worker) {
            switch worker.phase {
            case .idle:
                workers[id]?.phase = .draining
                actions.append(.retire(id))
            case .starting:
                workers[id]?.phase = .dying(replace: false)
                actions.append(.kill(id, because: .stopped))
            case .busy, .draining, .dying:
                break
            }
        }
        return actions
    }

    /// The new generation could not start: it is dropped and the old one goes on serving.
    private mutating func abandonPending(reason: String) -> [Action] {
        guard let abandoned = pending else { return [] }
        pending = nil
        lastReload = .failed(reason: reason)
        return kill(because: .stopped, replace: false) { $0.generation == abandoned.generation }
    }

    /// A reload that could not even begin (the new module is unreadable or its pin is wrong).
    mutating func noteReloadFailed(reason: String) {
        lastReload = .failed(reason: reason)
    }

    /// Starts a new generation with `spec` (a new module, limits or capabilities). Calls keep
    /// going to the old one until every new worker is ready. A plugin that is stopped or failed
    /// simply starts again with the new generation.
    mutating func beginReload(spec newSpec: PluginSpec) -> [Action] {
        guard !shuttingDown else { return [] }
        switch state {
        case .stopped, .failed:
            spec = newSpec
            restarts = RestartTracker(policy: newSpec.restart)
            circuit = newSpec.circuit.map(CircuitBreaker.init(policy:))
            newestGeneration += 1
            generation = newestGeneration
            state = .starting
            lastError = nil
            lastReload = .succeeded(generation: generation)
            return killAll(because: .killed, replace: false) + begin()
        case .starting, .ready:
            var actions = pending == nil ? [] : abandonPending(reason: "superseded by a newer reload")
            newestGeneration += 1
            let next = newestGeneration
            pending = Pending(generation: next, spec: newSpec)
            actions += (0..<newSpec.instances).map { _ in spawn(after: .zero, generation: next) }
            return actions
        }
    }

    /// The worker did not get through its handshake. A module that cannot load fails the plugin
    /// at once (retrying would not help); a worker that died while loading (`.workerCrashed`:
    /// killed from outside, out of memory...) counts as a crash for the restart policy.
    mutating func workerFailedToStart(
        _ id: WorkerID, code: PluginError.Code, reason: String, now: ContinuousClock.Instant = .now
    ) -> [Action] {
        guard let worker = workers.removeValue(forKey: id) else { return [] }
        guard state == .starting || state == .ready, !shuttingDown else { return [] }
        if worker.generation == pending?.generation { return abandonPending(reason: reason) }
        guard worker.generation == generation else { return [] }
        guard code == .workerCrashed else { return fail(code: code, reason: reason) }
        lastError = reason
        switch restarts.workerDied(at: now, uptime: now - worker.startedAt) {
        case let .restart(after): return [spawn(after: after, generation: generation)]
        case let .giveUp(count):
            return fail(code: .restartLimit, reason: "restarted \(count) times within \(restarts.policy.within); last: \(reason)")
        }
    }

    /// The worker's process is gone (reaped). Unexpected deaths are restarted with backoff,
    /// until the restart policy gives up.
    mutating func workerExited(_ id: WorkerID, now: ContinuousClock.Instant, description: String) -> [Action] {
        // A worker still in its handshake is concluded by its starter (ready or failed), which
        // learns of the exit on its channel.
        guard let worker = workers[id], worker.phase != .starting else { return [] }
        workers.removeValue(forKey: id)
        idle.removeAll { $0 == id }
        if worker.generation == pending?.generation {
            return abandonPending(reason: "a worker of the new version died before serving: \(description)")
        }
        let replace: Bool
        switch worker.phase {
        case .idle, .busy: replace = true  // it died on its own
        case let .dying(wanted): replace = wanted
        case .starting, .draining: replace = false
        }
        guard replace, worker.generation == generation, !shuttingDown, state == .ready || state == .starting else {
            return []
        }
        lastError = description
        switch restarts.workerDied(at: now, uptime: now - worker.startedAt) {
        case let .restart(after):
            return [spawn(after: after, generation: generation)]
        case let .giveUp(count):
            return fail(code: .restartLimit, reason: "restarted \(count) times within \(restarts.policy.within); last: \(description)")
        }
    }

    /// The plugin cannot serve (its module is unreadable, or a worker could not load it).
    mutating func fail(code: PluginError.Code, reason: String) -> [Action] {
        state = .failed(code: code, reason: reason)
        lastError = reason
        return killAll(because: .stopped, replace: false)
    }

    private mutating func killAll(because reason: PluginError.Code, replace: Bool) -> [Action] {
        idle.removeAll()
        return kill(because: reason, replace: replace) { _ in true }
    }

    /// SIGKILLs the workers `selected` picks (unless already dying).
    private mutating func kill(because reason: PluginError.Code, replace: Bool, _ selected: (Worker) -> Bool) -> [Action] {
        var actions: [Action] = []
        for (id, worker) in workers.sorted(by: { $0.key < $1.key }) where selected(worker) {
            if case .dying = worker.phase { continue }
            workers[id]?.phase = .dying(replace: replace)
            actions.append(.kill(id, because: reason))
        }
        return actions
    }

    // MARK: Calls

    /// Asks for a worker. `queued` says whether this caller already waits in the queue (it
    /// leaves the queue whenever the answer is not `.wait`).
    mutating func admit(now: ContinuousClock.Instant, queued: Bool) -> Admission {
        let admission = decide(now: now, queued: queued)
        switch (admission, queued) {
        case (.wait, false): waiting += 1
        case (.wait, true): break
        case (_, true): waiting -= 1
        case (_, false): break
        }
        return admission
    }

    private mutating func decide(now: ContinuousClock.Instant, queued: Bool) -> Admission {
        switch state {
        case let .failed(code, reason): return .reject(code, reason)
        case .stopped: return .reject(.stopped, "plugin \(name) is stopped; `plugvisor restart \(name)` starts it again")
        case .starting, .ready: break
        }
        if shuttingDown { return .reject(.stopped, "the supervisor is shutting down") }
        if let circuit, circuit.refuses(now: now) { return circuitOpen(now: now) }
        if let id = idle.last {
            if circuit != nil, !circuit!.allow(now: now) { return circuitOpen(now: now) }
            idle.removeLast()
            workers[id]?.phase = .busy
            return .run(id)
        }
        if !queued && waiting >= maxQueue {
            return .reject(.overloaded, "all \(instances) workers of \(name) are busy and \(maxQueue) calls are queued")
        }
        return .wait
    }

    private func circuitOpen(now: ContinuousClock.Instant) -> Admission {
        let retry = circuit?.retryAfter(now: now).map { ", retry in \($0)" } ?? ""
        return .reject(.circuitOpen, "the circuit is open after \(circuit?.policy.failures ?? 0) consecutive failures\(retry)")
    }

    /// A caller gave up waiting in the queue (its deadline passed).
    mutating func leaveQueue() { waiting -= 1 }

    /// A call on `id` ended. `failure` is its error code, if any; `workerLost` says the worker
    /// died or was killed during the call (timeout, crash, protocol violation).
    mutating func finish(_ id: WorkerID, failure: PluginError.Code?, workerLost: Bool, now: ContinuousClock.Instant)
        -> [Action]
    {
        circuit?.record(failure: failure, now: now)
        guard let worker = workers[id] else { return [] }
        switch worker.phase {
        case .busy where workerLost:
            workers[id]?.phase = .dying(replace: true)
            return []
        case .busy where shuttingDown || worker.generation != generation:
            workers[id]?.phase = .draining
            return [.retire(id)]
        case .busy:
            workers[id]?.phase = .idle
            idle.append(id)
            return []
        default:
            return []
        }
    }

    /// Worker `id`, just admitted for a call, turned out unusable before the call began (it sent
    /// a frame while idle, or hung up): it is being killed and is replaced when it exits. The
    /// call never ran on it, but the circuit counts the failure (`code`), which also ends a
    /// half-open trial.
    mutating func workerUnusable(_ id: WorkerID, code: PluginError.Code, now: ContinuousClock.Instant) {
        guard workers[id]?.phase == .busy else { return }
        circuit?.record(failure: code, now: now)
        workers[id]?.phase = .dying(replace: true)
    }

    // MARK: Operator

    /// `plugvisor kill`: SIGKILL every worker now; calls in flight get `killed`, later ones `stopped`.
    mutating func kill() -> [Action] {
        guard !shuttingDown else { return [] }
        state = .stopped
        lastError = "killed by name"
        pending = nil
        return killAll(because: .killed, replace: false)
    }

    /// `plugvisor restart`: a fresh start with a clean restart count and circuit; workers still
    /// running are killed first.
    mutating func restart() -> [Action] {
        guard !shuttingDown else { return [] }
        var actions = killAll(because: .killed, replace: false)
        pending = nil
        newestGeneration += 1
        generation = newestGeneration
        state = .starting
        lastError = nil
        restarts.reset()
        if let policy = circuit?.policy { circuit = CircuitBreaker(policy: policy) }
        actions += begin()
        return actions
    }

    /// Graceful stop: idle workers are retired now, busy ones when their call ends.
    mutating func shutdown() -> [Action] {
        shuttingDown = true
        let actions = windDown { _ in true }
        idle.removeAll()
        pending = nil
        return actions
    }

    // MARK: Status

    /// The state `status` reports (the wire's names).
    var reportedState: PluginStatus.State {
        switch state {
        case .starting: return .starting
        case .ready: return pending == nil ? .ready : .reloading
        case .stopped: return .stopped
        case .failed: return .failed
        }
    }

    /// The state `status` reports for worker `id` (the wire's names).
    func reportedState(of id: WorkerID) -> WorkerStatus.State {
        switch workers[id]?.phase {
        case .starting?: return .starting
        case .idle?: return .idle
        case .busy?: return .busy
        case .draining?: return .draining
        case .dying?: return .dying
        case nil: return .gone
        }
    }

    // The tests' spelling; they can compare `reportedState` instead.
    var stateName: String { reportedState.rawValue }
    func phaseName(_ id: WorkerID) -> String { reportedState(of: id).rawValue }
}
