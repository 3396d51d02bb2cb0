import PlugvisorManifest
import PlugvisorProtocol
import Testing

@testable import Plugvisor

/// The ids of the workers `actions` spawn.
func spawned(_ actions: [PluginStateMachine.Action]) -> [Int] {
    actions.compactMap { if case let .spawn(id, _) = $0 { id } else { nil } }
}

/// The outcomes `actions` settle, by generation.
func settled(
    _ actions: [PluginStateMachine.Action]
) -> [PluginStateMachine.Generation: PluginStateMachine.ReloadOutcome] {
    Dictionary(
        uniqueKeysWithValues: actions.compactMap { if case let .settle(g, outcome) = $0 { (g, outcome) } else { nil } })
}

func testSpec(
    instances: Int = 1, maxQueue: Int = 2, restartMax: Int = 3, circuit: PluginSpec.CircuitPolicy? = nil
) -> PluginSpec {
    var spec = PluginSpec(name: "p", wasm: "/p.wasm")
    spec.instances = instances
    spec.maxQueue = maxQueue
    spec.restart = .init(max: restartMax, within: .seconds(60), backoffMin: .milliseconds(100), backoffMax: .seconds(1))
    spec.circuit = circuit
    return spec
}

/// A machine whose first workers are all ready, and their ids.
func readyMachine(_ spec: PluginSpec, at t0: ContinuousClock.Instant) throws -> (PluginStateMachine, [Int]) {
    var machine = PluginStateMachine(spec: spec)
    let ids = spawned(machine.begin(now: t0))
    for id in ids {
        #expect(machine.workerSpawning(id, now: t0).wanted)
        #expect(machine.workerReady(id, now: t0).wanted)
    }
    try #require(machine.state == .serving)
    return (machine, ids)
}

/// The plugin lifecycle without processes: events in, actions out.
@Suite struct PluginStateMachineTests {
    let t0 = ContinuousClock.now

    @Test func beginSpawnsOneWorkerPerInstanceAndTheStartSettlesWhenAllAreReady() throws {
        var machine = PluginStateMachine(spec: testSpec(instances: 3))
        let ids = spawned(machine.begin(now: t0))
        #expect(ids.count == 3)
        #expect(machine.reportedState == .starting)
        #expect(settled(machine.workerReady(ids[0], now: t0).actions).isEmpty)
        #expect(machine.state == .serving)
        #expect(settled(machine.workerReady(ids[1], now: t0).actions).isEmpty)
        #expect(settled(machine.workerReady(ids[2], now: t0).actions) == [0: .succeeded(version: 0)])
        #expect(machine.lastReload == nil, "a start is not a reload")
    }

    @Test func callsTakeIdleWorkersThenQueueThenAreRefusedAsOverloaded() throws {
        var (machine, ids) = try readyMachine(testSpec(instances: 1, maxQueue: 2), at: t0)
        #expect(machine.admit(1, now: t0) == .run(ids[0]))
        #expect(machine.admit(2, now: t0) == .wait)
        #expect(machine.admit(3, now: t0) == .wait)
        #expect(machine.queue == [2, 3])
        guard case .reject(.overloaded, _) = machine.admit(4, now: t0) else {
            Issue.record("a third waiting call was not refused")
            return
        }
        #expect(machine.finish(ids[0], failure: nil, workerLost: false, now: t0) == [.handOff(ids[0], to: 2)])
        let leftWhileQueued = machine.leaveQueue(3)
        #expect(leftWhileQueued)
        let leftAfterHandOff = machine.leaveQueue(2)
        #expect(!leftAfterHandOff, "a waiter handed a worker is no longer queued")
        #expect(machine.queue.isEmpty)
    }

    /// The queue is first come, first served: a caller arriving as a worker is freed does not
    /// overtake one already queued.
    @Test func aNewcomerCannotOvertakeAQueuedCaller() throws {
        var (machine, ids) = try readyMachine(testSpec(instances: 1, maxQueue: 4), at: t0)
        #expect(machine.admit(1, now: t0) == .run(ids[0]))
        #expect(machine.admit(2, now: t0) == .wait)
        #expect(machine.admit(3, now: t0) == .wait)
        // The freed worker goes straight to the first in line, before any newcomer can ask.
        #expect(machine.finish(ids[0], failure: nil, workerLost: false, now: t0) == [.handOff(ids[0], to: 2)])
        #expect(machine.admit(4, now: t0) == .wait, "the newcomer queues behind caller 3")
        #expect(machine.finish(ids[0], failure: nil, workerLost: false, now: t0) == [.handOff(ids[0], to: 3)])
        #expect(machine.finish(ids[0], failure: nil, workerLost: false, now: t0) == [.handOff(ids[0], to: 4)])
        #expect(machine.finish(ids[0], failure: nil, workerLost: false, now: t0) == [])
        #expect(machine.admit(5, now: t0) == .run(ids[0]))
    }

