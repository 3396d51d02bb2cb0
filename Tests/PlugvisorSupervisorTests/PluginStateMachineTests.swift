@testable import Plugvisor
import PlugvisorManifest
import PlugvisorProtocol
import Testing

/// The plugin lifecycle without processes: events in, actions out.
@Suite struct PluginStateMachineTests {
    let t0 = ContinuousClock.now

    func spec(instances: Int = 1, maxQueue: Int = 2, restartMax: Int = 3, circuit: PluginSpec.CircuitPolicy? = nil) -> PluginSpec {
        var spec = PluginSpec(name: "p", wasm: "/p.wasm")
        spec.instances = instances
        spec.maxQueue = maxQueue
        spec.restart = .init(max: restartMax, within: .seconds(60), backoffMin: .milliseconds(100), backoffMax: .seconds(1))
        spec.circuit = circuit
        return spec
    }

    /// A machine whose first workers are all ready.
    func ready(_ spec: PluginSpec) -> (PluginStateMachine, [Int]) {
        var machine = PluginStateMachine(spec: spec)
        let ids = machine.begin().compactMap { action -> Int? in
            if case let .spawn(id, after) = action, after == .zero { return id }
            return nil
        }
        for id in ids {
            machine.workerSpawning(id, now: t0)
            let result1 = machine.workerReady(id)
            #expect(result1.wanted)
        }
        return (machine, ids)
    }

    @Test func beginSpawnsOneWorkerPerInstanceAndReadyMakesThePluginReady() {
        var machine = PluginStateMachine(spec: spec(instances: 3))
        let actions = machine.begin()
        #expect(actions.count == 3)
        #expect(machine.stateName == "starting")
        guard case let .spawn(id, _)? = actions.first else { Issue.record("no spawn"); return }
        _ = machine.workerReady(id)
        #expect(machine.state == .ready)
    }

    @Test func callsTakeIdleWorkersThenQueueThenAreRefusedAsOverloaded() {
        var (machine, ids) = ready(spec(instances: 1, maxQueue: 2))
        let result2 = machine.admit(now: t0, queued: false)
        #expect(result2 == .run(ids[0]))
        let result3 = machine.admit(now: t0, queued: false)
        #expect(result3 == .wait)
        let result4 = machine.admit(now: t0, queued: false)
        #expect(result4 == .wait)
        #expect(machine.waiting == 2)
        guard case .reject(.overloaded, _) = machine.admit(now: t0, queued: false) else {
            Issue.record("a third waiting call was not refused")
            return
        }
        _ = machine.finish(ids[0], failure: nil, workerLost: false, now: t0)
        let result5 = machine.admit(now: t0, queued: true)
        #expect(result5 == .run(ids[0]))
        #expect(machine.waiting == 1)
        machine.leaveQueue()
        #expect(machine.waiting == 0)
    }

    @Test func aWorkerThatDiesIsReplacedWithGrowingBackoffUntilThePolicyGivesUp() {
        var (machine, ids) = ready(spec(restartMax: 3))
        var current = ids[0]
        var delays: [Duration] = []
        for round in 0..<3 {
            let actions = machine.workerExited(current, now: t0 + .seconds(round), description: "exited with code 1")
            guard case let .spawn(next, after)? = actions.first else { Issue.record("no restart in round \(round)"); return }
            delays.append(after)
            machine.workerSpawning(next, now: t0 + .seconds(round))
            _ = machine.workerReady(next)
            current = next
        }
        #expect(delays == [.zero, .milliseconds(100), .milliseconds(200)])
        #expect(machine.restarts.total == 3)
        let result6 = machine.workerExited(current, now: t0 + .seconds(4), description: "exited with code 1")
        #expect(result6 == [])
        guard case let .failed(code, reason) = machine.state else { Issue.record("not failed"); return }
        #expect(code == .failed)
        #expect(reason.contains("restarted 3 times within 60.0 seconds; last: exited with code 1"))
        guard case .reject(.failed, _) = machine.admit(now: t0, queued: false) else {
            Issue.record("a failed plugin admitted a call")
            return
        }
    }

