import Foundation
import Glibc
import PlugvisorProtocol
import PlugvisorTestSupport
import Testing

/// `plugvisor.http_request`: workers have no network; the supervisor performs each request
/// within the plugin's allowed_hosts, bounded in size and time.
@Suite(.serialized, .timeLimit(.minutes(5))) struct NetworkTests {
    /// Fixtures/http-server.py on a free loopback port.
    final class LoopbackServer {
        let process = Process()
        let port: Int

        init() throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", Fixtures.root.appendingPathComponent("Fixtures/http-server.py").path]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            var line = Data()
            while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8)
            {
                line.append(byte)
            }
            guard let port = Int(String(decoding: line, as: UTF8.self)) else {
                throw FixtureError("http-server.py gave no port")
            }
            self.port = port
        }

        deinit {
            // SIGKILL: a child spawned from a test thread may inherit a mask that blocks SIGTERM.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        func url(_ path: String) -> String { "http://127.0.0.1:\(port)/\(path)" }
        /// Its `allowed_hosts` entry.
        var allowed: String { "127.0.0.1:\(port)" }
    }

    @Test func anAllowedHostIsFetchedAndEverythingElseIsRefused() throws {
        let server = try LoopbackServer()
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: fetch, wasm: "{{plugins}}/fetch.wasm", network: {allowed_hosts: ["\(server.allowed)"]}, timeout: 3s}
                  - {name: elsewhere, wasm: "{{plugins}}/fetch.wasm", network: {allowed_hosts: ["*.example.com"]}}
                  - {name: offline, wasm: "{{plugins}}/fetch.wasm"}
                """)
        let hello = supervisor.call("fetch", "-p", "url=\(server.url("hello"))")
        #expect(hello.status == 0, "\(hello.stderr)")
        #expect(hello.json?["data"]?["status"] == 200)
        #expect(hello.json?["data"]?["body"] == "hello from the host")

        let elsewhere = supervisor.call("elsewhere", "-p", "url=\(server.url("hello"))")
        #expect(elsewhere.json?["data"]?["error"] == "host 127.0.0.1 is not in this plugin's allowed_hosts")
        let offline = supervisor.call("offline", "-p", "url=\(server.url("hello"))")
        #expect(offline.json?["data"]?["error"] == "network access is not granted to this plugin")
        #expect(supervisor.log.contains("http_request refused"))
        withExtendedLifetime(server) {}
    }

    /// A call sent to a worker behind one that waits for its host service: the worker keeps it
    /// until the first call's host request is answered, then runs it. Both are answered.
    @Test func aCallSentBehindOneWaitingForAHostServiceRunsAfterIt() throws {
        let server = try LoopbackServer()
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: fetch, wasm: "{{plugins}}/fetch.wasm", network: {allowed_hosts: ["\(server.allowed)"]}, timeout: 5s}
                """)
        let pause = server.url("pause")
        let first = Background { try? supervisor.directCall("fetch", ["url": .string(pause)]) }
        #expect(supervisor.eventually { (try? supervisor.plugin("fetch").workers.first?.state) == .busy })
        let second = try supervisor.directCall("fetch", ["url": .string(server.url("hello"))])
        #expect(second.result?["data"]?["body"] == "hello from the host", "\(String(describing: second.error))")
        let answered = try #require(first.wait())
        #expect(answered.result?["data"]?["body"] == "after a pause", "\(String(describing: answered.error))")
        #expect(try supervisor.plugin("fetch").restarts == 0, "the worker never broke")
        withExtendedLifetime(server) {}
    }

    /// `allowed_hosts` is checked on the host and port the connection goes to: an entry without
    /// a port allows only the scheme's default one, hosts compare normalised, and hosts that
    /// parsers read differently (percent-encoding, user info) are refused.
    @Test func allowedHostsAreCheckedOnExactlyTheHostAndPortConnectedTo() throws {
        let server = try LoopbackServer()
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: listed, wasm: "{{plugins}}/fetch.wasm", network: {allowed_hosts: ["LocalHost.:\(server.port)", "127.0.0.1:\(server.port)"]}, timeout: 3s}
                  - {name: noport, wasm: "{{plugins}}/fetch.wasm", network: {allowed_hosts: [127.0.0.1, localhost]}, timeout: 3s}
                  - {name: wildcard, wasm: "{{plugins}}/fetch.wasm", network: {allowed_hosts: ["*.localhost", "*.localhost:\(server.port)"]}, timeout: 3s}
                """)
        func fetch(_ plugin: String, _ url: String) -> JSONValue? {
            supervisor.call(plugin, "-p", "url=\(url)").json?["data"]
        }
        let port = server.port
        // A listed port works, whatever the case and a trailing dot.
        #expect(fetch("listed", "http://127.0.0.1:\(port)/hello")?["status"] == 200)
        #expect(fetch("listed", "http://127.0.0.1.:\(port)/hello")?["status"] == 200)
        #expect(fetch("listed", "http://LOCALHOST:\(port)/hello")?["status"] == 200)
        // Another port of a listed host is refused, and says how to allow it.
        let otherPort =
            fetch("listed", "http://127.0.0.1:\(port == 65535 ? 1 : port + 1)/hello")?["error"]?.stringValue ?? ""
        #expect(otherPort.contains("is not in this plugin's allowed_hosts"), "\(otherPort)")
        // Without a port, only the scheme's default: the server's port is refused...
        let refused = fetch("noport", "http://127.0.0.1:\(port)/hello")?["error"]?.stringValue ?? ""
        #expect(
            refused
                == "port \(port) of 127.0.0.1 is not in this plugin's allowed_hosts (an entry without ':port' allows only http's default port; add '127.0.0.1:\(port)')"
        )
        // ...and port 80 passes the check (then finds nothing listening, or something that answers).
        for url in ["http://127.0.0.1/", "http://127.0.0.1:80/", "http://localhost/"] {
            let answer = fetch("noport", url)
            #expect(
                answer?["error"]?.stringValue?.contains("allowed_hosts") != true,
                "\(url): \(String(describing: answer))")
        }
        // Percent-encoding, NUL, user info and non-ASCII never reach libcurl.
        for url in [
            "http://127.0.0.2%00.localhost:\(port)/hello", "http://127.0.0.1%2e.localhost:\(port)/hello",
            "http://a%2elocalhost:\(port)/hello", "http://x:y@a.localhost:\(port)/hello",
            "http://a.localhost@127.0.0.1:\(port)/hello",
            "http://b\u{fc}cher.localhost:\(port)/hello",
        ] {
            let error = fetch("wildcard", url)?["error"]?.stringValue ?? ""
            #expect(
                !error.isEmpty && !error.hasPrefix("cannot connect") && !error.hasPrefix("request failed"),
                "\(url) was not refused before libcurl: \(error)")
        }
        withExtendedLifetime(server) {}
    }

    @Test func responsesAreBoundedInSizeTimeAndRedirects() throws {
        let server = try LoopbackServer()
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: fetch, wasm: "{{plugins}}/fetch.wasm", network: {allowed_hosts: ["\(server.allowed)"]}, timeout: 4s}
                """)
        let big = supervisor.call("fetch", "-p", "url=\(server.url("big"))")
        #expect(big.json?["data"]?["error"] == "the response is larger than 1048576 bytes")
        let redirect = supervisor.call("fetch", "-p", "url=\(server.url("redirect"))")
        #expect(
            redirect.json?["data"]?["error"]?.stringValue?.contains("redirect to not-allowed.invalid refused") == true,
            "\(redirect.stdout) \(redirect.stderr) \(supervisor.log)")

        let started = ContinuousClock.now
        let slow = supervisor.call("fetch", "-p", "url=\(server.url("slow"))")
        #expect(ContinuousClock.now - started < .seconds(8))
        // Either the broker gives up inside the call's 4 s, or the call itself times out.
        #expect(
            slow.json?["data"]?["error"] == "the request timed out" || slow.error?.code == .timeout,
            "\(slow.stdout) \(slow.stderr)")
        let hello = supervisor.call("fetch", "-p", "url=\(server.url("hello"))")
        #expect(hello.json?["data"]?["status"] == 200, "\(hello.stdout) \(hello.stderr) \(supervisor.log)")
        withExtendedLifetime(server) {}
    }

    /// A request gets the time left in its call to the millisecond, less a little for the plugin
    /// to answer: FoundationNetworking arms its timer in whole seconds, and once turned the 0.97 s
    /// left of a 1 s call into 0 and failed the request at once.
    @Test func aRequestInASubSecondCallGetsTheTimeLeft() throws {
        let server = try LoopbackServer()
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: fetch, wasm: "{{plugins}}/fetch.wasm", network: {allowed_hosts: ["\(server.allowed)"]}, timeout: 1s}
                """)
        let answers = (0..<8).map { _ in supervisor.call("fetch", "-p", "url=\(server.url("hello"))") }
        let fetched = answers.filter { $0.json?["data"]?["status"] == 200 }.count
        #expect(fetched == 8, "\(fetched) of 8 fetched: \(answers.map(\.stdout))")

        // A server slower than the call: the request ends just before the call does, and the
        // plugin, not the call's timeout, reports it; no worker is killed for it.
        let started = ContinuousClock.now
        let slow = supervisor.call("fetch", "-p", "url=\(server.url("slow"))")
        let took = ContinuousClock.now - started
        #expect(slow.json?["data"]?["error"] == "the request timed out", "\(slow.stdout) \(slow.stderr)")
        #expect(took >= .milliseconds(800) && took < .seconds(3), "the slow request took \(took)")
        #expect(try supervisor.plugin("fetch").restarts == 0)
        withExtendedLifetime(server) {}
    }
}
