import Foundation
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// `plugvisor start` with real workers and real fixture plugins, driven through the CLI.
@Suite(.serialized, .timeLimit(.minutes(5))) struct CorePathTests {
    static let demo = """
        plugins:
          - name: echo
            wasm: {{plugins}}/echo.wasm
            instances: 2
          - name: json-transformer
            wasm: {{plugins}}/json-transformer.wasm
          - name: hello-c
            wasm: {{plugins}}/hello-c.wasm
            config: {greeting: Hola}
          - name: hello-swift
            wasm: {{plugins}}/hello-swift.wasm
        """

    @Test func callsToSeveralPluginsAreAnsweredByTheirOwnWorkers() throws {
        let supervisor = try RunningSupervisor(manifest: Self.demo)
        let echo = supervisor.call("echo", "-p", "k=v", "-H", "x-trace=1", "--request-id", "req-7")
        #expect(echo.status == 0, "\(echo.stderr)")
        #expect(echo.json?["data"] == ["request_id": "req-7", "headers": ["x-trace": "1"], "parameters": ["k": "v"]])

        let transformed = supervisor.call("json-transformer", "-p", "action=transform", "--request-id", "r1")
        #expect(
            transformed.json == [
                "success": true, "data": ["action": "transform", "_request_id": "r1", "_processed": true],
            ])

        let c = supervisor.call("hello-c", "-p", "name=Ada")
        #expect(c.json?["data"]?["message"] == "Hola, Ada!")
        let swift = supervisor.call("hello-swift")
        #expect(swift.json?["data"]?["language"] == "embedded-swift")

        // Every plugin has its own worker processes.
        let pids = try supervisor.status().plugins.flatMap { $0.workers.map(\.pid) }
        #expect(pids.count == 5)
        #expect(Set(pids).count == 5)
        #expect(supervisor.log.contains("hello-c is greeting someone"))
    }

    @Test func aContextFromStdinIsSentAsIs() throws {
        let supervisor = try RunningSupervisor(manifest: Self.demo)
        let context = #"{"request_id":"from-stdin","parameters":{"nested":{"list":[1,2,3]}}}"#
        let output = supervisor.cli(["call", "echo", "--json", "-", "-p", "extra=yes"], stdin: context)
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.json?["data"]?["parameters"] == ["nested": ["list": [1, 2, 3]], "extra": "yes"])
        #expect(output.json?["data"]?["request_id"] == "from-stdin")
    }

    @Test func statusJSONShowsEveryPluginWithWorkersCallsAndVersion() throws {
        let supervisor = try RunningSupervisor(manifest: Self.demo)
        for _ in 0..<3 { _ = supervisor.call("json-transformer") }
        _ = supervisor.call("nonexistent")
        let status = try supervisor.status()
        #expect(status.plugins.map(\.name) == ["echo", "json-transformer", "hello-c", "hello-swift"])
        let transformer = try #require(status.plugins.first { $0.name == "json-transformer" })
        #expect(transformer.state == .ready)
        #expect(transformer.version == "1.0.0")
        #expect(transformer.calls == 3)
        #expect(transformer.errors == 0)
        #expect(transformer.p50Micros != nil && transformer.p99Micros != nil)
        #expect(transformer.sha256?.count == 64)
        let worker = try #require(transformer.workers.first)
        #expect(processIsAlive(worker.pid))
        #expect((worker.rssBytes ?? 0) > 0)
        #expect(status.plugins.first { $0.name == "echo" }?.workers.count == 2)

        let table = supervisor.cli(["status"])
        #expect(table.stdout.hasPrefix("PLUGIN"))
        #expect(table.stdout.contains("json-transformer  1.0.0    0    ready"), "\(table.stdout)")
    }

    @Test func stopEndsEveryWorkerAndTheSupervisorExitsZero() throws {
        let supervisor = try RunningSupervisor(manifest: Self.demo)
        _ = supervisor.call("echo")
        let pids = try supervisor.status().plugins.flatMap { $0.workers.map(\.pid) }
        #expect(!pids.isEmpty)
        #expect(pids.allSatisfy(processIsAlive))

        let stop = supervisor.stop()
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(supervisor.exitStatus == 0, "\(supervisor.log)")
        #expect(pids.allSatisfy { !processIsAlive($0) }, "workers left behind: \(pids.filter(processIsAlive))")
        #expect(!FileManager.default.fileExists(atPath: supervisor.controlPath))
        #expect(supervisor.call("echo").error?.code == .notRunning)
    }

    @Test func sigtermStopsTheSupervisorGracefullyToo() throws {
        let supervisor = try RunningSupervisor(manifest: Self.demo)
        let pids = try supervisor.status().plugins.flatMap { $0.workers.map(\.pid) }
        kill(supervisor.process.processIdentifier, SIGTERM)
        supervisor.waitForExit()
        #expect(supervisor.exitStatus == 0)
        #expect(pids.allSatisfy { !processIsAlive($0) })
    }
}
