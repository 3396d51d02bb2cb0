import PlugvisorManifest
import PlugvisorProtocol

/// The lifecycle of one plugin, of each of its workers and of its callers, without any I/O
/// (NIO style): every event returns the actions the I/O layer (`PluginController`) must
/// perform. The caller supplies the time to every event, so that every rule can be tested
/// without processes, threads or clocks.
struct PluginStateMachine: Sendable {
    typealias WorkerID = Int
    /// A caller waiting for a worker.
    typealias WaiterID = Int
    /// One start of the plugin with one module and spec; never reused, so that a late event of
    /// an abandoned generation cannot pass for a live one.
    typealias Generation = Int

    enum State: Equatable {
        /// The first workers of `generation` are starting; nothing serves yet.
        case starting
        /// `generation` serves.
        case serving
        /// `generation` serves while a reload's generation starts; that one takes over once all
        /// of its workers are ready.
        case reloading(Pending)
        /// Killed by name: no calls, no restarts, until `restart` or a reload.
        case stopped
        /// Will not serve until restarted or reloaded: it could not load, or restarted too often.
        case failed(code: PluginError.Code, reason: String)
        /// Refusing calls for good; workers finish their calls and end.
        case shuttingDown
    }

    enum Phase: Equatable {
        /// Spawned (or about to be), not yet through its handshake.
        case starting
        case idle
        /// Holding `calls` callers: the first one's call runs, the others' were sent behind it
        /// (pipelined) and run next, in order.
        case busy
        /// Finishing its call, then retired.
        case draining
        /// Ready, taking no calls: the spare that takes the place of a worker lost (`standby`).
        case spare
        /// Being killed; `replace` says whether a new worker takes its place when it exits.
        case dying(replace: Bool)
    }

    struct Worker: Equatable {
        var phase: Phase
        var startedAt: ContinuousClock.Instant
        var generation: Generation
        /// Callers holding it: one whose call runs, and up to `pipelineDepth - 1` whose calls
        /// wait on its channel behind it. Zero unless busy.
        var calls = 0
        /// The deadline of the last call it was given; a call is pipelined behind it only with
        /// a deadline no earlier, so that no call behind times out before the one ahead of it.
        var lastDeadline: ContinuousClock.Instant?
        /// Its process ended while its handshake was still under way: the handshake's own
        /// outcome (ready or not) decides what follows, whichever event comes first.
        var exitedWhileStarting: String?
    }

    /// A reload's generation, starting while the current one serves.
    struct Pending: Equatable {
        var generation: Generation
        var spec: PluginSpec
        var ready: Set<WorkerID> = []
    }

    enum ReloadOutcome: Equatable {
        /// `version` serves: the plugin's version number as users see it (`status`'s generation).
        case succeeded(version: Int)
        case failed(reason: String)
    }

    enum Action: Equatable {
        /// Start worker `id` after `delay`.
        case spawn(WorkerID, after: Duration)
        /// SIGKILL the worker; its call, if any, is answered with `reason`.
        case kill(WorkerID, because: PluginError.Code)
        /// Close the worker's channel: it calls the guest's destroy and exits.
        case retire(WorkerID)
        /// The waiter queued longest gets this worker (now busy) for its call.
        case handOff(WorkerID, to: WaiterID)
        /// A queued caller is refused.
        case reject(WaiterID, PluginError.Code, String)
        /// `generation`'s start (first workers) or reload ended: it serves, or it never will.
        case settle(Generation, ReloadOutcome)
    }

    enum Admission: Equatable {
        /// The caller sends its call to this worker now: to an idle one, or behind the call it
        /// runs (the caller then waits for its turn to read).
        case run(WorkerID)
        /// No worker is free: the caller is queued and gets `.handOff` or `.reject` later.
        case wait
        case reject(PluginError.Code, String)
    }

