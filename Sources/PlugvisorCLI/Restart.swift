import ArgumentParser
import PlugvisorProtocol

struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Start a plugin again with fresh workers: after `kill`, after it failed, or to recycle it.",
        discussion:
            "Re-reads its module; the restart count and the circuit breaker start over. Workers still running are killed first."
    )

    @Argument(help: "The plugin's name.")
    var name: String

    @OptionGroup var control: ControlOptions

    func run() throws { ControlClient(path: control.path).apply(.restart, to: name) }
}
