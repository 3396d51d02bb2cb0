import ArgumentParser
import Foundation
import PlugvisorManifest

/// `plugvisor`: run untrusted WebAssembly plugins in sandboxed worker processes.
public struct PlugvisorCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        // Every subcommand names itself (`commandName`): ArgumentParser otherwise derives the
        // name with `String(describing:)` of its type, a protocol-conformance scan over the whole
        // binary that cost about 2 ms of each CLI process's start.
        commandName: "plugvisor",
        abstract: "Run untrusted WebAssembly plugins, each in its own sandboxed worker process.",
        discussion: """
            Start a supervisor with `plugvisor start plugins.yaml`, then use the other commands \
            from another terminal; they reach it through its control socket.
            """,
        version: "0.1.0",
        subcommands: [
            Start.self, Call.self, Status.self, Kill.self, Restart.self, Reload.self, Stop.self, Validate.self,
            Inspect.self,
            New.self, SandboxPolicyCommand.self,
        ]
    )

    public init() {}

    /// ArgumentParser answers a mistyped subcommand with "Unexpected argument": name the one
    /// meant instead (`stauts` → `status`), then parse as usual.
    public static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let first = arguments.first, !first.hasPrefix("-") {
            let names = configuration.subcommands.map { $0._commandName } + ["help"]
            if !names.contains(first) {
                let hint = NearestName.suggestion(for: first, among: names).map { ": did you mean '\($0)'?" } ?? ""
                Output.stderr(
                    "Error: unknown subcommand '\(first)'\(hint)\n\(usageString())\n  See 'plugvisor --help' for more information."
                )
                Foundation.exit(ExitCode.validationFailure.rawValue)
            }
        }
        main(arguments)
    }
}

/// Where the control socket lives, shared by `start` (which listens) and the other commands.
struct ControlOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Control socket path.",
            discussion:
                "Default: $PLUGVISOR_CONTROL, else $XDG_RUNTIME_DIR/plugvisor/control.sock, else /tmp/plugvisor-<uid>/control.sock.",
            valueName: "path"))
    var control: String?

    var path: String {
        if let control { return control }
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["PLUGVISOR_CONTROL"], !explicit.isEmpty { return explicit }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return runtime + "/plugvisor/control.sock" }
        return "/tmp/plugvisor-\(geteuid())/control.sock"
    }
}

/// Runs `body`, in which a `ValidationError` is a usage mistake found only while running (a file
/// an option names): ArgumentParser would print the root's usage line for it, so print `command`'s.
func withUsage<T>(of command: ParsableCommand.Type, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as ValidationError {
        let name = command._commandName
        var usage = PlugvisorCommand.usageString(for: command)
        if !usage.hasPrefix("Usage:") { usage = "Usage: " + usage }
        Output.stderr("Error: \(error.message)\n\(usage)\n  See 'plugvisor \(name) --help' for more information.")
        throw ExitCode.validationFailure
    }
}