    @Test func aWorkerThatBecomesReadyGoesToTheFirstQueuedCaller() throws {
        var machine = PluginStateMachine(spec: testSpec(instances: 1))
        let ids = spawned(machine.begin(now: t0))
        #expect(machine.admit(1, now: t0) == .wait)
        #expect(machine.workerReady(ids[0], now: t0).actions.contains(.handOff(ids[0], to: 1)))
    }

    @Test func queuedCallersAreRefusedWhenThePluginFailsOrIsKilled() throws {
        var (machine, ids) = try readyMachine(testSpec(instances: 1, maxQueue: 4), at: t0)
        #expect(machine.admit(1, now: t0) == .run(ids[0]))
        #expect(machine.admit(2, now: t0) == .wait)
        let killed = machine.kill()
        #expect(killed.contains(.kill(ids[0], because: .killed)))
        #expect(killed.contains { if case .reject(2, .stopped, _) = $0 { true } else { false } })
        #expect(machine.queue.isEmpty)
    }

    @Test func aWorkerThatDiesIsReplacedWithGrowingBackoffUntilThePolicyGivesUp() throws {
        var (machine, ids) = try readyMachine(testSpec(restartMax: 3), at: t0)
        var current = ids[0]
        var delays: [Duration] = []
        for round in 0..<3 {
            let actions = machine.workerExited(current, now: t0 + .seconds(round), description: "exited with code 1")
            guard case let .spawn(next, after)? = actions.first else {
                Issue.record("no restart in round \(round)")
                return
            }
            delays.append(after)
            #expect(machine.workerSpawning(next, now: t0 + .seconds(round)).wanted)
            #expect(machine.workerReady(next, now: t0 + .seconds(round)).wanted)
            current = next
        }
        #expect(delays == [.zero, .milliseconds(100), .milliseconds(200)])
        #expect(machine.restarts.total == 3)
        #expect(machine.workerExited(current, now: t0 + .seconds(4), description: "exited with code 1") == [])
        guard case let .failed(code, reason) = machine.state else {
            Issue.record("not failed")
            return
        }
        #expect(code == .restartLimit)
        #expect(reason.contains("restarted 3 times within 60.0 seconds; last: exited with code 1"))
        guard case .reject(.restartLimit, _) = machine.admit(1, now: t0) else {
            Issue.record("a failed plugin admitted a call")
            return
        }
    }

