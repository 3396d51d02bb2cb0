// A Swift program that runs plugins without the CLI: the manifest is built in code, the
// supervisor runs in a swift-service-lifecycle ServiceGroup (SIGTERM/SIGINT stop it
// gracefully), plugins are called with async/await, one of them calls back into this program
// (a key-value host function), and the supervisor's metrics go to a Prometheus registry.
//
//     swift run plugvisor-embedding-example [path/to/plugin.wasm] [path/to/shop.wasm]
//
// (default: Fixtures/plugins/json-transformer.wasm and Fixtures/plugins/shop-rust.wasm, from
// kits/rust/shop.rs; `scripts/build-fixtures.sh` builds both).
import Foundation
import Logging
import Metrics
import Plugvisor
import PlugvisorManifest
import PlugvisorProtocol
import Prometheus
import ServiceLifecycle
import Synchronization

@main
struct EmbeddingExample {
    static func main() async throws {
        let logger = Logger(label: "embedding-example")
        let arguments = Array(CommandLine.arguments.dropFirst())
        let module = arguments.first ?? "Fixtures/plugins/json-transformer.wasm"
        let shopModule = arguments.dropFirst().first ?? "Fixtures/plugins/shop-rust.wasm"
        for path in [module, shopModule] where !FileManager.default.fileExists(atPath: path) {
            print("no module at \(path): run scripts/build-fixtures.sh, or pass .wasm paths")
            exit(1)
        }

        // The supervisor's metrics (calls, latency, restarts, host functions) go to whatever
        // swift-metrics backend the program bootstraps: here a Prometheus registry.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        // A function of this program that plugins granted it may call: a key-value store.
        let prices = Mutex(["tea": "2.50", "scone": "3.10"])
        let kvGet = HostFunction(name: "kv_get") { call in
            guard let value = prices.withLock({ $0[String(decoding: call.input, as: UTF8.self)] }) else {
                throw HostFunctionError("no such key")
            }
            return Array(value.utf8)
        }

        // The manifest, in code: what `plugins.yaml` would say. Every capability is denied
        // unless granted here.
        var transformer = PluginSpec(name: "transformer", wasm: URL(fileURLWithPath: module).path)
        transformer.instances = 2
        transformer.timeout = .seconds(2)
        transformer.memory = 16 << 20
        var shop = PluginSpec(name: "shop", wasm: URL(fileURLWithPath: shopModule).path)
        shop.hostFunctions = ["kv_get"]  // a plugin sees only the host functions it is granted
        let supervisor = Supervisor(
            manifest: Manifest(plugins: [transformer, shop], path: ""), hostFunctions: [kvGet], logger: logger)

        let services = ServiceGroup(
            configuration: .init(
                services: [supervisor], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await services.run() }

            await supervisor.start()  // the service would start it too; this waits until it is ready
            print("status:", supervisor.status().plugins.map { "\($0.name) \($0.state), \($0.workers.count) workers" })

            // The shop plugin asks this program for prices through kv_get; a missing key is an
            // error the plugin handles (it fails its call with the reason).
            for item in ["tea", "cake"] {
                let result = try await supervisor.execute(
                    plugin: "shop", context: PluginContext(parameters: ["item": .string(item)]))
                print("shop \(item):", result["data"]?["price"]?.stringValue ?? result["error"]?.stringValue ?? "?")
            }

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
            print("after kill:", supervisor.status().plugins.first { $0.name == "transformer" }!.state)
            try await supervisor.restart(plugin: "transformer")
            print("after restart:", supervisor.status().plugins.first { $0.name == "transformer" }!.state)
            let reloaded = try await supervisor.reload(plugin: "transformer")
            print("reload:", reloaded.summary)

            // What a SIGTERM would do: drain calls in flight, stop every worker, return.
            await services.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        print("stopped")

        // What a Prometheus scrape would read about the host function.
        var exposition: [UInt8] = []
        registry.emit(into: &exposition)
        for line in String(decoding: exposition, as: UTF8.self).split(separator: "\n")
        where line.hasPrefix("plugvisor_host_function_calls_total")
            || line.hasPrefix("plugvisor_host_function_errors_total")
        {
            print("metric:", line)
        }
    }
}
