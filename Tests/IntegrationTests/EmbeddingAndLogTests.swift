import Foundation
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// `--log-format json`, and the embedding example (docs/embedding.md) run as a user would run it.
@Suite(.serialized, .timeLimit(.minutes(5))) struct EmbeddingAndLogTests {
    @Test func jsonLogsAreOneObjectPerLineTaggedWithPluginPidAndGeneration() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: hello, wasm: "{{plugins}}/hello-c.wasm", config: {greeting: Hej}}
                  - {name: crash, wasm: "{{plugins}}/crash.wasm"}
                """, arguments: ["--log-format", "json"])
        #expect(supervisor.call("hello", "-p", "name=Ada").status == 0)
        #expect(supervisor.call("crash").error?.code == .workerCrashed)
        let helloPID = try #require(supervisor.plugin("hello").workers.first?.pid)
        #expect(supervisor.stop().status == 0)

        let lines = supervisor.log.split(separator: "\n")
        #expect(lines.count > 5)
        var entries: [[String: JSONValue]] = []
        for line in lines {
            let entry = try? JSONCoding.decode(JSONValue.self, from: Array(line.utf8)).objectValue
            #expect(entry != nil, "not a JSON object: \(line)")
            if let entry {
                #expect(
                    entry["time"]?.stringValue?.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil,
                    "\(line)")
                #expect(entry["level"] != nil && entry["message"] != nil && entry["label"] != nil, "\(line)")
                entries.append(entry)
            }
        }
        // The guest's own log line, through the `log` import.
        let guest = try #require(entries.first { $0["source"] == "guest" }, "no guest line in \(supervisor.log)")
        #expect(guest["plugin"] == "hello")
        #expect(guest["pid"] == .string("\(helloPID)"))
        #expect(guest["generation"] == "0")
        #expect(guest["message"] == "hello-c is greeting someone")
        // The crashing worker's stderr, tagged with its plugin.
        let stderr = try #require(
            entries.first { $0["source"] == "stderr" }, "no worker stderr line in \(supervisor.log)")
        #expect(stderr["plugin"] == "crash")
        #expect(stderr["pid"] != nil)
        #expect(
            entries.contains {
                $0["plugin"] == "crash" && $0["message"]?.stringValue?.hasPrefix("worker ended") == true
            })
    }

    @Test func theEmbeddingExampleRunsPluginsWithoutTheCLI() throws {
        let example = try Fixtures.binary("plugvisor-embedding-example")
        let module = try Fixtures.plugin("json-transformer")
        let shop = try Fixtures.plugin("shop-rust")  // kits/rust/shop.rs: calls the kv_get host function
        let output = ProcessRunner.run([example, module, shop])
        #expect(output.status == 0, "\(output.stderr)")
        let expected = [
            "status: [\"transformer ready, 2 workers\", \"shop ready, 1 workers\"]",
            "shop tea: 2.50",
            "shop cake: no price for cake: host function kv_get failed: no such key",
            "answered: 10 of 10",
            "error: unknown_plugin: no plugin named 'missing' (known: transformer, shop)",
            "after kill: stopped",
            "after restart: ready",
            "stopped",
            // The host function's metrics, in the Prometheus registry the program bootstrapped.
            #"metric: plugvisor_host_function_calls_total{plugin="shop",function="kv_get"} 2"#,
            #"metric: plugvisor_host_function_errors_total{plugin="shop",function="kv_get"} 1"#,
        ]
        for line in expected { #expect(output.stdout.contains(line + "\n"), "missing '\(line)' in:\n\(output.stdout)") }
        #expect(output.stdout.contains("reload: generation 2, sha256 "))
        #expect(output.stderr.contains("all workers stopped"))
    }
}
