import Foundation
import Logging
import Plugvisor
import PlugvisorManifest
import PlugvisorProtocol
import PlugvisorTestSupport
import Synchronization
import Testing

/// The embedding API in this process: async calls run their blocking work on the supervisor's
/// bounded pool of threads, not on a thread each.
@Suite(.serialized, .timeLimit(.minutes(5))) struct AsyncPoolTests {
    static let poolThreads = 32

    @Test func tenThousandConcurrentCallsKeepTheThreadCountBounded() async throws {
        var spec = PluginSpec(name: "noop", wasm: try Fixtures.plugin("noop"))
        spec.instances = 2
        spec.maxQueue = 10_000  // every call is admitted and waits for a worker
        spec.timeout = .seconds(120)
        let supervisor = try Self.supervisor([spec])
        await supervisor.start()
        let threads = ThreadCounter()
        let before = threads.now

        let answers = await withTaskGroup(of: String.self) { calls in
            for index in 0..<10_000 {
                calls.addTask {
                    do throws(PluginError) {
                        let answer = try await supervisor.execute(
                            plugin: "noop", context: ["index": .integer(Int64(index))])
                        return answer["success"] == true ? "ok" : "not a success: \(answer)"
                    } catch {
                        return error.code.rawValue
                    }
                }
            }
            var answers: [String: Int] = [:]
            for await answer in calls { answers[answer, default: 0] += 1 }
            return answers
        }
        let peak = threads.stop()
        await supervisor.shutdown()
        #expect(supervisor.blockingThreads == Self.poolThreads)

        print("10,000 async calls: \(answers); threads before \(before), peak \(peak)")
        #expect(answers.values.reduce(0, +) == 10_000)
        #expect(answers["ok"] == 10_000, "\(answers)")
        #expect(peak < Self.poolThreads + 64, "threads before \(before), peak \(peak)")
    }

    /// A call that waits for a pool thread longer than its plugin's timeout is answered
    /// `timeout` at its deadline, counted from when it was made, and never reaches its worker.
    @Test func aCallWaitingForAPoolThreadEndsAtItsOwnTimeout() async throws {
        var spin = PluginSpec(name: "spin", wasm: try Fixtures.plugin("spin"))
        spin.timeout = .seconds(3)
        var noop = PluginSpec(name: "noop", wasm: try Fixtures.plugin("noop"))
        noop.timeout = .milliseconds(300)
        let supervisor = try Self.supervisor([spin, noop], threads: 1)
        await supervisor.start()
        #expect(supervisor.blockingThreads == 1)

        let spinning = Task {
            await Self.failure { () async throws(PluginError) in
                try await supervisor.execute(plugin: "spin", context: [:])
            }
        }
        try await Task.sleep(for: .milliseconds(200))  // the spin call holds the only thread
        let calledAt = ContinuousClock.now
        let waiting = await Self.failure { () async throws(PluginError) in
            try await supervisor.execute(plugin: "noop", context: [:])
        }
        let waited = ContinuousClock.now - calledAt
        let error = try #require(waiting)
        #expect(error.code == .timeout)
        #expect(
            error.message.contains("waited all of it for one of the supervisor's 1 blocking threads"),
            "\(error.message)")
        #expect(waited < .milliseconds(1500), "answered after \(waited), not at its 300 ms timeout")

        #expect(await spinning.value?.code == .timeout)
        await supervisor.runBlocking {}  // the spin call's thread comes free once its worker is killed, just after
        // Positive control: with the thread free again, the same call is answered, and it is the
        // plugin's first: the one that waited never reached it.
        #expect(try await supervisor.execute(plugin: "noop", context: [:])["success"] == true)
        #expect((try? supervisor.status(of: "noop").get())?.calls == 1)
        await supervisor.shutdown()
    }

    /// The error `call` throws, or nil when it answers.
    static func failure(of call: () async throws(PluginError) -> JSONValue) async -> PluginError? {
        do {
            _ = try await call()
            return nil
        } catch {
            return error
        }
    }

    static func supervisor(_ specs: [PluginSpec], threads: Int = poolThreads) throws -> Supervisor {
        let configuration = SupervisorConfiguration(
            workerExecutable: try Fixtures.binary("plugvisor-worker"), watchFiles: false,
            brokerExecutable: try Fixtures.binary("plugvisor-broker"), blockingThreads: threads)
        var logger = Logger(label: "plugvisor.test")
        logger.logLevel = .warning
        return Supervisor(manifest: Manifest(plugins: specs, path: ""), configuration: configuration, logger: logger)
    }
}

/// The most threads this process had at once (`/proc/self/task`), sampled every millisecond
/// from a thread of its own until `stop()`.
final class ThreadCounter: Sendable {
    private let peak = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    init() {
        peak.store(now, ordering: .relaxed)
        Thread { [self] in
            while !stopped.load(ordering: .relaxed) {
                peak.max(now, ordering: .relaxed)
                usleep(1000)
            }
            done.signal()
        }.start()
    }

    var now: Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0 }

    /// The peak, once sampling has ended.
    func stop() -> Int {
        stopped.store(true, ordering: .relaxed)
        done.wait()
        return peak.load(ordering: .relaxed)
    }
}