    @Test func aStableRunForgetsOldFailures() {
        var (machine, ids) = ready(spec(restartMax: 1))
        guard case let .spawn(next, _)? = machine.workerExited(ids[0], now: t0, description: "crash").first else {
            Issue.record("no restart")
            return
        }
        machine.workerSpawning(next, now: t0)
        _ = machine.workerReady(next)
        // It ran for longer than `within`: its death is the first of a new count.
        guard case .spawn? = machine.workerExited(next, now: t0 + .seconds(61), description: "crash").first else {
            Issue.record("a worker that ran stably was not restarted")
            return
        }
        #expect(machine.state == .ready)
    }

    @Test func killStopsEverythingAndRefusesCallsUntilRestart() {
        var (machine, ids) = ready(spec(instances: 2))
        let result7 = machine.admit(now: t0, queued: false)
        #expect(result7 == .run(ids[1]))
        let actions = machine.kill()
        #expect(actions == [.kill(ids[0], because: .killed), .kill(ids[1], because: .killed)])
        guard case .reject(.stopped, _) = machine.admit(now: t0, queued: false) else {
            Issue.record("a killed plugin admitted a call")
            return
        }
        // Their exits are expected: nothing is restarted.
        let result8 = machine.workerExited(ids[0], now: t0, description: "SIGKILL")
        #expect(result8 == [])
        _ = machine.finish(ids[1], failure: .killed, workerLost: true, now: t0)
        let result9 = machine.workerExited(ids[1], now: t0, description: "SIGKILL")
        #expect(result9 == [])
        #expect(machine.workers.isEmpty)

        let restart = machine.restart()
        #expect(restart.count == 2)
        #expect(machine.state == .starting)
        #expect(machine.restarts.total == 0)
    }

    @Test func aTimedOutWorkerIsReplacedWhenItExits() {
        var (machine, ids) = ready(spec())
        let result10 = machine.admit(now: t0, queued: false)
        #expect(result10 == .run(ids[0]))
        let result11 = machine.finish(ids[0], failure: .timeout, workerLost: true, now: t0)
        #expect(result11 == [])
        let result12 = machine.admit(now: t0, queued: false)
        #expect(result12 == .wait)  // the dying worker takes no calls
        guard case .spawn? = machine.workerExited(ids[0], now: t0, description: "SIGKILL").first else {
            Issue.record("no replacement")
            return
        }
    }

    @Test func aWorkerFoundUnusableAtCheckoutIsReplacedAndTheCallerTakesAnother() {
        var (machine, ids) = ready(spec(instances: 2))
        #expect(machine.admit(now: t0, queued: false) == .run(ids[1]))
        machine.workerUnusable(ids[1], code: .protocolViolation, now: t0)
        #expect(machine.phaseName(ids[1]) == "dying")
        #expect(machine.admit(now: t0, queued: false) == .run(ids[0]))
        guard case .spawn? = machine.workerExited(ids[1], now: t0 + .seconds(1), description: "SIGKILL").first else {
            Issue.record("no replacement")
            return
        }
    }

    @Test func aWorkerFoundUnusableEndsAHalfOpenTrial() {
        var (machine, ids) = ready(spec(instances: 1, circuit: .init(failures: 1, reset: .seconds(1))))
        #expect(machine.admit(now: t0, queued: false) == .run(ids[0]))
        _ = machine.finish(ids[0], failure: .trap, workerLost: false, now: t0)
        #expect(machine.admit(now: t0 + .seconds(2), queued: false) == .run(ids[0]))  // the trial
        machine.workerUnusable(ids[0], code: .protocolViolation, now: t0 + .seconds(2))
        #expect(machine.circuit?.name == "open", "not stuck half-open with a trial that never ran")
    }

    @Test func aWorkerThatCannotLoadFailsThePluginAndKillsTheOthers() {
        var machine = PluginStateMachine(spec: spec(instances: 2))
        let spawns = machine.begin()
        guard case let .spawn(first, _) = spawns[0], case let .spawn(second, _) = spawns[1] else { return }
        _ = machine.workerReady(first)
        let actions = machine.workerFailedToStart(second, code: .loadFailed, reason: "missing export: execute")
        #expect(actions == [.kill(first, because: .stopped)])
        #expect(machine.state == .failed(code: .loadFailed, reason: "missing export: execute"))
    }