    let name: String
    /// The spec of the generation that serves (or starts, when none serves).
    private(set) var spec: PluginSpec
    private(set) var generation: Generation = 0
    /// The version users see: 0 for the first generation, one more for each later generation
    /// that came to serve. A reload that fails does not use up a number.
    private(set) var version = 0
    private(set) var state: State = .starting
    private(set) var workers: [WorkerID: Worker] = [:]
    private(set) var lastReload: ReloadOutcome?
    private(set) var restarts: RestartTracker
    private(set) var circuit: CircuitBreaker?
    private(set) var lastError: String?
    /// Callers waiting for a worker, first come first served.
    private(set) var queue: [WaiterID] = []
    /// What each queued caller said of its call when it asked (see `admit`).
    private var queuedTerms: [WaiterID: CallTerms] = [:]

    /// What the machine needs to know of a call to place it.
    struct CallTerms: Equatable {
        /// When the caller gives up.
        var deadline: ContinuousClock.Instant?
        /// The call is small enough to be sent behind another worker's call (its send cannot
        /// block on a worker that is busy).
        var mayPipeline = false
    }
    private var idle: [WorkerID] = []
    /// For each generation whose start or reload is not settled yet: the first workers not yet
    /// through their handshake, and whether a reload made it.
    private var settling: [Generation: Settling] = [:]
    private var newestGeneration = 0
    private var nextWorkerID = 1
    private var sparesToBe: Set<WorkerID> = []

    private struct Settling {
        var workers: Set<WorkerID>
        var byReload: Bool
    }

    init(spec: PluginSpec) {
        name = spec.name
        self.spec = spec
        restarts = RestartTracker(policy: spec.restart)
        circuit = spec.circuit.map(CircuitBreaker.init(policy:))
    }

    var instances: Int { spec.instances }
    var maxQueue: Int { spec.maxQueue }
    var pending: Pending? {
        if case let .reloading(pending) = state { return pending }
        return nil
    }

    /// The spec a worker's generation runs with.
    func spec(of id: WorkerID) -> PluginSpec? {
        guard let generation = workers[id]?.generation else { return nil }
        if case let .reloading(pending) = state, pending.generation == generation { return pending.spec }
        return spec
    }

    // MARK: Starting

    /// The first workers; the start settles when each is ready or failed.
    mutating func begin(now: ContinuousClock.Instant) -> [Action] {
        precondition(workers.isEmpty && state == .starting, "begin on a plugin already begun")
        return startGeneration(generation, spec: spec, byReload: false, now: now)
    }

    private mutating func startGeneration(
        _ generation: Generation, spec: PluginSpec, byReload: Bool, now: ContinuousClock.Instant
    ) -> [Action] {
        let actions = (0..<spec.instances).map { _ in spawn(after: .zero, generation: generation, now: now) }
        let ids = actions.compactMap { if case let .spawn(id, _) = $0 { id } else { nil } }
        settling[generation] = Settling(workers: Set(ids), byReload: byReload)
        return actions
    }

    private mutating func spawn(after delay: Duration, generation: Generation, now: ContinuousClock.Instant) -> Action {
        let id = nextWorkerID
        nextWorkerID += 1
        workers[id] = Worker(phase: .starting, startedAt: now + delay, generation: generation)
        return .spawn(id, after: delay)
    }

    /// A fresh generation replaces whatever ran (a restart, or a reload of a plugin that does
    /// not serve): every worker is killed, the restart count and circuit start over.
    private mutating func replaceEverything(
        with newSpec: PluginSpec, byReload: Bool, now: ContinuousClock.Instant
    )
        -> [Action]
    {
        var actions = killAll(because: .killed)
        newestGeneration += 1
        generation = newestGeneration
        spec = newSpec
        state = .starting
        lastError = nil
        restarts = RestartTracker(policy: newSpec.restart)
        circuit = newSpec.circuit.map(CircuitBreaker.init(policy:))
        actions += settleAbandoned(reason: byReload ? "superseded by a reload" : "superseded by a restart")
        actions += startGeneration(generation, spec: newSpec, byReload: byReload, now: now)
        return actions
    }

