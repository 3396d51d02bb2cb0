import Foundation
import Glibc
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// Supervision through the real binaries: kill by name, crashes, restart policy, circuit
/// breaker, bounded queues, the supervisor's own death, and chaos under load.
@Suite(.serialized) struct SupervisionTests {
    @Test func killByNameAnswersCallsInFlightAndKeepsThePluginDownUntilRestart() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: sleepy, wasm: "{{plugins}}/spin-if-asked.wasm", timeout: 20s}
                  - {name: echo, wasm: "{{plugins}}/echo.wasm"}
                """)
        let pid = try #require(try supervisor.plugin("sleepy").workers.first?.pid)
        let inFlight = Background { supervisor.call("sleepy", "-p", "mode=spin") }
        #expect(supervisor.eventually { (try? supervisor.plugin("sleepy").workers.first?.state) == .busy })

        let kill = supervisor.cli(["kill", "sleepy"])
        #expect(kill.status == 0, "\(kill.stderr)")
        #expect(kill.stdout == "sleepy: stopped\n")
        let answered = inFlight.wait()
        #expect(answered.status == 2)
        #expect(answered.error?.code == .killed, "\(answered.stderr)")
        #expect(supervisor.eventually { !processIsAlive(pid) })

        #expect(supervisor.call("sleepy").error?.code == .stopped)
        #expect(try supervisor.plugin("sleepy").state == .stopped)
        #expect(try supervisor.plugin("sleepy").workers.isEmpty)
        #expect(supervisor.call("echo").status == 0)

        #expect(supervisor.cli(["restart", "sleepy"]).status == 0)
        #expect(try supervisor.plugin("sleepy").state == .ready)
        let again = supervisor.call("sleepy", "-p", "mode=fast")
        #expect(again.json?["data"] == "quick", "\(again.stderr)")
        #expect(try supervisor.plugin("sleepy").workers.first?.pid != pid)
        #expect(supervisor.cli(["kill", "nope"]).error?.code == .unknownPlugin)
    }

    @Test func aWorkerKilledFromOutsideIsReplacedAndItsCallIsAnsweredCrashed() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: sleepy, wasm: "{{plugins}}/spin-if-asked.wasm", timeout: 20s}
                """)
        let pid = try #require(try supervisor.plugin("sleepy").workers.first?.pid)
        let inFlight = Background { supervisor.call("sleepy", "-p", "mode=spin") }
        #expect(supervisor.eventually { (try? supervisor.plugin("sleepy").workers.first?.state) == .busy })
        kill(pid, SIGKILL)
        let answered = inFlight.wait()
        #expect(answered.error?.code == .workerCrashed)
        #expect(answered.error?.message.contains("killed by SIGKILL") == true, "\(answered.stderr)")

        #expect(
            supervisor.eventually { (try? supervisor.plugin("sleepy").workers.first?.pid).map { $0 != pid } ?? false })
        for _ in 0..<3 { #expect(supervisor.call("sleepy").status == 0) }
        let status = try supervisor.plugin("sleepy")
        #expect(status.restarts == 1)
        #expect(status.lastError?.contains("SIGKILL") == true)
    }

    /// A call sent behind one whose worker dies never ran: it goes to the replacement and is
    /// answered there, while the one in flight is answered worker_crashed.
    @Test func aCallBehindOneWhoseWorkerDiesIsServedByTheReplacement() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: sleepy, wasm: "{{plugins}}/spin-if-asked.wasm", instances: 1, timeout: 20s}
                """)
        let pid = try #require(try supervisor.plugin("sleepy").workers.first?.pid)
        let inFlight = Background { try? supervisor.directCall("sleepy", ["mode": "spin"]) }
        #expect(supervisor.eventually { (try? supervisor.plugin("sleepy").workers.first?.state) == .busy })
        let behind = Background { try? supervisor.directCall("sleepy", ["mode": "fast"]) }
        #expect(supervisor.eventually { (try? supervisor.plugin("sleepy").queued) == 1 })
        kill(pid, SIGKILL)
        #expect(inFlight.wait()?.error?.code == .workerCrashed)
        let answered = try #require(behind.wait())
        #expect(answered.result?["data"] == "quick", "\(String(describing: answered.error))")
        let status = try supervisor.plugin("sleepy")
        #expect(status.workers.first?.pid != pid)
        #expect(status.calls == 2 && status.errors == 1, "one crashed, one answered, none run twice: \(status)")
    }

    /// With `standby: 1` a spare worker waits loaded and locked down; when the serving worker
    /// is lost (a timeout here), the next call is answered by the spare, and a new spare
    /// follows.
    @Test func aSpareWorkerAnswersTheCallAfterATimeoutAndANewSpareFollows() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: sleepy, wasm: "{{plugins}}/spin-if-asked.wasm", instances: 1, standby: 1, timeout: 1s}
                """)
        #expect(
            supervisor.eventually {
                (try? supervisor.plugin("sleepy").workers.map(\.state).sorted { $0.rawValue < $1.rawValue }) == [
                    .idle, .standby,
                ]
            })
        let before = try supervisor.plugin("sleepy").workers
        let serving = try #require(before.first { $0.state == .idle }?.pid)
        let spare = try #require(before.first { $0.state == .standby }?.pid)
        #expect(try supervisor.directCall("sleepy", ["mode": "spin"]).error?.code == .timeout)
        let next = try supervisor.directCall("sleepy", ["mode": "fast"])
        #expect(next.result?["data"] == "quick", "\(String(describing: next.error))")
        #expect(try supervisor.plugin("sleepy").workers.first { $0.state == .idle }?.pid == spare)
        #expect(
            supervisor.eventually {
                guard let workers = try? supervisor.plugin("sleepy").workers else { return false }
                return workers.count == 2
                    && workers.contains { $0.state == .standby && $0.pid != spare && $0.pid != serving }
            }, "a new spare follows: \(String(describing: try? supervisor.plugin("sleepy").workers))")
    }

    @Test func aCrashLoopEndsInFailedWithTheReason() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - name: crash
                    wasm: "{{plugins}}/crash.wasm"
                    restart: {max: 2, within: 60s, backoff: 10ms..50ms}
                  - {name: echo, wasm: "{{plugins}}/echo.wasm"}
                """)
        var codes: [PluginError.Code] = []
        for _ in 0..<6 {
            if let code = supervisor.call("crash").error?.code { codes.append(code) }
            if codes.last == .restartLimit { break }
            _ = supervisor.eventually(timeout: .seconds(5)) {
                let state = try? supervisor.plugin("crash")
                return state?.state == .failed || state?.workers.first?.state == .idle
            }
        }
        #expect(codes.prefix(3).allSatisfy { $0 == .workerCrashed }, "\(codes)")
        #expect(codes.last == .restartLimit)
        let crash = try supervisor.plugin("crash")
        #expect(crash.state == .failed)
        #expect(crash.restarts == 2)
        #expect(crash.lastError?.contains("restarted 2 times within 60.0 seconds") == true)
        #expect(crash.lastError?.contains("SIGILL") == true)
        #expect(supervisor.call("echo").status == 0)
        // An operator's restart gives it a fresh count.
        #expect(supervisor.cli(["restart", "crash"]).status == 0)
        #expect(try supervisor.plugin("crash").state == .ready)
    }

    @Test func theCircuitOpensAfterConsecutiveFailuresAndClosesOnSuccess() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: trap, wasm: "{{plugins}}/trap.wasm", circuit: {failures: 2, reset: 1s}}
                """)
        #expect(supervisor.call("trap").error?.code == .trap)
        #expect(supervisor.call("trap").error?.code == .trap)
        let open = supervisor.call("trap", "-p", "x=ok")
        #expect(open.error?.code == .circuitOpen, "\(open.stderr)")
        #expect(try supervisor.plugin("trap").circuit == .open)
        Thread.sleep(forTimeInterval: 1.1)
        #expect(supervisor.call("trap", "-p", "x=ok").status == 0)
        #expect(try supervisor.plugin("trap").circuit == .closed)
        #expect(supervisor.call("trap", "-p", "x=ok").status == 0)
    }

    @Test func aFullQueueIsAnsweredOverloadedAndQueuedCallsAreServedLater() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: sleepy, wasm: "{{plugins}}/spin-if-asked.wasm", instances: 1, max_queue: 1, timeout: 3s}
                """)
        let spinning = Background { try? supervisor.directCall("sleepy", ["mode": "spin"]) }
        #expect(supervisor.eventually { (try? supervisor.plugin("sleepy").workers.first?.state) == .busy })
        let queued = Background { try? supervisor.directCall("sleepy", ["mode": "fast"]) }
        #expect(supervisor.eventually { (try? supervisor.plugin("sleepy").queued) == 1 })

        let started = ContinuousClock.now
        let overflow = try supervisor.directCall("sleepy")
        #expect(overflow.error?.code == .overloaded)
        #expect(ContinuousClock.now - started < .seconds(1))

        #expect(spinning.wait()?.error?.code == .timeout)
        // The queued call waited its own 3 s: it is answered either by the fresh worker or with a timeout.
        let late = queued.wait()
        #expect(late?.result?["data"] == "quick" || late?.error?.code == .timeout, "\(String(describing: late))")
    }

    @Test func workersDieWithinASecondWhenTheSupervisorIsKilled() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: echo, wasm: "{{plugins}}/echo.wasm", instances: 2}
                  - {name: sleepy, wasm: "{{plugins}}/spin-if-asked.wasm", timeout: 60s}
                """)
        let pids = try supervisor.status().plugins.flatMap { $0.workers.map(\.pid) }
        #expect(pids.count == 3)
        // One of them is busy in a guest loop: it cannot notice EOF, only PDEATHSIG stops it.
        _ = Background { try? supervisor.directCall("sleepy", ["mode": "spin"]) }
        #expect(supervisor.eventually { (try? supervisor.plugin("sleepy").workers.first?.state) == .busy })
        kill(supervisor.process.processIdentifier, SIGKILL)
        supervisor.waitForExit()
        let deadline = ContinuousClock.now + .seconds(1)
        while pids.contains(where: processIsAlive) && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(!pids.contains(where: processIsAlive), "still alive: \(pids.filter(processIsAlive))")
    }

    @Test func chaosEveryCallIsAnsweredWhileWorkersAreKilledAtRandom() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: echo, wasm: "{{plugins}}/echo.wasm", instances: 2, restart: {max: 1000, within: 60s, backoff: 1ms..20ms}}
                  - {name: json-transformer, wasm: "{{plugins}}/json-transformer.wasm", restart: {max: 1000, within: 60s, backoff: 1ms..20ms}}
                  - {name: hello-c, wasm: "{{plugins}}/hello-c.wasm", restart: {max: 1000, within: 60s, backoff: 1ms..20ms}}
                """)
        let supervisorPID = supervisor.process.processIdentifier
        let descriptorsBefore = try openDescriptors(supervisorPID)

        let plugins = ["echo", "json-transformer", "hello-c"]
        let callers = 6
        let callsPerCaller = 200
        let load = (0..<callers).map { caller in
            Background { () -> [String] in
                (0..<callsPerCaller).map { n in
                    let plugin = plugins[(caller + n) % plugins.count]
                    guard let response = try? supervisor.directCall(plugin, ["n": .integer(Int64(n))]) else {
                        return "unanswered"
                    }
                    if let error = response.error { return error.code.rawValue }
                    return response.result?["success"] == true ? "ok" : "bad result"
                }
            }
        }
        let chaos = Background { () -> Int in
            var kills = 0
            var random = SystemRandomNumberGenerator()
            while !load.allSatisfy(\.isDone) {
                if let pids = try? supervisor.status().plugins.flatMap({ $0.workers.map(\.pid) }),
                    let victim = pids.randomElement(using: &random)
                {
                    if kill(victim, SIGKILL) == 0 { kills += 1 }
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return kills
        }
        let outcomes = load.flatMap { $0.wait() }
        let kills = chaos.wait()

        #expect(outcomes.count == callers * callsPerCaller)
        let tally = Dictionary(outcomes.map { ($0, 1) }, uniquingKeysWith: +)
        #expect(tally["unanswered"] == nil, "\(tally)")
        #expect(tally["bad result"] == nil, "\(tally)")
        #expect(Set(tally.keys).isSubset(of: ["ok", "worker_crashed"]), "\(tally)")
        #expect((tally["ok"] ?? 0) > outcomes.count / 2, "\(tally) with \(kills) kills")
        #expect(kills > 0)
        print("chaos: \(outcomes.count) calls, \(kills) workers killed: \(tally)")

        // Once the dust settles: every plugin serving again, no descriptor leaked, no zombie.
        #expect(
            supervisor.eventually(timeout: .seconds(15)) {
                guard let status = try? supervisor.status() else { return false }
                return status.plugins.allSatisfy {
                    $0.state == .ready && $0.workers.count == ($0.name == "echo" ? 2 : 1)
                        && $0.workers.allSatisfy { $0.state == .idle }
                }
            }, "\(String(describing: try? supervisor.status()))")
        #expect(
            supervisor.eventually { (try? openDescriptors(supervisorPID)) == descriptorsBefore },
            "descriptors before: \(descriptorsBefore), after: \(String(describing: try? openDescriptors(supervisorPID)))"
        )
        #expect(zombieChildren(of: supervisorPID).isEmpty)

        let pids = try supervisor.status().plugins.flatMap { $0.workers.map(\.pid) }
        #expect(supervisor.stop().status == 0)
        #expect(supervisor.exitStatus == 0)
        #expect(!pids.contains(where: processIsAlive))
    }

    /// The process's open descriptors, but for libdispatch's timerfd: Dispatch makes it once, at
    /// its first timer (a restart's backoff, a pool call's deadline), and keeps it.
    func openDescriptors(_ pid: Int32) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)"))
                != "anon_inode:[timerfd]"
        }.count
    }

    func zombieChildren(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && fields[0] == "Z" && Int32(fields[1]) == parent
        }
    }
}