    @Test func aWorkerThatDiesWhileLoadingIsRetriedLikeACrash() {
        var machine = PluginStateMachine(spec: spec(restartMax: 1))
        guard case let .spawn(first, _)? = machine.begin().first else { return }
        let retry = machine.workerFailedToStart(first, code: .workerCrashed, reason: "worker died while loading: killed by SIGKILL")
        guard case let .spawn(second, after)? = retry.first else { Issue.record("no retry: \(retry)"); return }
        #expect(after == .zero)
        #expect(machine.state == .starting)
        let giveUp = machine.workerFailedToStart(second, code: .workerCrashed, reason: "worker died while loading: killed by SIGKILL")
        #expect(giveUp.isEmpty)
        guard case .failed(.failed, _) = machine.state else { Issue.record("not failed: \(machine.state)"); return }
    }

    @Test func aWorkerReadyAfterTheKillIsNotWanted() {
        var machine = PluginStateMachine(spec: spec())
        guard case let .spawn(id, _)? = machine.begin().first else { return }
        _ = machine.kill()
        let (wanted, actions) = machine.workerReady(id)
        #expect(!wanted)
        #expect(actions.isEmpty)  // the kill already covered it
    }

    @Test func shutdownRetiresIdleWorkersNowAndBusyOnesWhenTheirCallEnds() {
        var (machine, ids) = ready(spec(instances: 2))
        let result13 = machine.admit(now: t0, queued: false)
        #expect(result13 == .run(ids[1]))
        let result14 = machine.shutdown()
        #expect(result14 == [.retire(ids[0])])
        guard case .reject(.stopped, _) = machine.admit(now: t0, queued: false) else {
            Issue.record("a call was admitted during shutdown")
            return
        }
        let result15 = machine.finish(ids[1], failure: nil, workerLost: false, now: t0)
        #expect(result15 == [.retire(ids[1])])
        let result16 = machine.workerExited(ids[0], now: t0, description: "exited with code 0")
        #expect(result16 == [])
    }

    @Test func consecutiveFailuresOpenTheCircuitWhichHalfOpensAndClosesOnSuccess() {
        var (machine, ids) = ready(spec(circuit: .init(failures: 2, reset: .seconds(30))))
        for _ in 0..<2 {
            let result17 = machine.admit(now: t0, queued: false)
            #expect(result17 == .run(ids[0]))
            _ = machine.finish(ids[0], failure: .trap, workerLost: false, now: t0)
        }
        guard case .reject(.circuitOpen, _) = machine.admit(now: t0 + .seconds(1), queued: false) else {
            Issue.record("the circuit did not open")
            return
        }
        // After the reset one trial call goes through; a second one meanwhile is refused.
        let result18 = machine.admit(now: t0 + .seconds(31), queued: false)
        #expect(result18 == .run(ids[0]))
        #expect(machine.circuit?.name == "half-open")
        _ = machine.finish(ids[0], failure: nil, workerLost: false, now: t0 + .seconds(31))
        #expect(machine.circuit?.name == "closed")
        let result19 = machine.admit(now: t0 + .seconds(31), queued: false)
        #expect(result19 == .run(ids[0]))
    }
}

@Suite struct CircuitBreakerTests {
    let t0 = ContinuousClock.now

    @Test func aFailedTrialOpensTheCircuitAgain() {
        var breaker = CircuitBreaker(policy: .init(failures: 1, reset: .seconds(5)))
        let result20 = breaker.allow(now: t0)
        #expect(result20)
        breaker.record(failure: .timeout, now: t0)
        let result21 = breaker.allow(now: t0 + .seconds(4))
        #expect(!result21)
        #expect(breaker.retryAfter(now: t0 + .seconds(4)) == .seconds(1))
        let result22 = breaker.allow(now: t0 + .seconds(5))
        #expect(result22)
        breaker.record(failure: .workerCrashed, now: t0 + .seconds(5))
        #expect(breaker.name == "open")
        let result23 = breaker.allow(now: t0 + .seconds(9))
        #expect(!result23)
    }

    @Test func failuresThatAreNotThePluginsFaultDoNotCount() {
        var breaker = CircuitBreaker(policy: .init(failures: 1, reset: .seconds(5)))
        for code: PluginError.Code in [.killed, .overloaded, .stopped, .circuitOpen] {
            breaker.record(failure: code, now: t0)
        }
        #expect(breaker.name == "closed")
    }