    /// The spawn of a worker is happening now: its uptime counts from here. False when it is no
    /// longer wanted (killed or superseded meanwhile): then it is forgotten, never spawned.
    mutating func workerSpawning(_ id: WorkerID, now: ContinuousClock.Instant) -> (wanted: Bool, actions: [Action]) {
        guard let worker = workers[id] else { return (false, []) }
        guard worker.phase == .starting, isLive(worker.generation) else {
            workers.removeValue(forKey: id)
            sparesToBe.remove(id)
            return (false, concluded(id, generation: worker.generation))
        }
        workers[id]?.startedAt = now
        return (true, [])
    }

    private func isLive(_ generation: Generation) -> Bool {
        switch state {
        case .starting, .serving: return generation == self.generation
        case let .reloading(pending): return generation == self.generation || generation == pending.generation
        case .stopped, .failed, .shuttingDown: return false
        }
    }

    /// The worker finished its handshake. `wanted` is false when it no longer is (the plugin
    /// was killed, failed or is shutting down meanwhile): then it is being killed.
    mutating func workerReady(_ id: WorkerID, now: ContinuousClock.Instant) -> (wanted: Bool, actions: [Action]) {
        guard let worker = workers[id], worker.phase == .starting else { return (false, []) }
        guard isLive(worker.generation) else {
            workers[id]?.phase = .dying(replace: false)
            return (false, [.kill(id, because: .stopped)] + concluded(id, generation: worker.generation))
        }
        workers[id]?.phase = .idle
        var actions: [Action] = []
        if case var .reloading(pending) = state, worker.generation == pending.generation {
            // Not routable until the whole new generation is ready: then it takes over.
            pending.ready.insert(id)
            state = .reloading(pending)
            if pending.ready.count == pending.spec.instances { actions += switchToPending(now: now) }
        } else {
            var begins = false
            if state == .starting {
                state = .serving
                begins = true
                if generation != 0 { version += 1 }
            }
            if servingCount(excluding: id) >= spec.instances {
                workers[id]?.phase = .spare
            } else {
                idle.append(id)
            }
            sparesToBe.remove(id)
            if begins { actions += spawnSpares(now: now) }
        }
        actions += concluded(id, generation: worker.generation)
        if let description = worker.exitedWhileStarting {
            // It died right after its handshake: it counts as serving, then as dead.
            return (false, actions + workerExited(id, now: now, description: description))
        }
        return (true, actions + dispatch(now: now))
    }

    /// The reload's generation is ready: it serves from now on; the old one finishes its calls
    /// and ends.
    private mutating func switchToPending(now: ContinuousClock.Instant) -> [Action] {
        guard let next = pending else { return [] }
        let old = generation
        let actions = windDown { $0.generation == old }
        generation = next.generation
        version += 1
        if next.spec.restart != spec.restart { restarts = RestartTracker(policy: next.spec.restart) }
        if next.spec.circuit != spec.circuit { circuit = next.spec.circuit.map(CircuitBreaker.init(policy:)) }
        spec = next.spec
        idle = next.ready.sorted()
        state = .serving
        return actions + spawnSpares(now: now)
    }

    /// The serving generation's workers that serve or will (not spares, not on their way out).
    private func servingCount(excluding excluded: WorkerID) -> Int {
        workers.filter { id, worker in
            guard id != excluded, worker.generation == generation else { return false }
            switch worker.phase {
            case .idle, .busy: return true
            case .starting: return !isSpareToBe(id)
            case .draining, .dying, .spare: return false
            }
        }.count
    }

    /// Spares of the serving generation, ready or starting.
    private var spareCount: Int {
        workers.filter { id, worker in
            worker.generation == generation
                && (worker.phase == .spare || (worker.phase == .starting && isSpareToBe(id)))
        }.count
    }

