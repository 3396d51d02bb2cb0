import ArgumentParser
import Foundation
import PlugvisorProtocol

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill",
        abstract: "SIGKILL a plugin's workers now; it stays down until `plugvisor restart`.",
        discussion:
            "Calls in flight on its workers are answered `killed`, later calls `stopped`. Other plugins are not touched."
    )

    @Argument(help: "The plugin's name.")
    var name: String

    @OptionGroup var control: ControlOptions

    func run() throws { ControlClient(path: control.path).apply(.kill, to: name) }
}