    @Test func aStableRunForgetsOldFailures() throws {
        var (machine, ids) = try readyMachine(testSpec(restartMax: 1), at: t0)
        let next = try #require(spawned(machine.workerExited(ids[0], now: t0, description: "crash")).first)
        #expect(machine.workerSpawning(next, now: t0).wanted)
        #expect(machine.workerReady(next, now: t0).wanted)
        // It ran for longer than `within`: its death is the first of a new count.
        #expect(
            spawned(machine.workerExited(next, now: t0 + .seconds(61), description: "crash")).count == 1,
            "a worker that ran stably was not restarted")
        #expect(machine.state == .serving)
    }

    @Test func killStopsEverythingAndRefusesCallsUntilRestart() throws {
        var (machine, ids) = try readyMachine(testSpec(instances: 2), at: t0)
        #expect(machine.admit(1, now: t0) == .run(ids[1]))
        #expect(machine.kill() == [.kill(ids[0], because: .killed), .kill(ids[1], because: .killed)])
        guard case .reject(.stopped, _) = machine.admit(2, now: t0) else {
            Issue.record("a killed plugin admitted a call")
            return
        }
        // Their exits are expected: nothing is restarted.
        #expect(machine.workerExited(ids[0], now: t0, description: "SIGKILL") == [])
        #expect(machine.finish(ids[1], failure: .killed, workerLost: true, now: t0) == [])
        #expect(machine.workerExited(ids[1], now: t0, description: "SIGKILL") == [])
        #expect(machine.workers.isEmpty)

        let (generation, restart) = machine.restart(now: t0)
        #expect(spawned(restart).count == 2)
        #expect(generation == 1)
        #expect(machine.state == .starting)
        #expect(machine.restarts.total == 0)
    }

    @Test func aTimedOutWorkerIsReplacedWhenItExits() throws {
        var (machine, ids) = try readyMachine(testSpec(), at: t0)
        #expect(machine.admit(1, now: t0) == .run(ids[0]))
        #expect(machine.finish(ids[0], failure: .timeout, workerLost: true, now: t0) == [])
        #expect(machine.admit(2, now: t0) == .wait)  // the dying worker takes no calls
        let replacement = try #require(spawned(machine.workerExited(ids[0], now: t0, description: "SIGKILL")).first)
        #expect(machine.workerSpawning(replacement, now: t0).wanted)
        #expect(machine.workerReady(replacement, now: t0).actions == [.handOff(replacement, to: 2)])
    }

    @Test func aWorkerFoundUnusableAtCheckoutIsReplacedAndTheCallerKeepsItsPlace() throws {
        var (machine, ids) = try readyMachine(testSpec(instances: 2), at: t0)
        #expect(machine.admit(1, now: t0) == .run(ids[1]))
        machine.workerUnusable(ids[1], code: .protocolViolation, now: t0)
        #expect(machine.reportedState(of: ids[1]) == .dying)
        #expect(machine.admit(1, now: t0, returning: true) == .run(ids[0]))
        #expect(machine.admit(2, now: t0) == .wait)
        machine.workerUnusable(ids[0], code: .protocolViolation, now: t0)
        #expect(machine.admit(1, now: t0, returning: true) == .wait)
        #expect(machine.queue == [1, 2], "the caller returning keeps the head of the queue")
        #expect(spawned(machine.workerExited(ids[1], now: t0 + .seconds(1), description: "SIGKILL")).count == 1)
    }

    @Test func aWorkerFoundUnusableEndsAHalfOpenTrial() throws {
        var (machine, ids) = try readyMachine(
            testSpec(instances: 1, circuit: .init(failures: 1, reset: .seconds(1))), at: t0)
        #expect(machine.admit(1, now: t0) == .run(ids[0]))
        _ = machine.finish(ids[0], failure: .trap, workerLost: false, now: t0)
        #expect(machine.admit(2, now: t0 + .seconds(2)) == .run(ids[0]))  // the trial
        machine.workerUnusable(ids[0], code: .protocolViolation, now: t0 + .seconds(2))
        #expect(machine.circuit?.reportedState == .open, "not stuck half-open with a trial that never ran")
    }

    @Test func aWorkerGivenBackUnusedGoesToTheNextInLineAndCountsNothing() throws {
        var (machine, ids) = try readyMachine(
            testSpec(instances: 1, circuit: .init(failures: 1, reset: .seconds(1))), at: t0)
        #expect(machine.admit(1, now: t0) == .run(ids[0]))
        #expect(machine.admit(2, now: t0) == .wait)
        #expect(machine.admit(3, now: t0) == .wait)
        #expect(machine.finish(ids[0], failure: nil, workerLost: false, now: t0) == [.handOff(ids[0], to: 2)])
        #expect(machine.returnUnused(ids[0], now: t0) == [.handOff(ids[0], to: 3)])
        #expect(machine.circuit?.reportedState == .closed)
    }

    @Test func aWorkerThatCannotLoadFailsThePluginAndKillsTheOthers() throws {
        var machine = PluginStateMachine(spec: testSpec(instances: 2))
        let ids = spawned(machine.begin(now: t0))
        _ = machine.workerReady(ids[0], now: t0)
        let actions = machine.workerFailedToStart(ids[1], code: .loadFailed, reason: "missing export: execute", now: t0)
        #expect(actions.contains(.kill(ids[0], because: .stopped)))
        #expect(settled(actions) == [0: .failed(reason: "missing export: execute")])
        #expect(machine.state == .failed(code: .loadFailed, reason: "missing export: execute"))
    }

    @Test func aWorkerThatDiesWhileLoadingIsRetriedLikeACrashAndTheStartWaitsForIt() throws {
        var machine = PluginStateMachine(spec: testSpec(restartMax: 1))
        let first = try #require(spawned(machine.begin(now: t0)).first)
        let retry = machine.workerFailedToStart(
            first, code: .workerCrashed, reason: "worker died while loading: killed by SIGKILL", now: t0)
        guard case let .spawn(second, after)? = retry.first else {
            Issue.record("no retry: \(retry)")
            return
        }
        #expect(after == .zero)
        #expect(settled(retry).isEmpty, "the start waits for the retry")
        #expect(machine.state == .starting)
        let giveUp = machine.workerFailedToStart(
            second, code: .workerCrashed, reason: "worker died while loading: killed by SIGKILL", now: t0)
        guard case .failed(.restartLimit, _) = machine.state else {
            Issue.record("not failed: \(machine.state)")
            return
        }
        guard case .failed? = settled(giveUp)[0] else {
            Issue.record("the start did not settle: \(giveUp)")
            return
        }
    }

    @Test func aWorkerReadyAfterTheKillIsNotWanted() throws {
        var machine = PluginStateMachine(spec: testSpec())
        let id = try #require(spawned(machine.begin(now: t0)).first)
        _ = machine.kill()
        let (wanted, actions) = machine.workerReady(id, now: t0)
        #expect(!wanted)
        #expect(actions.isEmpty)  // the kill already covered it
    }

    @Test func aSpawnNoLongerWantedIsForgottenAndSettlesNothingTwice() throws {
        var machine = PluginStateMachine(spec: testSpec())
        let id = try #require(spawned(machine.begin(now: t0)).first)
        #expect(settled(machine.kill()) == [0: .failed(reason: "killed by name")])
        #expect(machine.workerSpawning(id, now: t0) == (false, []))
        #expect(machine.workers.isEmpty)
    }

    /// The exit of a worker still in its handshake may be seen before or after the handshake's
    /// end: either way the worker counts as dead, once.
    @Test func anExitDuringTheHandshakeIsConcludedByTheHandshake() throws {
        var (machine, ids) = try readyMachine(testSpec(instances: 1), at: t0)
        let replacement = try #require(spawned(machine.workerExited(ids[0], now: t0, description: "crash")).first)
        #expect(machine.workerSpawning(replacement, now: t0).wanted)
        #expect(machine.workerExited(replacement, now: t0, description: "crash 2") == [])
        let (wanted, actions) = machine.workerReady(replacement, now: t0)
        #expect(!wanted)
        #expect(spawned(actions).count == 1, "the dead worker is replaced: \(actions)")
        #expect(machine.workers[replacement] == nil)
    }

    @Test func shutdownRetiresIdleWorkersNowAndBusyOnesWhenTheirCallEnds() throws {
        var (machine, ids) = try readyMachine(testSpec(instances: 2), at: t0)
        #expect(machine.admit(1, now: t0) == .run(ids[1]))
        #expect(machine.admit(2, now: t0) == .run(ids[0]))
        #expect(machine.admit(3, now: t0) == .wait)
        let shutdown = machine.shutdown()
        #expect(shutdown.count == 1)
        #expect(shutdown.contains { if case .reject(3, .stopped, _) = $0 { true } else { false } })
        guard case .reject(.stopped, _) = machine.admit(4, now: t0) else {
            Issue.record("a call was admitted during shutdown")
            return
        }
        #expect(machine.finish(ids[1], failure: nil, workerLost: false, now: t0) == [.retire(ids[1])])
        #expect(machine.finish(ids[0], failure: nil, workerLost: false, now: t0) == [.retire(ids[0])])
        #expect(machine.workerExited(ids[0], now: t0, description: "exited with code 0") == [])
    }

    @Test func consecutiveFailuresOpenTheCircuitWhichHalfOpensAndClosesOnSuccess() throws {
        var (machine, ids) = try readyMachine(testSpec(circuit: .init(failures: 2, reset: .seconds(30))), at: t0)
        for caller in 1...2 {
            #expect(machine.admit(caller, now: t0) == .run(ids[0]))
            _ = machine.finish(ids[0], failure: .trap, workerLost: false, now: t0)
        }
        guard case .reject(.circuitOpen, _) = machine.admit(3, now: t0 + .seconds(1)) else {
            Issue.record("the circuit did not open")
            return
        }
        // After the reset one trial call goes through; a second one meanwhile is refused.
        #expect(machine.admit(4, now: t0 + .seconds(31)) == .run(ids[0]))
        #expect(machine.circuit?.reportedState == .halfOpen)
        _ = machine.finish(ids[0], failure: nil, workerLost: false, now: t0 + .seconds(31))
        #expect(machine.circuit?.reportedState == .closed)
        #expect(machine.admit(5, now: t0 + .seconds(31)) == .run(ids[0]))
    }

    @Test func queuedCallersAreRefusedWhenTheCircuitOpens() throws {
        var (machine, ids) = try readyMachine(
            testSpec(maxQueue: 4, circuit: .init(failures: 1, reset: .seconds(30))), at: t0)
        #expect(machine.admit(1, now: t0) == .run(ids[0]))
        #expect(machine.admit(2, now: t0) == .wait)
        let finished = machine.finish(ids[0], failure: .trap, workerLost: false, now: t0)
        #expect(finished.contains { if case .reject(2, .circuitOpen, _) = $0 { true } else { false } })
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
        #expect(breaker.reportedState == .open)
        let result23 = breaker.allow(now: t0 + .seconds(9))
        #expect(!result23)
    }

    @Test func failuresThatAreNotThePluginsFaultDoNotCount() {
        var breaker = CircuitBreaker(policy: .init(failures: 1, reset: .seconds(5)))
        for code: PluginError.Code in [.killed, .overloaded, .stopped, .circuitOpen] {
            breaker.record(failure: code, now: t0)
        }
        #expect(breaker.reportedState == .closed)
    }

    @Test func aSuccessResetsTheCount() {
        var breaker = CircuitBreaker(policy: .init(failures: 2, reset: .seconds(5)))
        breaker.record(failure: .trap, now: t0)
        breaker.record(failure: nil, now: t0)
        breaker.record(failure: .trap, now: t0)
        #expect(breaker.reportedState == .closed)
    }
}

