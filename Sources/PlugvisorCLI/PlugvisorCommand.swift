import ArgumentParser
import Foundation

/// `plugvisor`: run untrusted WebAssembly plugins in sandboxed worker processes.
public struct PlugvisorCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "plugvisor",
        abstract: "Run untrusted WebAssembly plugins, each in its own sandboxed worker process.",
        discussion: """
            Start a supervisor with `plugvisor start plugins.yaml`, then use the other commands \
            from another terminal; they reach it through its control socket.
            """,
        version: "0.1.0",
        subcommands: [
            Start.self, Call.self, Status.self, Kill.self, Restart.self, Reload.self, Stop.self, Validate.self, Inspect.self,
            New.self, SandboxPolicyCommand.self,
        ]
    )

    public init() {}
}

/// Where the control socket lives, shared by `start` (which listens) and the other commands.
struct ControlOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Control socket path.",
        discussion: "Default: $PLUGVISOR_CONTROL, else $XDG_RUNTIME_DIR/plugvisor/control.sock, else /tmp/plugvisor-<uid>/control.sock.",
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
