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

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reload a plugin, or re-read the whole manifest (like SIGHUP).",
        discussion: """
            With NAME: a new generation of workers loads the plugin's module again and takes over \
            once ready, with no failed call; if it cannot start, the old one goes on serving \
            (exit 2). Without NAME: the manifest is read again; added plugins start, removed ones \
            drain and stop, changed ones reload; a manifest with problems changes nothing (exit 2). \
            A plugin's module file is also reloaded by itself when it changes on disk.
            """)

    @Argument(help: "The plugin's name; none to re-read the manifest.")
    var name: String?

    @OptionGroup var control: ControlOptions

    func run() throws {
        switch ControlClient(path: control.path).send(ControlRequest(op: .reload, plugin: name)) {
        case let .failure(error): Report.error(error)
        case let .success(response):
            if let error = response.error { Report.error(error) }
            guard let result = response.result else { return }
            if let name {
                // A failed reload says why in the worker's words: data, escaped.
                Report.stdout("\(name): \(DisplayText.escaped(result["result"]?.stringValue ?? "?"))")
                return
            }
            let added = result["added"].map(Report.names) ?? ""
            let removed = result["removed"].map(Report.names) ?? ""
            Report.stdout("added: \(added.isEmpty ? "none" : added)")
            Report.stdout("removed: \(removed.isEmpty ? "none" : removed)")
            let reloaded = result["reloaded"]?.objectValue ?? [:]
            Report.stdout("reloaded: " + (reloaded.isEmpty ? "none" : ""))
            for (plugin, outcome) in reloaded.sorted(by: { $0.key < $1.key }) {
                Report.stdout("  \(plugin): \(DisplayText.escaped(outcome.stringValue ?? "?"))")
            }
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