    @Test func aSuccessResetsTheCount() {
        var breaker = CircuitBreaker(policy: .init(failures: 2, reset: .seconds(5)))
        breaker.record(failure: .trap, now: t0)
        breaker.record(failure: nil, now: t0)
        breaker.record(failure: .trap, now: t0)
        #expect(breaker.name == "closed")
    }
}

/// Hot reload as generations: the old one serves until the whole new one is ready.
@Suite struct ReloadStateMachineTests {
    let t0 = ContinuousClock.now

    func readyMachine(instances: Int) -> (PluginStateMachine, [Int]) {
        var spec = PluginSpec(name: "p", wasm: "/p.wasm")
        spec.instances = instances
        var machine = PluginStateMachine(spec: spec)
        let ids = machine.begin().compactMap { action -> Int? in
            if case let .spawn(id, _) = action { return id }
            return nil
        }
        for id in ids { _ = machine.workerReady(id) }
        return (machine, ids)
    }

    func spawned(_ actions: [PluginStateMachine.Action]) -> [Int] {
        actions.compactMap { if case let .spawn(id, _) = $0 { return id } else { return nil } }
    }

    @Test func theNewGenerationTakesOverOnlyWhenAllOfItIsReady() {
        var (machine, old) = readyMachine(instances: 2)
        var next = machine.spec
        next.timeout = .seconds(9)
        let fresh = spawned(machine.beginReload(spec: next))
        #expect(fresh.count == 2)
        #expect(machine.stateName == "reloading")
        _ = machine.workerReady(fresh[0])
        // Calls still go to the old generation.
        let first = machine.admit(now: t0, queued: false)
        #expect(first == .run(old[1]))
        let (_, switchActions) = machine.workerReady(fresh[1])
        // The idle old worker is retired now; the busy one when its call ends.
        #expect(switchActions == [.retire(old[0])])
        #expect(machine.generation == 1)
        #expect(machine.spec.timeout == .seconds(9))
        #expect(machine.lastReload == .succeeded(generation: 1))
        let second = machine.admit(now: t0, queued: false)
        #expect(fresh.contains { second == .run($0) })
        let finished = machine.finish(old[1], failure: nil, workerLost: false, now: t0)
        #expect(finished == [.retire(old[1])])
        // Retired workers exiting are not replaced.
        let exited = machine.workerExited(old[0], now: t0, description: "exited with code 0")
        #expect(exited == [])
    }

    @Test func aNewGenerationThatCannotLoadIsDroppedAndTheOldOneServes() {
        var (machine, old) = readyMachine(instances: 2)
        let fresh = spawned(machine.beginReload(spec: machine.spec))
        _ = machine.workerReady(fresh[0])
        let dropped = machine.workerFailedToStart(fresh[1], code: .loadFailed, reason: "missing export: execute")
        #expect(dropped == [.kill(fresh[0], because: .stopped)])
        #expect(machine.state == .ready)
        #expect(machine.generation == 0)
        #expect(machine.lastReload == .failed(reason: "missing export: execute"))
        let admission = machine.admit(now: t0, queued: false)
        #expect(old.contains { admission == .run($0) })
    }

    @Test func aNewerReloadSupersedesOneInProgress() {
        var (machine, _) = readyMachine(instances: 1)
        let first = spawned(machine.beginReload(spec: machine.spec))
        let actions = machine.beginReload(spec: machine.spec)
        #expect(actions.contains(.kill(first[0], because: .stopped)))
        let second = spawned(actions)
        let (_, switched) = machine.workerReady(second[0])
        #expect(!switched.isEmpty)
        #expect(machine.generation == 2)
        let late = machine.workerReady(first[0])
        #expect(!late.wanted)
    }

    @Test func reloadingAStoppedPluginStartsItWithTheNewGeneration() {
        var (machine, _) = readyMachine(instances: 1)
        _ = machine.kill()
        let fresh = spawned(machine.beginReload(spec: machine.spec))
        #expect(fresh.count == 1)
        #expect(machine.state == .starting)
        _ = machine.workerReady(fresh[0])
        #expect(machine.state == .ready)
    }
}