/// Hot reload as generations: the old one serves until the whole new one is ready; every
/// reload settles on its own generation.
@Suite struct ReloadStateMachineTests {
    let t0 = ContinuousClock.now

    @Test func theNewGenerationTakesOverOnlyWhenAllOfItIsReady() throws {
        var (machine, old) = try readyMachine(testSpec(instances: 2), at: t0)
        var next = machine.spec
        next.timeout = .seconds(9)
        let (generation, started) = machine.beginReload(spec: next, now: t0)
        let fresh = spawned(started)
        #expect(fresh.count == 2)
        #expect(machine.reportedState == .reloading)
        #expect(machine.workerReady(fresh[0], now: t0).actions.isEmpty)
        // Calls still go to the old generation.
        #expect(machine.admit(1, now: t0) == .run(old[1]))
        let (_, switchActions) = machine.workerReady(fresh[1], now: t0)
        // The idle old worker is retired now; the busy one when its call ends.
        #expect(switchActions == [.retire(old[0]), .settle(try #require(generation), .succeeded(version: 1))])
        #expect(machine.version == 1)
        #expect(machine.spec.timeout == .seconds(9))
        #expect(machine.lastReload == .succeeded(version: 1))
        let second = machine.admit(2, now: t0)
        #expect(fresh.contains { second == .run($0) })
        #expect(machine.finish(old[1], failure: nil, workerLost: false, now: t0) == [.retire(old[1])])
        // Retired workers exiting are not replaced.
        #expect(machine.workerExited(old[0], now: t0, description: "exited with code 0") == [])
    }

