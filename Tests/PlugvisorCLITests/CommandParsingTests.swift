import ArgumentParser
import Logging
import PlugvisorProtocol
import Testing

@testable import PlugvisorCLI

/// The main commands' flags, parsed as ArgumentParser parses a command line: names, defaults
/// and refusals, without starting anything.
@Suite struct CommandParsingTests {
    @Test func startNeedsOnlyTheManifestAndDefaultsTheRest() throws {
        let start = try Start.parse(["plugins.yaml"])
        #expect(start.manifest == "plugins.yaml")
        #expect(start.strict == false)
        #expect(start.logLevel == .info)
        #expect(start.logFormat == .text)
        #expect(start.workerUser == nil)
        #expect(start.sandboxDrill == false)
        #expect(start.control.control == nil)
        #expect(start.gateway.address == nil)
        #expect(start.gateway.tokenFile == nil)
        #expect(start.gateway.maxBody == "1MiB")
        #expect(start.gateway.maxInFlight == 512)
        #expect(start.gateway.maxConnections == 256)
        #expect(start.gateway.headerTimeout == "10s")
    }

    @Test func startReadsEveryFlag() throws {
        let start = try Start.parse([
            "plugins.yaml", "--strict", "--log-level", "debug", "--log-format", "json",
            "--worker-uids", "70000-70100", "--worker-user", "nobody", "--control", "/run/p.sock",
            "--http", "127.0.0.1:8080", "--token-file", "/etc/token", "--http-max-body", "2MiB",
            "--http-max-in-flight", "8", "--http-max-connections", "4", "--http-header-timeout", "3s",
        ])
        #expect(start.strict)
        #expect(start.logLevel == .debug)
        #expect(start.logFormat == .json)
        #expect(start.workerUIDs == "70000-70100")
        #expect(start.workerUser == "nobody")
        #expect(start.control.path == "/run/p.sock")
        #expect(start.gateway.address == "127.0.0.1:8080")
        #expect(start.gateway.tokenFile == "/etc/token")
        #expect(start.gateway.maxBody == "2MiB")
        #expect(start.gateway.maxInFlight == 8)
        #expect(start.gateway.maxConnections == 4)
        #expect(start.gateway.headerTimeout == "3s")
    }

    @Test func startRefusesWhatItDoesNotKnow() {
        #expect(throws: (any Error).self) { try Start.parse([]) }
        #expect(throws: (any Error).self) { try Start.parse(["plugins.yaml", "--log-format", "xml"]) }
        #expect(throws: (any Error).self) { try Start.parse(["plugins.yaml", "--log-level", "loud"]) }
        #expect(throws: (any Error).self) { try Start.parse(["plugins.yaml", "--http-max-in-flight", "many"]) }
        // The gateway's own checks run at parse time too.
        #expect(throws: (any Error).self) { try Start.parse(["plugins.yaml", "--token-file", "/etc/token"]) }
        #expect(throws: (any Error).self) {
            try Start.parse(["plugins.yaml", "--http", "127.0.0.1:1", "--http-max-body", "big"])
        }
        #expect(throws: (any Error).self) {
            try Start.parse(["plugins.yaml", "--http", "127.0.0.1:1", "--http-max-in-flight", "0"])
        }
        #expect(throws: (any Error).self) {
            try Start.parse(["plugins.yaml", "--http", "127.0.0.1:1", "--http-header-timeout", "soon"])
        }
    }

    @Test func callBuildsTheContextFromItsFlags() throws {
        let call = try Call.parse(["echo", "-p", "a=1", "-p", "b=x=y", "-H", "accept=json", "--request-id", "r1"])
        #expect(call.name == "echo")
        let context = try call.buildContext()
        #expect(context["parameters"] == ["a": "1", "b": "x=y"])
        #expect(context["headers"] == ["accept": "json"])
        #expect(context["request_id"] == "r1")
        // Without --request-id each call gets a fresh one.
        #expect(try Call.parse(["echo"]).buildContext()["request_id"]?.stringValue?.isEmpty == false)
    }

    @Test func callRefusesAParameterWithoutAnEqualsSign() {
        #expect(throws: (any Error).self) { try Call.parse(["echo", "-p", "novalue"]) }
        #expect(throws: (any Error).self) { try Call.parse(["echo", "-H", "novalue"]) }
        #expect(throws: (any Error).self) { try Call.parse([]) }
    }

    @Test func thePluginCommandsTakeANameAndTheControlSocket() throws {
        #expect(try Kill.parse(["echo"]).name == "echo")
        #expect(try Restart.parse(["echo", "--control", "/tmp/c.sock"]).control.path == "/tmp/c.sock")
        #expect(try Reload.parse([]).name == nil)
        #expect(try Reload.parse(["echo"]).name == "echo")
        #expect(try Status.parse(["--json"]).json)
        #expect(try Status.parse([]).json == false)
        #expect(throws: (any Error).self) { try Kill.parse([]) }
        #expect(throws: (any Error).self) { try Restart.parse([]) }
    }

    @Test func validateAndInspectTakeTheirFiles() throws {
        let validate = try Validate.parse(["plugins.yaml", "--no-modules"])
        #expect(validate.manifest == "plugins.yaml")
        #expect(validate.noModules)
        let inspect = try Inspect.parse(["echo.wasm", "--json"])
        #expect(inspect.file == "echo.wasm")
        #expect(inspect.json)
    }

    @Test func theRootCommandDispatchesToEachSubcommand() throws {
        #expect(try PlugvisorCommand.parseAsRoot(["status", "--json"]) is Status)
        #expect(try PlugvisorCommand.parseAsRoot(["start", "plugins.yaml"]) is Start)
        #expect(try PlugvisorCommand.parseAsRoot(["call", "echo"]) is Call)
        #expect(try PlugvisorCommand.parseAsRoot(["kill", "echo"]) is Kill)
        #expect(try PlugvisorCommand.parseAsRoot(["restart", "echo"]) is Restart)
        #expect(try PlugvisorCommand.parseAsRoot(["reload"]) is Reload)
        #expect(try PlugvisorCommand.parseAsRoot(["stop"]) is Stop)
        #expect(try PlugvisorCommand.parseAsRoot(["inspect", "x.wasm"]) is Inspect)
        #expect(try PlugvisorCommand.parseAsRoot(["validate", "plugins.yaml"]) is Validate)
    }
}
