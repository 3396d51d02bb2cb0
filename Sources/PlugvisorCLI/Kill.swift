import ArgumentParser
import Foundation
import PlugvisorProtocol

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "SIGKILL a plugin's workers now; it stays down until `plugvisor restart`.",
        discussion: "Calls in flight on its workers are answered `killed`, later calls `stopped`. Other plugins are not touched.")

    @Argument(help: "The plugin's name.")
    var name: String

    @OptionGroup var control: ControlOptions

    func run() throws { try Self.send(.kill, name, control) }

    static func send(_ op: ControlRequest.Operation, _ name: String, _ control: ControlOptions) throws {
        switch ControlClient(path: control.path).send(ControlRequest(op: op, plugin: name)) {
        case let .failure(error): Report.error(error)
        case let .success(response):
            if let error = response.error { Report.error(error) }
            Report.stdout("\(name): \(response.result?["state"]?.stringValue ?? "?")")
        }
    }
}

struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a plugin again with fresh workers: after `kill`, after it failed, or to recycle it.",
        discussion: "Re-reads its module; the restart count and the circuit breaker start over. Workers still running are killed first.")

    @Argument(help: "The plugin's name.")
    var name: String

    @OptionGroup var control: ControlOptions

    func run() throws { try Kill.send(.restart, name, control) }
}