    @Test func aNewGenerationThatCannotLoadIsDroppedAndTheOldOneServesWithItsVersion() throws {
        var (machine, old) = try readyMachine(testSpec(instances: 2), at: t0)
        let (generation, started) = machine.beginReload(spec: machine.spec, now: t0)
        let fresh = spawned(started)
        _ = machine.workerReady(fresh[0], now: t0)
        let dropped = machine.workerFailedToStart(
            fresh[1], code: .loadFailed, reason: "missing export: execute", now: t0)
        #expect(
            dropped == [
                .kill(fresh[0], because: .stopped),
                .settle(try #require(generation), .failed(reason: "missing export: execute")),
            ])
        #expect(machine.state == .serving)
        #expect(machine.generation == 0)
        #expect(machine.lastReload == .failed(reason: "missing export: execute"))
        let admission = machine.admit(1, now: t0)
        #expect(old.contains { admission == .run($0) })
        // The failed attempt did not use up a version number.
        let (_, again) = machine.beginReload(spec: machine.spec, now: t0)
        for id in spawned(again) { _ = machine.workerReady(id, now: t0) }
        #expect(machine.version == 1)
    }

    @Test func aNewerReloadSupersedesOneInProgress() throws {
        var (machine, _) = try readyMachine(testSpec(instances: 1), at: t0)
        let (firstGeneration, firstActions) = machine.beginReload(spec: machine.spec, now: t0)
        let first = spawned(firstActions)
        let (_, actions) = machine.beginReload(spec: machine.spec, now: t0)
        #expect(actions.contains(.kill(first[0], because: .stopped)))
        #expect(settled(actions) == [try #require(firstGeneration): .failed(reason: "superseded by a newer reload")])
        let second = spawned(actions)
        #expect(!machine.workerReady(second[0], now: t0).actions.isEmpty)
        #expect(machine.version == 1)
        #expect(!machine.workerReady(first[0], now: t0).wanted)
    }