    /// Workers spawned to be spares: a worker's role is decided when it is ready (it serves
    /// while fewer than `instances` do), so this only tells the counts apart meanwhile.
    private func isSpareToBe(_ id: WorkerID) -> Bool { sparesToBe.contains(id) }

    /// Spawns the spares the spec asks for that are missing.
    private mutating func spawnSpares(now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        while spareCount < spec.standby {
            let action = spawn(after: .zero, generation: generation, now: now)
            if case let .spawn(id, _) = action { sparesToBe.insert(id) }
            actions.append(action)
        }
        return actions
    }

    /// A worker of the serving generation was lost: a spare, if there is one, serves in its
    /// place at once (its replacement, when ready, becomes the spare).
    private mutating func promoteSpare(now: ContinuousClock.Instant) -> [Action] {
        guard state == .serving || pending != nil,
            let id = workers.filter({ $0.value.phase == .spare && $0.value.generation == generation }).keys.min()
        else { return [] }
        workers[id]?.phase = .idle
        idle.append(id)
        return dispatch(now: now)
    }

    /// One of `generation`'s first workers is through (ready, failed or abandoned): when it was
    /// the last, the start or reload settles.
    private mutating func concluded(_ id: WorkerID, generation: Generation) -> [Action] {
        guard var entry = settling[generation], entry.workers.remove(id) != nil else { return [] }
        if !entry.workers.isEmpty {
            settling[generation] = entry
            return []
        }
        settling.removeValue(forKey: generation)
        let serves = generation == self.generation && (state == .serving || pending != nil)
        let reason: String
        if case let .failed(_, why) = state { reason = why } else { reason = lastError ?? "no worker of it started" }
        return [
            settle(
                generation, serves ? .succeeded(version: version) : .failed(reason: reason), byReload: entry.byReload)
        ]
    }

    private mutating func settle(_ generation: Generation, _ outcome: ReloadOutcome, byReload: Bool) -> Action {
        if byReload { lastReload = outcome }
        return .settle(generation, outcome)
    }

    /// Settles every start or reload whose generation can no longer serve.
    private mutating func settleAbandoned(reason: String) -> [Action] {
        var actions: [Action] = []
        for (generation, entry) in settling.sorted(by: { $0.key < $1.key }) where !isLive(generation) {
            settling.removeValue(forKey: generation)
            actions.append(settle(generation, .failed(reason: reason), byReload: entry.byReload))
        }
        return actions
    }

