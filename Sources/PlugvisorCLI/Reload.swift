import ArgumentParser
import PlugvisorProtocol

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
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
        case let .failure(error): Output.fail(error)
        case let .success(response):
            if let error = response.error { Output.fail(error) }
            guard let result = response.result else { return }
            if let name {
                // A failed reload says why in the worker's words: data, escaped.
                Output.stdout("\(name): \(DisplayText.escaped(result["result"]?.stringValue ?? "?"))")
                return
            }
            let added = result["added"].map(Output.names) ?? ""
            let removed = result["removed"].map(Output.names) ?? ""
            Output.stdout("added: \(added.isEmpty ? "none" : added)")
            Output.stdout("removed: \(removed.isEmpty ? "none" : removed)")
            let reloaded = result["reloaded"]?.objectValue ?? [:]
            Output.stdout("reloaded: " + (reloaded.isEmpty ? "none" : ""))
            for (plugin, outcome) in reloaded.sorted(by: { $0.key < $1.key }) {
                Output.stdout("  \(plugin): \(DisplayText.escaped(outcome.stringValue ?? "?"))")
            }
        }
    }
}
