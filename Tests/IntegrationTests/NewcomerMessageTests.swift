import Foundation
import PlugvisorTestSupport
import Testing

/// The messages a first-day user meets, from the real `plugvisor` binary: each says what is
/// wrong and what to do, in words rather than Swift debug strings.
@Suite(.timeLimit(.minutes(5))) struct NewcomerMessageTests {
    func plugvisor(_ arguments: String...) throws -> ProcessRunner.Output {
        ProcessRunner.run([try Fixtures.binary("plugvisor")] + arguments)
    }

    @Test func inspectOnWATTextSaysRunWat2wasm() throws {
        let output = try plugvisor("inspect", Fixtures.pluginsDirectory.appendingPathComponent("echo.wat").path)
        #expect(output.status == 1)
        #expect(output.stdout.contains("this looks like WAT text"), "\(output.stdout)")
        #expect(output.stdout.contains("wat2wasm"))
        #expect(!output.stdout.contains("Message(text:"), "\(output.stdout)")
    }

    @Test func aMistypedSubcommandNamesTheNearestOne() throws {
        let output = try plugvisor("stauts")
        #expect(output.status == 64)
        #expect(output.stderr.contains("unknown subcommand 'stauts': did you mean 'status'?"), "\(output.stderr)")
    }

    @Test func anUnreadableJSONFileGetsCallsUsageLine() throws {
        let output = try plugvisor("call", "echo", "--json", "/nonexistent/context.json")
        #expect(output.status == 64)
        #expect(output.stderr.contains("cannot read /nonexistent/context.json"), "\(output.stderr)")
        #expect(output.stderr.contains("Usage: plugvisor call"), "\(output.stderr)")
    }

    @Test func validateChecksTheModulesUnlessToldNot() throws {
        let directory = try RunningSupervisor.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let manifest = directory.appendingPathComponent("plugins.yaml").path
        try "plugins: [{name: noexec, wasm: \(try Fixtures.plugin("no-execute"))}]"
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        let checked = try plugvisor("validate", manifest)
        #expect(checked.status == 1)
        #expect(
            checked.stdout.contains("plugin noexec:") && checked.stdout.contains("missing export: execute"),
            "\(checked.stdout)")
        let manifestOnly = try plugvisor("validate", "--no-modules", manifest)
        #expect(manifestOnly.status == 0, "\(manifestOnly.stdout)")
    }

    @Test func outOfFuelNamesTheBudgetAndTheKey() throws {
        let supervisor = try RunningSupervisor(
            manifest: """
                plugins:
                  - {name: spin, wasm: "{{plugins}}/spin.wasm", fuel: 1_000_000, timeout: 30s}
                """)
        let output = supervisor.call("spin")
        #expect(output.status == 2)
        #expect(output.stderr.contains("fuel budget of 1000000 (the plugin's `fuel` key"), "\(output.stderr)")
    }
}