    /// Retires the idle workers `selected` picks and kills those still starting; busy ones are
    /// retired when their call ends (see `finish`).
    private mutating func windDown(_ selected: (Worker) -> Bool) -> [Action] {
        var actions: [Action] = []
        for (id, worker) in workers.sorted(by: { $0.key < $1.key }) where selected(worker) {
            switch worker.phase {
            case .idle, .spare:
                workers[id]?.phase = .draining
                idle.removeAll { $0 == id }
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

    // MARK: Reloading

    /// Starts a new generation with `spec` (a new module, limits or capabilities). Calls keep
    /// going to the serving generation until every new worker is ready; if the new one cannot
    /// start, the old one goes on serving. A plugin that does not serve (starting, stopped,
    /// failed) simply starts again with the new generation.
    /// - Returns: the new generation (whose `.settle` tells how the reload ended) and the actions.
    mutating func beginReload(spec newSpec: PluginSpec, now: ContinuousClock.Instant) -> (Generation?, [Action]) {
        switch state {
        case .shuttingDown:
            return (nil, [])
        case .starting, .stopped, .failed:
            let actions = replaceEverything(with: newSpec, byReload: true, now: now)
            return (generation, actions)
        case .serving, .reloading:
            var actions: [Action] = []
            if let superseded = pending {
                state = .serving
                actions += abandonPending(superseded, reason: "superseded by a newer reload")
            }
            newestGeneration += 1
            let next = newestGeneration
            state = .reloading(Pending(generation: next, spec: newSpec))
            actions += startGeneration(next, spec: newSpec, byReload: true, now: now)
            return (next, actions)
        }
    }

    /// A reload's generation could not start: it is dropped and the serving one goes on.
    private mutating func abandonPending(_ abandoned: Pending, reason: String) -> [Action] {
        if pending == abandoned { state = .serving }
        var actions = kill(because: .stopped, replace: false) { $0.generation == abandoned.generation }
        if let entry = settling.removeValue(forKey: abandoned.generation) {
            actions.append(settle(abandoned.generation, .failed(reason: reason), byReload: entry.byReload))
        }
        return actions
    }

    /// A reload that could not even begin (the new module is unreadable or its pin is wrong).
    mutating func noteReloadFailed(reason: String) {
        lastReload = .failed(reason: reason)
    }

    // MARK: Workers ending

    /// The worker did not get through its handshake. A module that cannot load fails the plugin
    /// at once (retrying would not help); a worker that died while loading (`.workerCrashed`:
    /// killed from outside, out of memory...) counts as a crash for the restart policy.
    mutating func workerFailedToStart(
        _ id: WorkerID, code: PluginError.Code, reason: String, now: ContinuousClock.Instant
    ) -> [Action] {
        guard let worker = workers.removeValue(forKey: id) else { return [] }
        sparesToBe.remove(id)
        guard isLive(worker.generation) else { return concluded(id, generation: worker.generation) }
        if let pending, worker.generation == pending.generation {
            return abandonPending(pending, reason: reason)
        }
        guard code == .workerCrashed else {
            return fail(code: code, reason: reason) + concluded(id, generation: worker.generation)
        }
        lastError = reason
        var actions = restartOrGiveUp(after: worker, now: now, description: reason)
        actions += concluded(id, generation: worker.generation)
        return actions
    }

    /// The worker's process is gone (reaped). Unexpected deaths are restarted with backoff,
    /// until the restart policy gives up.
    mutating func workerExited(_ id: WorkerID, now: ContinuousClock.Instant, description: String) -> [Action] {
        guard let worker = workers[id] else { return [] }
        if worker.phase == .starting {
            // Its handshake concludes it (ready or failed), learning of the exit on its channel.
            workers[id]?.exitedWhileStarting = description
            return []
        }
        workers.removeValue(forKey: id)
        sparesToBe.remove(id)
        idle.removeAll { $0 == id }
        if let pending, worker.generation == pending.generation {
            return abandonPending(pending, reason: "a worker of the new version died before serving: \(description)")
        }
        let replace: Bool
        switch worker.phase {
        case .idle, .busy, .spare: replace = true  // it died on its own
        case let .dying(wanted): replace = wanted
        case .starting, .draining: replace = false
        }
        guard replace, worker.generation == generation, state == .serving || state == .starting || pending != nil else {
            return []
        }
        lastError = description
        // A serving worker that died on its own: a spare takes its place now (one lost to a
        // kill was replaced when the kill was decided).
        let promoted = worker.phase == .idle || worker.phase == .busy ? promoteSpare(now: now) : []
        return promoted + restartOrGiveUp(after: worker, now: now, description: description)
    }

    private mutating func restartOrGiveUp(
        after worker: Worker, now: ContinuousClock.Instant, description: String
    ) -> [Action] {
        switch restarts.workerDied(at: now, uptime: now - worker.startedAt) {
        case let .restart(after):
            let replacement = spawn(after: after, generation: generation, now: now)
            // A start still settling waits for the replacement too: it may yet serve.
            if case let .spawn(id, _) = replacement { settling[generation]?.workers.insert(id) }
            return [replacement]
        case let .giveUp(count):
            return fail(
                code: .restartLimit,
                reason: "restarted \(count) times within \(restarts.policy.within); last: \(description)")
        }
    }

    /// The plugin cannot serve (its module is unreadable, or a worker could not load it).
    mutating func fail(code: PluginError.Code, reason: String) -> [Action] {
        guard state != .shuttingDown else { return [] }
        state = .failed(code: code, reason: reason)
        lastError = reason
        return killAll(because: .stopped) + rejectQueue(code, reason) + settleAbandoned(reason: reason)
    }

    private mutating func killAll(because reason: PluginError.Code) -> [Action] {
        idle.removeAll()
        return kill(because: reason, replace: false) { _ in true }
    }

    /// SIGKILLs the workers `selected` picks (unless already dying).
    private mutating func kill(
        because reason: PluginError.Code, replace: Bool, _ selected: (Worker) -> Bool
    ) -> [Action] {
        var actions: [Action] = []
        for (id, worker) in workers.sorted(by: { $0.key < $1.key }) where selected(worker) {
            if case .dying = worker.phase { continue }
            workers[id]?.phase = .dying(replace: replace)
            idle.removeAll { $0 == id }
            actions.append(.kill(id, because: reason))
        }
        return actions
    }

    // MARK: Calls

    /// How many callers a worker holds at most: the one whose call runs and those sent behind
    /// it, so that the worker finds its next call on its channel instead of waiting for a round
    /// trip, and its callers wait for their turn there rather than for a hand-off in the queue.
    static let pipelineDepth = Pipelining.depth

    /// A caller asks for a worker: it runs at once when one is idle and nobody queues ahead of
    /// it, or behind a busy worker's call when `pipelineBy` allows; it queues otherwise (up to
    /// `maxQueue`), or is refused.
    /// - Parameters:
    ///   - terms: the call's deadline and whether it may be sent behind another call.
    ///   - returning: the caller's call was not run (its worker was unusable, or died before
    ///     reaching it): it keeps its place at the head of the queue.
    mutating func admit(
        _ waiter: WaiterID, now: ContinuousClock.Instant, terms: CallTerms = CallTerms(), returning: Bool = false
    ) -> Admission {
        if let refusal = refusal(now: now) { return .reject(refusal.0, refusal.1) }
        if queue.isEmpty || returning, let id = idle.last ?? pipelineSlot(for: terms, joining: !returning) {
            guard circuit?.allow(now: now) ?? true else { return circuitOpen(now: now) }
            take(id, terms)
            return .run(id)
        }
        if returning {
            queue.insert(waiter, at: 0)
        } else {
            guard waiting < maxQueue else {
                return .reject(
                    .overloaded, "all \(instances) workers of \(name) are busy and \(maxQueue) calls are queued")
            }
            queue.append(waiter)
        }
        queuedTerms[waiter] = terms
        return .wait
    }

    /// Calls waiting, for a worker or behind another call: what `maxQueue` bounds and `status`
    /// shows as queued.
    var waiting: Int { queue.count + workers.values.reduce(0) { $0 + max(0, $1.calls - 1) } }

    /// A busy worker of the serving generation with room behind its call for a call with
    /// `terms` (the lowest id, so that callers fill one worker's pipeline at a time).
    /// - Parameter joining: the call is not waiting yet, so it needs room under `maxQueue`.
    private func pipelineSlot(for terms: CallTerms, joining: Bool = false) -> WorkerID? {
        guard terms.mayPipeline, let deadline = terms.deadline, !joining || waiting < maxQueue else { return nil }
        return workers.filter { _, worker in
            worker.phase == .busy && worker.generation == generation && worker.calls < Self.pipelineDepth
                && worker.lastDeadline.map { $0 <= deadline } ?? false
        }.keys.min()
    }

    /// Gives worker `id` (idle, or with room in its pipeline) one more caller.
    private mutating func take(_ id: WorkerID, _ terms: CallTerms) {
        let wasIdle = updateWorker(id) { worker -> Bool in
            let wasIdle = worker.phase == .idle
            if wasIdle { worker.phase = .busy }
            worker.calls += 1
            worker.lastDeadline = terms.deadline
            return wasIdle
        }
        if wasIdle == true { idle.removeAll { $0 == id } }
    }

    /// Changes worker `id`'s record in place, in one lookup: each `workers[id]?.member = …` moves
    /// the whole record out of the dictionary and back, which every call paid several times.
    /// - Returns: what `change` returns; `nil` when there is no such worker.
    private mutating func updateWorker<T>(_ id: WorkerID, _ change: (inout Worker) -> T) -> T? {
        guard let index = workers.index(forKey: id) else { return nil }
        return change(&workers.values[index])
    }

    /// Why no call can run now, if so.
    private func refusal(now: ContinuousClock.Instant) -> (PluginError.Code, String)? {
        switch state {
        case let .failed(code, reason): return (code, reason)
        case .stopped: return (.stopped, "plugin \(name) is stopped; `plugvisor restart \(name)` starts it again")
        case .shuttingDown: return (.stopped, "the supervisor is shutting down")
        case .starting, .serving, .reloading: break
        }
        if circuit?.refuses(now: now) == true { return (.circuitOpen, circuitOpenMessage(now: now)) }
        return nil
    }

    /// A call refused by a half-open circuit, whose one trial call is under way.
    private func circuitOpen(now: ContinuousClock.Instant) -> Admission {
        .reject(.circuitOpen, circuitOpenMessage(now: now))
    }

    private func circuitOpenMessage(now: ContinuousClock.Instant) -> String {
        let retry = circuit?.retryAfter(now: now).map { ", retry in \($0)" } ?? ""
        return "the circuit is open after \(circuit?.policy.failures ?? 0) consecutive failures\(retry)"
    }

    /// A queued caller gave up (its deadline passed). False when it was no longer queued: it was
    /// handed a worker or refused by an action the caller has yet to see.
    mutating func leaveQueue(_ waiter: WaiterID) -> Bool {
        guard let index = queue.firstIndex(of: waiter) else { return false }
        queue.remove(at: index)
        queuedTerms.removeValue(forKey: waiter)
        return true
    }

    /// Hands idle workers, then room behind busy workers' calls, to queued callers in arrival
    /// order (a caller that cannot be pipelined waits for an idle worker, and those behind it
    /// wait too); refuses them all when no call can run.
    private mutating func dispatch(now: ContinuousClock.Instant) -> [Action] {
        guard !queue.isEmpty else { return [] }  // as after every call when nobody waits
        if let refusal = refusal(now: now) { return rejectQueue(refusal.0, refusal.1) }
        var actions: [Action] = []
        while let waiter = queue.first {
            let terms = queuedTerms[waiter] ?? CallTerms()
            guard let id = idle.last ?? pipelineSlot(for: terms) else { break }
            guard circuit?.allow(now: now) ?? true else { break }  // half-open: one trial at a time
            queue.removeFirst()
            queuedTerms.removeValue(forKey: waiter)
            take(id, terms)
            actions.append(.handOff(id, to: waiter))
        }
        return actions
    }

    private mutating func rejectQueue(_ code: PluginError.Code, _ message: String) -> [Action] {
        defer {
            queue.removeAll()
            queuedTerms.removeAll()
        }
        return queue.map { .reject($0, code, message) }
    }

    /// A call on `id` ended. `failure` is its error code, if any; `workerLost` says the worker
    /// died or was killed during the call (timeout, crash, protocol violation): the calls sent
    /// behind it were not run, and their callers ask again (`admit(returning: true)`). A worker
    /// that goes on serving goes to the caller queued longest.
    mutating func finish(
        _ id: WorkerID, failure: PluginError.Code?, workerLost: Bool, now: ContinuousClock.Instant
    )
        -> [Action]
    {
        circuit?.record(failure: failure, now: now)
        var promoted: [Action] = []
        if workerLost, workers[id]?.phase == .busy {
            workers[id]?.phase = .dying(replace: true)
            if workers[id]?.generation == generation { promoted = promoteSpare(now: now) }
        }
        return release(id) + promoted + dispatch(now: now)
    }

    /// One caller lets go of worker `id`: when it was the last, the worker is idle again (or
    /// retired, when its generation no longer serves).
    private mutating func release(_ id: WorkerID) -> [Action] {
        let retiring = state == .shuttingDown
        let serving = generation
        // Whether its last caller let go, and it retires rather than serving on.
        let freed =
            updateWorker(id) { worker -> Bool? in
                guard worker.calls > 0 else { return nil }
                worker.calls -= 1
                guard worker.calls == 0, worker.phase == .busy else { return nil }
                worker.lastDeadline = nil
                let retire = retiring || worker.generation != serving
                worker.phase = retire ? .draining : .idle
                return retire
            } ?? nil
        guard let retire = freed else { return [] }
        if retire { return [.retire(id)] }
        idle.append(id)
        return []
    }

    /// A caller was handed worker `id` too late to use it (its deadline passed as it woke), or
    /// its call, sent behind another, was never run (the worker was lost first): the worker's
    /// place goes to the next caller queued, if the worker still serves. Nothing is counted.
    mutating func returnUnused(_ id: WorkerID, now: ContinuousClock.Instant) -> [Action] {
        release(id) + dispatch(now: now)
    }

    /// Worker `id`, just handed to a caller, turned out unusable before the call began (it sent
    /// a frame while idle, or hung up): it is being killed and is replaced when it exits. The
    /// call never ran on it, but the circuit counts the failure (`code`), which also ends a
    /// half-open trial. The caller asks again with `admit(returning: true)`.
    @discardableResult
    mutating func workerUnusable(_ id: WorkerID, code: PluginError.Code, now: ContinuousClock.Instant) -> [Action] {
        guard workers[id]?.phase == .busy else { return [] }
        circuit?.record(failure: code, now: now)
        workers[id]?.phase = .dying(replace: true)
        workers[id]?.calls -= 1
        return workers[id]?.generation == generation ? promoteSpare(now: now) : []
    }

    // MARK: Operator

    /// `plugvisor kill`: SIGKILL every worker now; calls in flight get `killed`, later ones `stopped`.
    mutating func kill() -> [Action] {
        guard state != .shuttingDown else { return [] }
        state = .stopped
        lastError = "killed by name"
        return killAll(because: .killed) + rejectQueue(.stopped, "plugin \(name) was killed by name")
            + settleAbandoned(reason: "killed by name")
    }

    /// `plugvisor restart`: a fresh generation with a clean restart count and circuit; workers
    /// still running are killed first.
    mutating func restart(now: ContinuousClock.Instant) -> (Generation?, [Action]) {
        guard state != .shuttingDown else { return (nil, []) }
        let actions = replaceEverything(with: spec, byReload: false, now: now)
        return (generation, actions)
    }

    /// Graceful stop: idle workers are retired now, busy ones when their call ends, starting
    /// ones killed; queued callers are refused.
    mutating func shutdown() -> [Action] {
        guard state != .shuttingDown else { return [] }
        state = .shuttingDown
        var actions = windDown { _ in true }
        idle.removeAll()
        actions += rejectQueue(.stopped, "the supervisor is shutting down")
        actions += settleAbandoned(reason: "the supervisor is shutting down")
        return actions
    }

    // MARK: Status

    /// The version number users see for `generation`: the serving one's, or the one it will
    /// have if it comes to serve.
    func version(of generation: Generation) -> Int {
        if generation == 0 { return 0 }
        let serves = generation == self.generation && (state == .serving || pending != nil)
        return serves ? version : version + 1
    }

    /// The state `status` reports (the wire's names).
    var reportedState: PluginStatus.State {
        switch state {
        case .starting: return .starting
        case .serving: return .ready
        case .reloading: return .reloading
        case .stopped, .shuttingDown: return .stopped
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
        case .spare?: return .standby
        case .dying?: return .dying
        case nil: return .gone
        }
    }
}
