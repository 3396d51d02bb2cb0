// A Swift program that runs plugins without the CLI: the manifest is built in code, the
// supervisor runs in a swift-service-lifecycle ServiceGroup (SIGTERM/SIGINT stop it
// gracefully), and plugins are called with async/await.
//
//     swift run plugvisor-embedding-example [path/to/plugin.wasm]
//
// (default: Fixtures/plugins/json-transformer.wasm; `scripts/build-fixtures.sh` builds it).
import Foundation
import Logging
import Plugvisor
import PlugvisorManifest
import PlugvisorProtocol
import ServiceLifecycle

@main
struct EmbeddingExample {
    static func main() async throws {
        let logger = Logger(label: "embedding-example")
        let module = CommandLine.arguments.dropFirst().first ?? "Fixtures/plugins/json-transformer.wasm"
        guard FileManager.default.fileExists(atPath: module) else {
            print("no module at \(module): run scripts/build-fixtures.sh, or pass a .wasm path")
            exit(1)
        }

        // The manifest, in code: what `plugins.yaml` would say. Every capability is denied
        // unless granted here.
        var transformer = PluginSpec(name: "transformer", wasm: URL(fileURLWithPath: module).path)
        transformer.instances = 2
        transformer.timeout = .seconds(2)
        transformer.memory = 16 << 20
        let supervisor = Supervisor(manifest: Manifest(plugins: [transformer], path: ""), logger: logger)

        let services = ServiceGroup(
            configuration: .init(
                services: [supervisor], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await services.run() }

            await supervisor.start()  // the service would start it too; this waits until it is ready
            print("status:", supervisor.status().plugins.map { "\($0.name) \($0.state), \($0.workers.count) workers" })

            // Ten calls at once: two workers serve them, the rest wait in the plugin's queue.
            try await withThrowingTaskGroup(of: JSONValue.self) { calls in
                for index in 1...10 {
                    calls.addTask {
                        let context = PluginContext(
                            requestID: "call-\(index)", parameters: ["index": .integer(Int64(index))])
                        return try await supervisor.execute(plugin: "transformer", context: context)
                    }
                }
                var answered = 0
                for try await result in calls where result["success"]?.boolValue == true { answered += 1 }
                print("answered: \(answered) of 10")
            }

            // Errors are typed: switch on the code.
            do throws(PluginError) {
                _ = try await supervisor.execute(plugin: "missing", context: PluginContext())
            } catch {
                print("error: \(error.code): \(error.message)")
            }

            try await supervisor.kill(plugin: "transformer")
            print("after kill:", supervisor.status().plugins[0].state)
            try await supervisor.restart(plugin: "transformer")
            print("after restart:", supervisor.status().plugins[0].state)
            let reloaded = try await supervisor.reload(plugin: "transformer")
            print("reload:", reloaded.summary)

            // What a SIGTERM would do: drain calls in flight, stop every worker, return.
            await services.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        print("stopped")
    }
}
