import Foundation
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// The author kits' examples, built from source by the test run and called through the supervisor.
@Suite(.serialized) struct KitTests {
    @Test func theCKitsExampleReadsItsContextConfigAndLogs() throws {
        let supervisor = try RunningSupervisor(manifest: """
            plugins:
              - {name: greeter, wasm: "{{plugins}}/kit-greeter.wasm", config: {greeting: Salut}}
            """)
        let hello = supervisor.call("greeter", "-p", "name=Grace \"Amazing\" Hopper", "--request-id", "r-9")
        #expect(hello.status == 0, "\(hello.stderr)")
        #expect(hello.json?["data"] == ["message": "Salut, Grace \"Amazing\" Hopper!", "request_id": "r-9"])
        #expect(supervisor.log.contains("greeting Grace \"Amazing\" Hopper for request r-9"))
        let nameless = supervisor.call("greeter")
        #expect(nameless.status == 1)
        #expect(nameless.json == ["success": false, "error": "pass a \"name\" parameter"])
    }
}