    @Test func reloadingAStoppedPluginStartsItWithTheNewGeneration() throws {
        var (machine, _) = try readyMachine(testSpec(instances: 1), at: t0)
        _ = machine.kill()
        let (generation, started) = machine.beginReload(spec: machine.spec, now: t0)
        let fresh = spawned(started)
        #expect(fresh.count == 1)
        #expect(machine.state == .starting)
        #expect(machine.lastReload == nil, "no outcome before the new generation settles")
        #expect(
            settled(machine.workerReady(fresh[0], now: t0).actions) == [
                try #require(generation): .succeeded(version: 1)
            ])
        #expect(machine.state == .serving)
        #expect(machine.lastReload == .succeeded(version: 1))
    }

    /// A failed plugin reloaded with a module that still fails: the reload fails, and says so.
    @Test func reloadingAFailedPluginWithAModuleThatStillFailsFails() throws {
        var machine = PluginStateMachine(spec: testSpec())
        let first = spawned(machine.begin(now: t0))
        _ = machine.workerFailedToStart(first[0], code: .loadFailed, reason: "missing export: execute", now: t0)
        let (generation, started) = machine.beginReload(spec: machine.spec, now: t0)
        #expect(machine.lastReload == nil)
        let fresh = spawned(started)
        let failed = machine.workerFailedToStart(
            fresh[0], code: .loadFailed, reason: "missing export: execute", now: t0)
        #expect(settled(failed) == [try #require(generation): .failed(reason: "missing export: execute")])
        #expect(machine.lastReload == .failed(reason: "missing export: execute"))
        #expect(machine.state == .failed(code: .loadFailed, reason: "missing export: execute"))
        #expect(machine.version == 0)
    }

    /// A reload settles on its own generation: a restart of the serving one delayed by backoff
    /// does not hold it up.
    @Test func aReloadDoesNotWaitForADelayedRestartOfTheServingGeneration() throws {
        var (machine, ids) = try readyMachine(testSpec(instances: 2), at: t0)
        // Two quick deaths: the second replacement waits out a backoff.
        let firstReplacement = try #require(spawned(machine.workerExited(ids[0], now: t0, description: "crash")).first)
        _ = machine.workerReady(firstReplacement, now: t0)
        let delayed = machine.workerExited(ids[1], now: t0, description: "crash")
        guard case let .spawn(_, after)? = delayed.first, after > .zero else {
            Issue.record("no delayed restart: \(delayed)")
            return
        }
        let (generation, started) = machine.beginReload(spec: machine.spec, now: t0)
        let fresh = spawned(started)
        _ = machine.workerReady(fresh[0], now: t0)
        let done = machine.workerReady(fresh[1], now: t0).actions
        #expect(settled(done) == [try #require(generation): .succeeded(version: 1)])
    }

    // MARK: Calls sent behind calls (pipelining)

    /// A small call with `deadline`, which may be sent behind another.
    func small(_ deadline: ContinuousClock.Instant) -> PluginStateMachine.CallTerms {
        .init(deadline: deadline, mayPipeline: true)
    }

    /// A busy worker takes calls behind its own up to the pipeline's depth; later callers queue,
    /// and each answer read makes room for the next in line while the worker stays busy.
    @Test func aBusyWorkerTakesCallsBehindItsOwnUpToTheDepthAndTheQueueRefillsIt() throws {
        let depth = PluginStateMachine.pipelineDepth
        #expect(depth >= 2)
        var (machine, ids) = try readyMachine(testSpec(instances: 1, maxQueue: 2 * depth), at: t0)
        let deadline = t0 + .seconds(10)
        #expect(machine.admit(1, now: t0, terms: small(deadline)) == .run(ids[0]))
        for waiter in 2...depth {
            #expect(machine.admit(waiter, now: t0, terms: small(deadline)) == .run(ids[0]), "sent behind call 1")
        }
        #expect(machine.admit(depth + 1, now: t0, terms: small(deadline)) == .wait, "never more than the depth")
        #expect(machine.waiting == depth, "calls behind others count as waiting")
        #expect(
            machine.finish(ids[0], failure: nil, workerLost: false, now: t0) == [.handOff(ids[0], to: depth + 1)])
        #expect(machine.reportedState(of: ids[0]) == .busy)
        for _ in 1..<depth {
            #expect(machine.finish(ids[0], failure: nil, workerLost: false, now: t0) == [])
            #expect(machine.reportedState(of: ids[0]) == .busy, "calls behind are still to be answered")
        }
        #expect(machine.finish(ids[0], failure: nil, workerLost: false, now: t0) == [])
        #expect(machine.reportedState(of: ids[0]) == .idle)
    }

    /// A call too large to pipeline waits for an idle worker, and first come, first served holds
    /// behind it: a small newcomer does not slip past it into the busy worker's pipeline.
    @Test func aCallThatMayNotBePipelinedWaitsForAnIdleWorkerAndThoseBehindItWaitToo() throws {
        var (machine, ids) = try readyMachine(testSpec(instances: 1, maxQueue: 4), at: t0)
        let deadline = t0 + .seconds(10)
        #expect(machine.admit(1, now: t0, terms: small(deadline)) == .run(ids[0]))
        #expect(machine.admit(2, now: t0, terms: .init(deadline: deadline, mayPipeline: false)) == .wait)
        #expect(machine.admit(3, now: t0, terms: small(deadline)) == .wait)
        #expect(
            machine.finish(ids[0], failure: nil, workerLost: false, now: t0) == [
                .handOff(ids[0], to: 2), .handOff(ids[0], to: 3),
            ], "the large call goes to the idle worker, the small one behind it")
    }

    /// A call is never sent behind one whose deadline is later than its own: it would time out
    /// waiting for a call it cannot stop.
    @Test func aCallIsNeverSentBehindOneThatMayOutliveIt() throws {
        var (machine, ids) = try readyMachine(testSpec(instances: 1, maxQueue: 4), at: t0)
        #expect(machine.admit(1, now: t0, terms: small(t0 + .seconds(10))) == .run(ids[0]))
        #expect(machine.admit(2, now: t0, terms: small(t0 + .seconds(5))) == .wait)
        #expect(machine.admit(3, now: t0, terms: small(t0 + .seconds(10))) == .wait, "and nobody overtakes it")
    }

    /// When a worker is lost during its call, the call sent behind it never ran: its caller
    /// gives the place back, keeps the head of the queue, and goes first to the replacement.
    @Test func aCallBehindALostOneIsDispatchedAgainFirst() throws {
        let depth = PluginStateMachine.pipelineDepth
        var (machine, ids) = try readyMachine(testSpec(instances: 1, maxQueue: 2 * depth), at: t0)
        let deadline = t0 + .seconds(10)
        for waiter in 1...depth { #expect(machine.admit(waiter, now: t0, terms: small(deadline)) == .run(ids[0])) }
        let queued = depth + 1
        #expect(machine.admit(queued, now: t0, terms: small(deadline)) == .wait)
        #expect(machine.finish(ids[0], failure: .workerCrashed, workerLost: true, now: t0) == [])
        // The callers behind it learn theirs never ran, give the place back and ask again.
        let behind = Array(2...depth)
        for waiter in behind {
            #expect(machine.returnUnused(ids[0], now: t0) == [], "a dying worker is handed to nobody")
            #expect(machine.admit(waiter, now: t0, terms: small(deadline), returning: true) == .wait)
        }
        #expect(machine.queue == behind.reversed() + [queued], "those that were sent go first")
        let replacement = try #require(spawned(machine.workerExited(ids[0], now: t0, description: "SIGKILL")).first)
        #expect(machine.workerSpawning(replacement, now: t0).wanted)
        let handed = machine.workerReady(replacement, now: t0).actions
        #expect(handed == (behind.reversed() + [queued]).prefix(depth).map { .handOff(replacement, to: $0) })
    }

    /// Only the serving generation's workers take calls behind their own: after a reload's
    /// switch, an old worker still busy finishes its call and is retired.
    @Test func onlyTheServingGenerationTakesCallsBehindItsOwn() throws {
        var (machine, ids) = try readyMachine(
            testSpec(instances: 1, maxQueue: 2 * PluginStateMachine.pipelineDepth), at: t0)
        let deadline = t0 + .seconds(10)
        #expect(machine.admit(1, now: t0, terms: small(deadline)) == .run(ids[0]))
        let (_, started) = machine.beginReload(spec: machine.spec, now: t0)
        let fresh = try #require(spawned(started).first)
        #expect(machine.workerSpawning(fresh, now: t0).wanted)
        #expect(machine.workerReady(fresh, now: t0).wanted)
        let depth = PluginStateMachine.pipelineDepth
        for waiter in 2...(depth + 1) {
            #expect(machine.admit(waiter, now: t0, terms: small(deadline)) == .run(fresh))
        }
        #expect(machine.admit(depth + 2, now: t0, terms: small(deadline)) == .wait, "not behind the old worker's call")
        #expect(machine.finish(ids[0], failure: nil, workerLost: false, now: t0) == [.retire(ids[0])])
    }

    // MARK: Spare workers (standby)

    /// A machine with one serving worker and `standby` spares, all ready; their ids.
    func machineWithSpares(standby: Int, at t0: ContinuousClock.Instant) throws -> (PluginStateMachine, Int, [Int]) {
        var spec = testSpec(instances: 1, maxQueue: 4)
        spec.standby = standby
        var machine = PluginStateMachine(spec: spec)
        let first = try #require(spawned(machine.begin(now: t0)).first)
        #expect(machine.workerSpawning(first, now: t0).wanted)
        let spares = spawned(machine.workerReady(first, now: t0).actions)
        #expect(spares.count == standby, "the spares are started once the plugin serves")
        for spare in spares {
            #expect(machine.workerSpawning(spare, now: t0).wanted)
            #expect(machine.workerReady(spare, now: t0).wanted)
            #expect(machine.reportedState(of: spare) == .standby)
        }
        return (machine, first, spares)
    }

    /// A spare takes no calls; when the serving worker is lost (a timeout here), the spare
    /// serves at once, and the lost one's replacement becomes the new spare.
    @Test func aSpareTakesALostWorkersPlaceAtOnceAndItsReplacementBecomesTheSpare() throws {
        var (machine, first, spares) = try machineWithSpares(standby: 1, at: t0)
        #expect(machine.admit(1, now: t0) == .run(first))
        #expect(machine.admit(2, now: t0) == .wait, "the spare takes no calls")
        #expect(machine.finish(first, failure: .timeout, workerLost: true, now: t0) == [.handOff(spares[0], to: 2)])
        let replacement = try #require(spawned(machine.workerExited(first, now: t0, description: "SIGKILL")).first)
        #expect(machine.workerSpawning(replacement, now: t0).wanted)
        #expect(machine.workerReady(replacement, now: t0).wanted)
        #expect(machine.reportedState(of: replacement) == .standby)
        #expect(machine.restarts.total == 1, "the loss still counts for the restart policy")
    }

    /// A serving worker that dies while idle is replaced by the spare as its exit is seen.
    @Test func aSpareServesAsSoonAsAnIdleWorkerDies() throws {
        var (machine, first, spares) = try machineWithSpares(standby: 1, at: t0)
        let actions = machine.workerExited(first, now: t0, description: "SIGSEGV")
        #expect(spawned(actions).count == 1)
        #expect(machine.reportedState(of: spares[0]) == .idle)
        #expect(machine.admit(1, now: t0) == .run(spares[0]))
    }

    /// At a reload's switch the old generation's spare is retired and the new one gets its own.
    @Test func aReloadRetiresTheOldSpareAndStartsOneForTheNewGeneration() throws {
        var (machine, first, spares) = try machineWithSpares(standby: 1, at: t0)
        let (_, started) = machine.beginReload(spec: machine.spec, now: t0)
        let fresh = try #require(spawned(started).first)
        #expect(spawned(started).count == 1, "a reload's generation starts its instances only")
        #expect(machine.workerSpawning(fresh, now: t0).wanted)
        let switched = machine.workerReady(fresh, now: t0).actions
        #expect(switched.contains(.retire(first)) && switched.contains(.retire(spares[0])))
        let newSpare = try #require(spawned(switched).first)
        #expect(machine.workerSpawning(newSpare, now: t0).wanted)
        #expect(machine.workerReady(newSpare, now: t0).wanted)
        #expect(machine.reportedState(of: newSpare) == .standby)
        #expect(machine.reportedState(of: fresh) == .idle)
    }
}
